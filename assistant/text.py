"""Text primitives shared by every module that reads patient text.

One normalisation, one language detector (with a mixed/unknown scale), one tokenizer.
The context matcher (negation, history, family history, hypotheticals) that red flags,
urgency and the complaint coder share is :func:`assistant.triage.red_flags.affirmed_spans`.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any, Literal

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_CJK_LANG = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{1,60}")
_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+|[a-z0-9]+(?:'[a-z]+)?")
_JIEBA_LOCK = threading.Lock()
_JIEBA: Any = None

Language = Literal["en", "zh", "mixed", "unknown"]


def normalise(text: str) -> str:
    """NFKC-normalise (full-width → half-width) and lower-case."""
    return unicodedata.normalize("NFKC", text).lower()


def detect_language(text: str) -> tuple[Language, float]:
    """Language of a message by the share of Chinese characters.

    The ratio weighs Chinese characters (1.5 per word) against Latin words:
    ``r = (cjk / 1.5) / (cjk / 1.5 + latin_words)``; ``zh`` when r >= 0.8, ``en`` when
    r <= 0.2, ``mixed`` in between, ``unknown`` without letters.

    Args:
        text: any text.

    Returns:
        ``(language, r)`` with r in [0, 1].
    """
    cjk = len(_CJK_LANG.findall(text)) / 1.5
    words = len(_LATIN_WORD.findall(text))
    if cjk + words == 0:
        return "unknown", 0.0
    ratio = cjk / (cjk + words)
    if ratio >= 0.8:
        return "zh", round(ratio, 3)
    if ratio <= 0.2:
        return "en", round(ratio, 3)
    return "mixed", round(ratio, 3)


def answer_language(text: str, default: str = "en") -> Literal["en", "zh"]:
    """The language to answer in: ``zh`` when the Chinese share r >= 0.5 (see
    :func:`detect_language`), ``default`` for text without letters, else ``en``."""
    language, ratio = detect_language(text)
    if language == "unknown":
        return "zh" if default == "zh" else "en"
    return "zh" if ratio >= 0.5 else "en"


def jieba() -> Any:
    """The jieba module, initialised once per process (thread-safe, quiet).

    jieba's default tokenizer gets its prefix dictionary from :class:`_ShardedFreq`
    (loaded by first character on demand from the on-disk cache) instead of unmarshalling
    all ~500,000 entries up front (~0.7 s on a cold start): segmentation is identical,
    since jieba only looks up substrings of the text being cut.
    """
    global _JIEBA
    if _JIEBA is None:
        with _JIEBA_LOCK:
            if _JIEBA is None:
                import logging

                import jieba as _jieba

                _jieba.setLogLevel(logging.WARNING)
                if not _init_sharded(_jieba):
                    _jieba.initialize()
                _JIEBA = _jieba
    return _JIEBA


_SHARDS = 1024


class _ShardedFreq:
    """jieba's prefix dictionary (word or word prefix -> frequency), split by the first
    character into :data:`_SHARDS` marshalled shards that are unpacked on first use.

    Implements what :class:`jieba.Tokenizer` uses of its ``FREQ`` dict: ``in``, ``[]``,
    ``get`` and item assignment (``add_word``); every key a lookup can touch lives in the
    shard of its first character, so answers equal those of the full dict.
    """

    def __init__(self, shards: list[bytes]) -> None:
        self._blobs = shards
        self._shards: list[dict[str, int] | None] = [None] * len(shards)

    def _shard(self, word: str) -> dict[str, int]:
        i = ord(word[0]) % len(self._blobs)
        shard = self._shards[i]
        if shard is None:
            import marshal

            shard = self._shards[i] = marshal.loads(self._blobs[i])
        return shard

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and bool(word) and word in self._shard(word)

    def __getitem__(self, word: str) -> int:
        if not word:
            raise KeyError(word)
        return self._shard(word)[word]

    def get(self, word: str, default: Any = None) -> Any:
        return self._shard(word).get(word, default) if word else default

    def __setitem__(self, word: str, freq: int) -> None:
        self._shard(word)[word] = freq


def _init_sharded(module: Any) -> bool:
    """Give jieba's default tokenizer a :class:`_ShardedFreq` built from its default
    dictionary (the cache is keyed on the dictionary file and the jieba version). False
    when the tokenizer is not the default one or anything fails (then jieba loads its
    dictionary itself)."""
    import marshal
    from pathlib import Path

    from assistant.cache import content_key, read_entry, write_entry

    try:
        tk = module.dt
        if tk.initialized or tk.dictionary != module.DEFAULT_DICT or tk.cache_file:
            return False
        dict_path = Path(module.__file__).with_name(module.DEFAULT_DICT_NAME)
        stat = dict_path.stat()
        scope = str(dict_path.resolve())
        key = content_key(f"{module.__version__}|{scope}|{stat.st_size}|{stat.st_mtime_ns}|{_SHARDS}")
        entry = read_entry("jieba-prefix", scope, key)
        if not (isinstance(entry, tuple) and len(entry) == 2 and len(entry[1]) == _SHARDS):
            module.initialize()  # the full dictionary, through jieba's own cache
            shards: list[dict[str, int]] = [{} for _ in range(_SHARDS)]
            for word, freq in tk.FREQ.items():
                if word:
                    shards[ord(word[0]) % _SHARDS][word] = freq
            write_entry("jieba-prefix", scope, key, (tk.total, [marshal.dumps(s) for s in shards]))
            return True
        total, blobs = entry
        with tk.lock:
            tk.FREQ, tk.total = _ShardedFreq(list(blobs)), total
            tk.initialized = True
        return True
    except Exception:  # noqa: BLE001 - fall back to jieba's own loading
        return False


def tokenize(text: str) -> list[str]:
    """Word tokens: jieba words for Chinese runs, lower-case words for Latin script."""
    tokens: list[str] = []
    for piece in _TOKEN.findall(normalise(text)):
        if _CJK.match(piece):
            tokens.extend(w for w in jieba().lcut(piece) if w.strip())
        else:
            tokens.append(piece)
    return tokens


def is_cjk(char: str) -> bool:
    """Whether one character is a CJK ideograph."""
    return bool(_CJK.match(char))


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds at least one CJK ideograph."""
    return bool(_CJK.search(text or ""))
