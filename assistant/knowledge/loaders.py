"""Readers of knowledge-base source files, tolerant of bad input.

Sources:

* ``<shared_data_dir>/medquad/*.jsonl`` — MedQuAD (Ben Abacha & Demner-Fushman 2019),
  CC BY 4.0 (``LICENSE.txt`` beside the files), one QA pair per line with fields
  ``source, url, focus, qtype, question, answer`` (plus ``qid``, ``doc_id``, ...).
* ``settings.documents_dir`` — the hospital's own documents: ``.md``/``.markdown``/``.txt``
  files (one document each, title = first ``#`` heading or the file name) and ``.jsonl``
  files with the MedQuAD fields.

A bad line (malformed JSON, not an object, missing ``question``/``answer``/``focus``,
empty answer, undecodable bytes) is skipped with a logged warning naming file and line;
it never aborts the read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("question", "answer", "focus")
TEXT_SUFFIXES = (".md", ".markdown", ".txt")
MEDQUAD_DIR = "medquad"


@dataclass(frozen=True)
class SourceDocument:
    """One document (QA pair or file) before chunking.

    Attributes:
        doc_id: stable id, e.g. ``medquad:GHR:0000012-3`` or ``doc:guides/chest.md``.
        title: title line put on top of every chunk (MedQuAD: the ``focus``).
        body: the text to chunk (MedQuAD: the ``answer``; the question is NOT included).
        metadata: flat citation metadata (source, url, focus, qtype, question, licence, kind).
        origin: source file relative to its root (``medquad/x.jsonl``, ``documents/a.md``);
            deletions of stale chunks are scoped by it.
        line: 1-based line number in the file (1 for whole-file documents).
    """

    doc_id: str
    title: str
    body: str
    metadata: dict[str, Any]
    origin: str
    line: int


@dataclass(frozen=True)
class Skip:
    """A skipped input item: ``file`` (path as given), ``line`` (1-based, 0 = whole file)."""

    file: str
    line: int
    reason: str


@dataclass
class LoadReport:
    """Outcome of reading sources: the skips, and origins that were read to the end."""

    skipped: list[Skip] = field(default_factory=list)
    complete_origins: set[str] = field(default_factory=set)
    seen_origins: set[str] = field(default_factory=set)
    roots: set[str] = field(default_factory=set)

    def skip(self, file: Path | str, line: int, reason: str) -> None:
        """Record a skip and log a warning naming file and line (never the content)."""
        self.skipped.append(Skip(str(file), line, reason))
        logger.warning("%s:%d: skipped: %s", file, line, reason)


def detect_licence(folder: Path) -> str:
    """Licence name of a data folder from its ``LICENSE*``/``SOURCE*`` files.

    Returns:
        ``"CC BY 4.0"`` for Creative Commons Attribution 4.0, else the first non-empty
        line of the licence file, else ``"unknown"``.
    """
    for pattern in ("LICENSE*", "LICENCE*", "SOURCE*"):
        for path in sorted(folder.glob(pattern)):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if "Attribution 4.0 International" in text or "CC BY 4.0" in text:
                return "CC BY 4.0"
            for line in text.splitlines():
                if line.strip():
                    return line.strip()[:80]
    return "unknown"


def _clean(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _record_key(rec: dict[str, Any]) -> str:
    for key in ("qid", "id", "doc_id"):
        value = rec.get(key)
        if value not in (None, ""):
            return str(value)
    digest = hashlib.sha256(_clean(rec.get("question")).encode()).hexdigest()[:12]
    return f"q{digest}"


def iter_jsonl(
    path: Path,
    origin: str,
    *,
    licence: str,
    report: LoadReport,
    default_source: str,
    used_ids: set[str],
) -> Iterator[SourceDocument]:
    """Yield the QA records of one JSONL file, skipping bad lines (see module doc).

    Args:
        path: the file. origin: its id relative to the root (deletion scope).
        licence: licence string stored on each chunk.
        report: collects skips. default_source: ``source`` when a record has none.
        used_ids: doc ids already issued in this run (duplicates get ``#2``, ``#3``...).

    Yields:
        One :class:`SourceDocument` per valid line.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        report.skip(path, 0, f"cannot open: {exc.strerror or exc}")
        return
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report.skip(
                    path, lineno, f"undecodable bytes (not UTF-8) at column {exc.start + 1}"
                )
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                report.skip(path, lineno, f"malformed JSON ({exc.msg}, column {exc.colno})")
                continue
            if not isinstance(rec, dict):
                report.skip(path, lineno, "not a JSON object")
                continue
            missing = [f for f in REQUIRED_FIELDS if f not in rec or rec[f] is None]
            if missing:
                report.skip(path, lineno, f"missing field(s): {', '.join(missing)}")
                continue
            answer = rec["answer"] if isinstance(rec["answer"], str) else ""
            if not answer.strip():
                report.skip(path, lineno, "empty answer")
                continue
            focus = _clean(rec["focus"])
            source = _clean(rec.get("source")) or default_source
            doc_id = f"{source}:{_record_key(rec)}"
            if doc_id in used_ids:
                n = 2
                while f"{doc_id}#{n}" in used_ids:
                    n += 1
                doc_id = f"{doc_id}#{n}"
            used_ids.add(doc_id)
            metadata = {
                "source": source,
                "url": _clean(rec.get("url")),
                "focus": focus,
                "qtype": _clean(rec.get("qtype")),
                "question": _clean(rec["question"]),
                "licence": _clean(rec.get("licence") or rec.get("license")) or licence,
                "kind": "qa",
            }
            yield SourceDocument(
                doc_id, focus or _clean(rec["question"]), answer, metadata, origin, lineno
            )


def read_text_document(
    path: Path, origin: str, *, licence: str, report: LoadReport
) -> SourceDocument | None:
    """Read one Markdown/text file as a document (None and a skip when unusable)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        report.skip(path, 0, f"cannot read: {exc.strerror or exc}")
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        report.skip(path, line, "undecodable bytes (not UTF-8)")
        return None
    if not text.strip():
        report.skip(path, 1, "empty document")
        return None
    title = path.stem.replace("_", " ").replace("-", " ").strip()
    for line in text.splitlines():
        if line.startswith("# "):
            title = line[2:].strip()
            break
    metadata = {
        "source": "hospital-documents",
        "url": origin,
        "focus": title,
        "qtype": "document",
        "question": "",
        "licence": licence,
        "kind": "document",
    }
    return SourceDocument(f"doc:{origin}", title, text, metadata, origin, 1)


def iter_literature_sources(
    shared_data_dir: Path, documents_dir: Path | None, report: LoadReport
) -> Iterator[SourceDocument]:
    """Yield every literature document: MedQuAD first, then the hospital's documents.

    Args:
        shared_data_dir: folder holding ``medquad/``; a missing folder is a skip, not an error.
        documents_dir: optional hospital documents folder (searched recursively).
        report: collects skips; each origin is added to ``complete_origins`` once its file
            was read to the end (a caller that stops early leaves it out).

    Yields:
        :class:`SourceDocument` objects in a deterministic order (sorted file names).
    """
    used_ids: set[str] = set()
    medquad = shared_data_dir / MEDQUAD_DIR
    if medquad.is_dir():
        report.roots.add(f"{MEDQUAD_DIR}/")
        licence = detect_licence(medquad)
        for path in sorted(medquad.glob("*.jsonl")):
            origin = f"{MEDQUAD_DIR}/{path.name}"
            report.seen_origins.add(origin)
            yield from iter_jsonl(
                path,
                origin,
                licence=licence,
                report=report,
                default_source="MedQuAD",
                used_ids=used_ids,
            )
            report.complete_origins.add(origin)
    else:
        report.skip(medquad, 0, "MedQuAD folder not found (set shared_data_dir)")

    if documents_dir is None:
        return
    if not documents_dir.is_dir():
        report.skip(documents_dir, 0, "documents_dir is not a folder")
        return
    report.roots.add("documents/")
    licence = detect_licence(documents_dir)
    if licence == "unknown":
        licence = "hospital internal"
    for path in sorted(p for p in documents_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(documents_dir).as_posix()
        if (
            rel.startswith(".")
            or "/." in rel
            or path.name.upper().startswith(("LICENSE", "LICENCE", "SOURCE"))
        ):
            continue
        origin = f"documents/{rel}"
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            report.seen_origins.add(origin)
            yield from iter_jsonl(
                path,
                origin,
                licence=licence,
                report=report,
                default_source="hospital-documents",
                used_ids=used_ids,
            )
            report.complete_origins.add(origin)
        elif suffix in TEXT_SUFFIXES:
            report.seen_origins.add(origin)
            doc = read_text_document(path, origin, licence=licence, report=report)
            if doc is not None:
                yield doc
            report.complete_origins.add(origin)
