"""Fast first run: index a first slice now, the rest in a background process.

:func:`ingest_first_slice` embeds the MedlinePlus health topics of MedQuAD (~1,000 chunks)
so the web UI can answer with citations at once, then :func:`start_background_ingest` runs
the full ingest in a separate, low-priority Python process (idempotent: chunks already
stored are skipped, and a killed run resumes where it stopped). Progress:
:func:`assistant.knowledge.progress.index_progress` (staff tab) or
``assistant ingest --follow`` (CLI).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from assistant.knowledge.embeddings import spawn_detached
from assistant.knowledge.ingest import IngestSummary, ingest_literature, print_summary
from assistant.settings import Settings

logger = logging.getLogger(__name__)

# settings a background ingest needs; the child re-reads env/TOML, these win
_FORWARDED = (
    "data_dir",
    "index_dir",
    "shared_data_dir",
    "documents_dir",
    "embedding_model",
    "chroma_url",
    "device",
    "num_threads",
)

# MedlinePlus health topics: ~1,000 chunks of general consumer-health overviews (the
# conditions lay complaints name most often), embedded in well under a minute on 2 cores.
FIRST_SLICE_SOURCES = ("MPlusHealthTopics",)


def ingest_first_slice(
    settings: Settings, *, sources: tuple[str, ...] = FIRST_SLICE_SOURCES, background: bool = True
) -> IngestSummary:
    """Index a first slice of MedQuAD now and the rest in a background process.

    For a fast first run (``assistant demo``): the web UI can answer, with citations, as
    soon as this returns; the background ingest (:func:`start_background_ingest`) adds the
    remaining chunks and then the multilingual condition index, and
    :func:`~assistant.knowledge.progress.index_progress` / ``assistant ingest --follow``
    show how far it is.

    Args:
        settings: index location, data folders, embedding model.
        sources: MedQuAD ``source`` values of the first slice.
        background: start the background ingest afterwards.

    Returns:
        The first slice's :class:`~assistant.knowledge.ingest.IngestSummary`.

    Raises:
        ModelNotFoundError: the embedding model is missing.
    """
    summary = ingest_literature(settings, sources=sources, progress=True, conditions=False)
    print_summary(summary)
    if background:
        proc = start_background_ingest(settings)
        logger.info("background ingest started (pid %d)", proc.pid)
        print(
            f"indexing the rest of MedQuAD in the background (pid {proc.pid}); "
            "progress: `assistant ingest --follow`"
        )
    return summary


def start_background_ingest(
    settings: Settings, *, log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Run the full literature ingest in a detached, low-priority Python process.

    The child calls :func:`~assistant.knowledge.ingest.ingest_literature` (no progress
    bar; progress goes to :func:`index_progress`), which ends by building the multilingual
    condition index (:func:`~assistant.knowledge.crosslingual.build_condition_index`). Chunks already
    stored are skipped, so it may follow a first-slice ingest.

    Args:
        settings: forwarded to the child (index location, model, data folders, threads).
        log_file: where the child's output goes (default ``<data_dir>/ingest.log``).

    Returns:
        The child's ``Popen`` (the caller may ``wait()`` or leave it running).
    """
    overrides = {
        name: str(value) for name in _FORWARDED if (value := getattr(settings, name)) is not None
    }
    log_path = log_file or Path(settings.data_dir) / "ingest.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return spawn_detached("assistant.knowledge.background:_background_main", [json.dumps(overrides)],
                          log_path)


def _background_main() -> None:
    """Entry point of the background ingest process."""
    from assistant.settings import load_settings

    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    overrides: dict[str, Any] = json.loads(sys.argv[1])
    settings = load_settings(**overrides)
    summary = ingest_literature(settings, progress=False)  # also the condition index
    logger.info("background ingest: %s", summary.model_dump_json())


def resume_if_interrupted(settings: Settings) -> bool:
    """Restart the background ingest when the last one stopped before finishing.

    Returns:
        True when a background ingest was started (the last recorded run is ``failed``:
        killed, or the machine restarted, before it was done).
    """
    from assistant.knowledge.progress import index_progress

    if index_progress(settings).state != "failed":
        return False
    proc = start_background_ingest(settings)
    print(f"resuming the interrupted ingest in the background (pid {proc.pid})")
    return True
