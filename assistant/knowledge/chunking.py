"""Section-aware chunking of long documents into ~200-word passages.

Text is split into lines (blank lines and inline ``  - `` bullet runs are boundaries);
short lines without final punctuation and Markdown ``#`` lines are treated as section
headings. Lines are packed into chunks of about ``target_words``; a heading starts a new
chunk once the current one holds ``min_words``; a chunk cut for size carries the last
sentences (about ``overlap_words``) of the previous chunk and repeats its section heading.
Over-long lines are cut at sentence boundaries, and over-long sentences (e.g. the
symptom tables of GARD) at word boundaries.

Lengths are counted in "words": whitespace-separated tokens, with each CJK character
counted as one word (roughly one word piece for MiniLM, whose input is truncated at 256).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
_CJK_CHAR_RE = re.compile(f"[{_CJK}]")
_INLINE_BULLETS_RE = re.compile(r"\s{2,}-\s+")
_SENTENCE_RE = re.compile(r"(?<=[.!?;])\s+(?=[\"'(\[A-Z0-9])|(?<=[。！？；])")
_BULLET_RE = re.compile(r"^([-*•]|\d{1,2}[.)])\s+")
_HEADING_MAX_WORDS = 12


@dataclass(frozen=True)
class ChunkingParams:
    """Chunker knobs; recorded in each collection's metadata (``chunking_*`` keys).

    Attributes:
        target_words: soft size of a chunk (words, CJK characters count one each).
        overlap_words: words of the previous chunk repeated at the start of a chunk
            that was cut for size (whole sentences when possible).
        max_words: hard cap; a document up to this size stays one chunk.
        min_words: a heading only starts a new chunk when the current one has this many
            words, and a shorter last chunk is merged into the previous one if it fits.
        version: bump when the algorithm changes (changes every chunk id).
    """

    target_words: int = 180
    overlap_words: int = 30
    max_words: int = 230
    min_words: int = 100
    version: str = "1"

    def as_metadata(self) -> dict[str, int | str]:
        """The parameters as flat ``chunking_<name>`` metadata entries."""
        return {f"chunking_{k}": v for k, v in asdict(self).items()}


def count_words(text: str) -> int:
    """Length of ``text`` in words (whitespace tokens; each CJK character is one word)."""
    cjk = len(_CJK_CHAR_RE.findall(text))
    rest = _CJK_CHAR_RE.sub(" ", text).split()
    return cjk + len(rest)


def _units(text: str) -> list[tuple[str, str]]:
    """Split text into ``(kind, line)`` units; kind is ``heading``, ``bullet`` or ``para``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    units: list[tuple[str, str]] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        pieces = _INLINE_BULLETS_RE.split(line)
        for i, piece in enumerate(pieces):
            piece = " ".join(piece.split())
            if not piece:
                continue
            if i > 0 or _BULLET_RE.match(piece):
                units.append(("bullet", piece if _BULLET_RE.match(piece) else f"- {piece}"))
            elif piece.startswith("#"):
                units.append(("heading", piece.lstrip("#").strip()))
            elif (
                count_words(piece) <= _HEADING_MAX_WORDS
                and not re.search(r"[.,;:!?。，；：！？)\]\"']$", piece)
                and len(pieces) == 1
            ):
                units.append(("heading", piece))
            else:
                units.append(("para", piece))
    return units


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences (English ``.!?;`` and CJK ``。！？；`` ends)."""
    return [s.strip() for s in _SENTENCE_RE.split(text) if s and s.strip()]


def _split_words(text: str, size: int) -> list[str]:
    """Cut text into pieces of at most ``size`` words (CJK runs cut by character)."""
    tokens = re.findall(f"[{_CJK}]|[^\\s{_CJK}]+", text)
    pieces: list[str] = []
    for start in range(0, len(tokens), size):
        part = tokens[start : start + size]
        out = ""
        for tok in part:
            if out and not (_CJK_CHAR_RE.match(tok) and _CJK_CHAR_RE.match(out[-1])):
                out += " "
            out += tok
        pieces.append(out)
    return pieces


def _fit(line: str, params: ChunkingParams) -> list[str]:
    """Pieces of one unit, each at most ``target_words`` long."""
    if count_words(line) <= params.target_words:
        return [line]
    out: list[str] = []
    for sentence in split_sentences(line):
        if count_words(sentence) <= params.target_words:
            out.append(sentence)
        else:
            out.extend(_split_words(sentence, params.target_words))
    return out


def _tail(lines: list[str], budget: int) -> list[str]:
    """Last sentences of ``lines`` totalling at most ``budget`` words (the overlap)."""
    if budget <= 0:
        return []
    sentences = [s for line in lines for s in split_sentences(line)]
    picked: list[str] = []
    used = 0
    for sentence in reversed(sentences):
        n = count_words(sentence)
        if used + n > budget:
            break
        picked.insert(0, sentence)
        used += n
    if not picked and sentences:  # one long last sentence: keep its last words
        picked = [" ".join(sentences[-1].split()[-budget:])]
    return [" ".join(picked)] if picked else []


def chunk_text(text: str, params: ChunkingParams | None = None) -> list[str]:
    """Split a document into passages.

    Args:
        text: the document (plain text or Markdown; any whitespace layout).
        params: chunker settings (default :class:`ChunkingParams`).

    Returns:
        Chunks in document order, lines joined by ``"\\n"``; ``[]`` for blank text. A
        document of at most ``max_words`` words is returned as one normalised chunk.
    """
    params = params or ChunkingParams()
    units = _units(text)
    if not units:
        return []
    total = sum(count_words(line) for _, line in units)
    if total <= params.max_words:
        return ["\n".join(line for _, line in units)]

    chunks: list[list[str]] = []
    current: list[str] = []
    body: list[str] = []  # current minus the repeated heading / overlap
    words = 0
    heading: str | None = None

    def flush() -> None:
        nonlocal current, body, words
        if body:
            chunks.append(current)
        current, body, words = [], [], 0

    for kind, line in units:
        if kind == "heading":
            if words >= params.min_words:
                flush()
            heading = line
            current.append(line)
            words += count_words(line)
            continue
        for piece in _fit(line, params):
            n = count_words(piece)
            if body and words + n > params.target_words:
                previous = body
                flush()
                if heading is not None:
                    current.append(heading)
                    words += count_words(heading)
                overlap = _tail(previous, params.overlap_words)
                current.extend(overlap)
                words += sum(count_words(x) for x in overlap)
            current.append(piece)
            body.append(piece)
            words += n
    if body:
        chunks.append(current)
    elif current and chunks:  # trailing heading only: attach to the last chunk
        chunks[-1].extend(current)

    if len(chunks) > 1:
        last_words = sum(count_words(x) for x in chunks[-1])
        prev_words = sum(count_words(x) for x in chunks[-2])
        if last_words < params.min_words and prev_words + last_words <= params.max_words:
            tail = [x for x in chunks[-1] if x not in chunks[-2]]
            chunks[-2].extend(tail)
            chunks.pop()
    return ["\n".join(lines) for lines in chunks]
