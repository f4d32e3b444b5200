"""Small text utilities shared by routing and urgency: language detection, tokenising."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+|[a-z0-9]+(?:'[a-z]+)?")


def normalise(text: str) -> str:
    """NFKC-normalise (full-width → half-width) and lower-case."""
    return unicodedata.normalize("NFKC", text).lower()


def detect_language(text: str, default: str = "en") -> str:
    """``"zh"`` when at least 20 % of the letters are CJK ideographs, else ``"en"``.

    Returns ``default`` for text with no letters at all (emoji, digits).
    """
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return default
    cjk = sum(1 for c in letters if _CJK.match(c))
    return "zh" if cjk / len(letters) >= 0.2 else "en"


@lru_cache(maxsize=1)
def _jieba():  # noqa: ANN202
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def tokenize(text: str) -> list[str]:
    """Word tokens: jieba words for Chinese runs, lower-case words for Latin script."""
    tokens: list[str] = []
    for piece in _TOKEN.findall(normalise(text)):
        if _CJK.match(piece):
            tokens.extend(w for w in _jieba().lcut(piece) if w.strip())
        else:
            tokens.append(piece)
    return tokens
