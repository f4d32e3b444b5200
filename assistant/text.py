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
    """The jieba module, initialised once per process (thread-safe, quiet)."""
    global _JIEBA
    if _JIEBA is None:
        with _JIEBA_LOCK:
            if _JIEBA is None:
                import logging

                import jieba as _jieba

                _jieba.setLogLevel(logging.WARNING)
                _jieba.initialize()
                _JIEBA = _jieba
    return _JIEBA


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
