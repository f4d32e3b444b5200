"""Bilingual (English + Chinese) tokeniser for the lexical (BM25) index.

* CJK runs are segmented with ``jieba`` in search mode (long words also yield their
  sub-words), and every CJK character is added as a unigram, so "疼" still meets
  "疼痛" and a lay complaint like "孩子耳朵疼" meets "儿童耳朵疼痛".
* Other text is lower-cased, split on non-alphanumerics, English stopwords removed and
  a light suffix stripping applied ("burning"/"burns" -> "burn").

The same function tokenises documents and queries. ``TOKENIZER_VERSION`` is part of the
BM25 cache key, so changing this module rebuilds the cached indexes.
"""

from __future__ import annotations

import re
from functools import lru_cache

TOKENIZER_VERSION = "1"

_CJK_RUN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD_RE = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")

EN_STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each few for from further get gets got had hadn't has
    hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
    how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
    mustn't my myself no nor not of off on once only or other ought our ours ourselves out over
    own same shan't she she'd she'll she's should shouldn't so some such than that that's the
    their theirs them themselves then there there's these they they'd they'll they're they've
    this those through to too under until up very was wasn't we we'd we'll we're we've were
    weren't what what's when when's where where's which while who who's whom why why's will
    with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
    also may might must s t just""".split()  # noqa: SIM905 (readable word list)
)

ZH_STOPWORDS = frozenset(
    (  # noqa: SIM905 (readable word list)
        "的 了 是 在 和 与 及 或 也 都 就 而 又 被 把 让 给 对 从 向 为 以 于 之 其 这 那 这个 那个 "
        "我 我的 你 你的 他 她 它 我们 你们 他们 有 没有 会 能 可以 要 很 还 吗 呢 吧 啊 呀 么 什么 "
        "怎么 怎么办 一个 一些 一下 一直 现在 时候 请问 请 谢谢 您好 你好"
    ).split()
)

_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("ies", "y"),
    ("ing", ""),
    ("edly", ""),
    ("ed", ""),
    ("es", ""),
    ("s", ""),
)


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """Very light English suffix stripping (no dictionary); keeps words of <= 3 letters."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith(("ss", "us", "is")):
        return word
    for suffix, repl in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)] + repl
            if suffix in ("ing", "ed") and len(stem) >= 4 and stem[-1] == stem[-2]:
                stem = stem[:-1]  # "stopped" -> "stop", "swelling" -> "swell" -> "swel"
            return stem
    return word


def _jieba():  # type: ignore[no-untyped-def]
    from assistant.text import jieba

    return jieba()


def tokenize(text: str) -> list[str]:
    """Tokens of ``text`` for BM25.

    Args:
        text: English, Chinese or mixed text.

    Returns:
        Tokens in order (with repeats): stemmed lower-case English words without
        stopwords, jieba words and CJK character unigrams.
    """
    tokens: list[str] = []
    pos = 0
    for match in _CJK_RUN_RE.finditer(text):
        tokens.extend(_latin_tokens(text[pos : match.start()]))
        tokens.extend(_cjk_tokens(match.group()))
        pos = match.end()
    tokens.extend(_latin_tokens(text[pos:]))
    return tokens


def _latin_tokens(text: str) -> list[str]:
    if not text:
        return []
    out = []
    for word in _WORD_RE.findall(text.lower()):
        word = word.replace("’", "'")
        if word in EN_STOPWORDS:
            continue
        if "'" in word:
            word = word.split("'", 1)[0]
            if not word or word in EN_STOPWORDS:
                continue
        out.append(_stem(word))
    return out


def _cjk_tokens(run: str) -> list[str]:
    words = [w for w in _jieba().lcut_for_search(run) if w.strip() and w not in ZH_STOPWORDS]
    chars = [c for c in run if c not in ZH_STOPWORDS]
    if len(run) == 1:
        return chars
    return words + [c for c in chars if c not in words]


def is_mostly_cjk(text: str) -> bool:
    """True when CJK carries about half the content or more (1 CJK char ~ 3 Latin letters)."""
    cjk = sum(len(m) for m in _CJK_RUN_RE.findall(text))
    latin = len(re.findall(r"[A-Za-z]", text))
    return cjk > 0 and cjk >= latin / 3
