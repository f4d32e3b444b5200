"""Progress of the literature ingest.

Every literature ingest writes ``<index_dir>/ingest_progress.json`` (atomically, once per
embedded batch): state, chunks done and to do, throughput and the writer's process id. Any
process (the staff tab, the CLI, a retriever, a test) reads it with :func:`index_progress`;
no lock, no server. The background ingest of a first run is in
:mod:`assistant.knowledge.background`.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from assistant.settings import Settings

logger = logging.getLogger(__name__)

PROGRESS_FILE = "ingest_progress.json"
State = Literal["idle", "running", "done", "failed"]


class IndexProgress(BaseModel):
    """How far the literature ingest is.

    Attributes:
        state: ``idle`` (no ingest recorded), ``running``, ``done`` or ``failed`` (the
            writer stopped without finishing: killed, or an error in ``error``).
        done: chunks stored so far in this run (new ones embedded + ones already there).
        total: chunks this run will store (0 while the sources are still being read).
        fraction: ``done / total`` in [0, 1] (1.0 when done, 0.0 when unknown).
        chunks_per_s: embedding + write throughput of this run so far.
        eta_s: seconds left at that throughput (None when unknown).
        pid: process id of the writer.
        started / updated: Unix times.
        error: the failure message (state ``failed``).
    """

    state: State = "idle"
    done: int = 0
    total: int = 0
    fraction: float = 0.0
    chunks_per_s: float = 0.0
    eta_s: float | None = None
    pid: int | None = None
    started: float | None = None
    updated: float | None = None
    error: str | None = None


def progress_path(settings: Settings) -> Path:
    """``<index_dir>/ingest_progress.json`` (the local index folder, also with ``chroma_url``)."""
    return settings.resolved_index_dir / PROGRESS_FILE


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process has finished
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def index_progress(settings: Settings) -> IndexProgress:
    """The progress of the current or last literature ingest of ``settings``' index.

    Args:
        settings: ``resolved_index_dir`` locates the progress file.

    Returns:
        An :class:`IndexProgress`; ``state="idle"`` when no ingest was recorded, and
        ``"failed"`` for a ``running`` record whose process is gone. Never raises: an
        unreadable file reads as ``idle``.
    """
    try:
        data = json.loads(progress_path(settings).read_text(encoding="utf-8"))
        progress = IndexProgress.model_validate(data)
    except (OSError, ValueError):
        return IndexProgress()
    if progress.state == "running" and not _alive(progress.pid):
        progress.state = "failed"
        progress.error = progress.error or "the ingest process stopped before finishing"
    return progress


def ingest_running(settings: Settings) -> bool:
    """True while a live process is writing the literature index of ``settings``."""
    return index_progress(settings).state == "running"


class ProgressWriter:
    """Writes :class:`IndexProgress` records for one ingest run (atomic replace)."""

    def __init__(self, settings: Settings, *, enabled: bool = True) -> None:
        self.path = progress_path(settings)
        self.enabled = enabled
        self.started = time.time()
        self._embed_seconds = 0.0
        self._added = 0

    def update(
        self,
        state: State,
        done: int,
        total: int,
        *,
        added: int = 0,
        seconds: float = 0.0,
        error: str | None = None,
    ) -> None:
        """Record the state; ``added``/``seconds``: chunks embedded and time spent so far."""
        if not self.enabled:
            return
        rate = added / seconds if seconds > 0 else 0.0
        left = max(total - done, 0)
        record = IndexProgress(
            state=state,
            done=done,
            total=total,
            fraction=1.0 if state == "done" else round(done / total, 4) if total else 0.0,
            chunks_per_s=round(rate, 2),
            eta_s=round(left / rate, 1) if rate > 0 and state == "running" else None,
            pid=os.getpid(),
            started=self.started,
            updated=time.time(),
            error=error,
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}")
            tmp.write_text(record.model_dump_json(), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:  # progress is informative only
            logger.debug("cannot write ingest progress: %s", exc)


def follow_progress(
    settings: Settings, *, poll_s: float = 1.0, timeout_s: float | None = None
) -> IndexProgress:
    """Show a rich progress bar of the running ingest until it ends (or ``timeout_s``).

    Returns:
        The last :class:`IndexProgress` read.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    state = index_progress(settings)
    if state.state != "running":
        print(f"ingest {state.state}: {state.done}/{state.total} chunks")
        return state
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with Progress(
        TextColumn("[bold]indexing literature"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} chunks/s"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("ingest", total=max(state.total, 1), rate="-")
        while state.state == "running" and (deadline is None or time.monotonic() < deadline):
            bar.update(
                task,
                total=max(state.total, 1),
                completed=state.done,
                rate=f"{state.chunks_per_s:.1f}",
            )
            time.sleep(poll_s)
            state = index_progress(settings)
        bar.update(task, completed=state.done)
    print(f"ingest {state.state}: {state.done}/{state.total} chunks")
    return state
