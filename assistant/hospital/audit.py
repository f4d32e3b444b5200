"""The staff audit log: a JSON-lines file, and the ``audit_log`` table when the database is shared.

Every audited staff action and login attempt is one JSON object
``{"at": ISO time, "action": ..., "actor": ..., ...}`` (pseudonymous ids only, never a
password or patient text). :func:`append_audit` appends it as one line to
``<data_dir>/audit.jsonl``, as before, and - when a database was attached with
:func:`use_database` - also inserts it into the ``audit_log`` table
(:class:`~assistant.hospital.models.AuditRecord`). Several app workers on several hosts
each have their own ``data_dir``, so with ``hospital_db`` on PostgreSQL the table is
the one complete audit log; ``assistant serve`` attaches it (see :func:`attach_for`).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from assistant.errors import StorageError
from assistant.hospital.models import AuditRecord

__all__ = ["append_audit", "attach_for", "read_audit", "use_database"]

_LOCK = threading.Lock()
_DATABASE: sessionmaker[Session] | None = None


def use_database(factory: sessionmaker[Session] | None) -> None:
    """Also write audit entries to the ``audit_log`` table of ``factory``'s database
    (process-wide; None detaches)."""
    global _DATABASE
    _DATABASE = factory


def attach_for(target: str | Path) -> bool:
    """Attach the ``audit_log`` table of ``target`` when it is a database server URL
    (shared by several workers); an SQLite file keeps the JSON-lines log only.

    Returns:
        True when attached.

    Raises:
        DataError / StorageError: as :func:`assistant.hospital.db.open_db`.
    """
    from assistant.hospital.db import is_sqlite, open_db

    if is_sqlite(target):
        return False
    use_database(open_db(target, create=False))
    return True


def append_audit(data_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append ``{"at": now (ISO, UTC), **entry}`` to ``<data_dir>/audit.jsonl`` and, when
    attached, to the ``audit_log`` table.

    Args:
        data_dir: the state folder (``Settings.data_dir``).
        entry: JSON-serialisable fields; ``action``, ``actor`` and ``outcome`` are also
            stored in their own columns.

    Returns:
        The record written.

    Raises:
        StorageError: the file or the table cannot be written (a staff action must not
            proceed unaudited).
    """
    now = datetime.now(UTC)
    record = {"at": now.isoformat(), **entry}
    line = json.dumps(record, default=str, ensure_ascii=False)
    path = Path(data_dir) / "audit.jsonl"
    try:
        with _LOCK:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
    except OSError as exc:
        raise StorageError(f"{path}: cannot write the audit log ({exc.strerror})") from None
    factory = _DATABASE
    if factory is not None:
        try:
            with factory() as session, session.begin():
                session.add(AuditRecord(
                    at=now, action=str(entry.get("action", ""))[:64],
                    actor=None if entry.get("actor") is None else str(entry["actor"])[:128],
                    outcome=None if entry.get("outcome") is None else str(entry["outcome"])[:32],
                    entry=line,
                ))
        except SQLAlchemyError as exc:
            detail = type(getattr(exc, "orig", None) or exc).__name__
            raise StorageError(f"cannot write the audit_log table ({detail})") from None
    return record


def read_audit(factory: sessionmaker[Session], *, limit: int = 100,
               action: str | None = None) -> list[dict[str, Any]]:
    """The latest ``limit`` entries of the ``audit_log`` table, oldest first.

    Args:
        factory: session factory of the hospital database.
        limit: maximum number of entries (>= 1).
        action: only entries of this action (e.g. ``"login"``).

    Returns:
        The JSON objects as written by :func:`append_audit`.
    """
    stmt = select(AuditRecord.entry).order_by(AuditRecord.id.desc()).limit(max(1, limit))
    if action is not None:
        stmt = stmt.where(AuditRecord.action == action)
    with factory() as session:
        rows = list(session.scalars(stmt))
    return [json.loads(row) for row in reversed(rows)]
