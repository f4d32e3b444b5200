"""Opening the hospital SQLite database, and the read queries the rest of the system uses.

Concurrency: every connection runs in WAL mode with a busy timeout, so several
processes (UI, CLI, allocator) can read while one writes, and a writer waits for the
lock instead of failing. Use :func:`write_session` for anything that books: it starts
the transaction with ``BEGIN IMMEDIATE`` so a read-then-book sequence cannot be
interleaved with another process's booking. The triggers and CHECK constraints of
:mod:`assistant.hospital.models` refuse a double booking regardless.

A session reads from one snapshot until its transaction ends: call
``session.rollback()`` (or use a new session) to see other processes' later commits.
Do not call ``commit()`` inside :func:`write_session`; it commits on exit.

The read queries live in :mod:`assistant.hospital.queries` and are re-exported here.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from assistant.errors import DataError, StorageError
from assistant.hospital.models import SCHEMA_VERSION, Base, HospitalMeta
from assistant.hospital.queries import (
    BedCensus,
    ClinicAvailability,
    DepartmentLoad,
    DoctorInfo,
    FreeImagingSlot,
    FreeSlot,
    WardCensus,
    bed_census,
    clinic_availability,
    department_load,
    find_doctors,
    next_free_imaging_slots,
    next_free_slots,
)

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DEFAULT_TIMEZONE",
    "BedCensus",
    "ClinicAvailability",
    "DepartmentLoad",
    "DoctorInfo",
    "FreeImagingSlot",
    "FreeSlot",
    "WardCensus",
    "bed_census",
    "clinic_availability",
    "create_schema",
    "department_load",
    "find_doctors",
    "get_meta",
    "hospital_timezone",
    "next_free_imaging_slots",
    "next_free_slots",
    "open_db",
    "open_engine",
    "set_meta",
    "write_session",
]

#: How long a connection waits for another process's write lock (ms).
BUSY_TIMEOUT_MS = 10_000
#: Hospital timezone when the database does not record one.
from assistant.hospital.meta import DEFAULT_TIMEZONE, hospital_timezone, zone  # noqa: E402, F401


def open_engine(path: str | Path) -> Engine:
    """Create an engine for the SQLite file ``path`` (parent folders are created).

    Every connection gets ``journal_mode=WAL``, ``busy_timeout`` =
    :data:`BUSY_TIMEOUT_MS`, ``foreign_keys=ON`` and ``synchronous=NORMAL``.
    Transactions are begun explicitly (``BEGIN`` or, in :func:`write_session`,
    ``BEGIN IMMEDIATE``) instead of by the sqlite3 driver.

    Args:
        path: the database file, e.g. ``Settings.resolved_hospital_db``.

    Returns:
        The engine (one per process and file is enough; it pools connections).

    Raises:
        DataError: the folder cannot be created.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageError(f"{path}: disk full, cannot create folder") from None
        raise DataError(f"{path}: cannot create folder ({exc.strerror})") from None
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def open_db(path: str | Path, *, create: bool = True) -> sessionmaker[Session]:
    """Open the hospital database and return a session factory.

    Args:
        path: SQLite file (``Settings.resolved_hospital_db``).
        create: create missing tables (idempotent). With False, a file without the
            schema raises :class:`DataError`.

    Returns:
        A ``sessionmaker``; its engine is ``factory.kw["bind"]``. Sessions do not
        expire objects on commit.

    Raises:
        StorageError: (a :class:`DataError`) the file is not an SQLite database, is
            corrupt, or the disk is full.
        DataError: the file has no schema, or does not exist, and ``create`` is False
            (nothing is created on disk then).
    """
    if not create and not Path(path).is_file():
        raise DataError(f"{path}: no hospital tables; run `assistant hospital demo` or import CSV")
    engine = open_engine(path)
    try:
        if create:
            create_schema(engine)
        elif not inspect(engine).has_table("clinic_slots"):
            raise DataError(
                f"{path}: no hospital tables; run `assistant hospital demo` or import CSV"
            )
    except DatabaseError as exc:  # OperationalError included: corrupt, not SQLite, disk full
        engine.dispose()
        detail = str(exc.orig).splitlines()[0][:200] if exc.orig is not None else type(exc).__name__
        if "full" in detail.lower():
            raise StorageError(f"{path}: disk full ({detail})") from None
        raise StorageError(f"{path}: not a usable SQLite database ({detail}); restore it from a backup "
                           "or rebuild it (`assistant hospital demo` / `assistant hospital import`)") from None
    except OSError as exc:
        engine.dispose()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageError(f"{path}: disk full") from None
        raise StorageError(f"{path}: cannot open ({exc.strerror})") from None
    return sessionmaker(bind=engine, expire_on_commit=False)


def create_schema(engine: Engine) -> None:
    """Create all tables, indexes and booking triggers that do not exist yet.

    Also records ``schema_version`` and, when absent, ``timezone`` =
    :data:`DEFAULT_TIMEZONE` in ``hospital_meta``.

    Args:
        engine: from :func:`open_engine`.
    """
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        if session.get(HospitalMeta, "schema_version") is None:
            session.add(HospitalMeta(key="schema_version", value=SCHEMA_VERSION))
        if session.get(HospitalMeta, "timezone") is None:
            session.add(HospitalMeta(key="timezone", value=DEFAULT_TIMEZONE))


@contextmanager
def write_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one ``BEGIN IMMEDIATE`` transaction: commit on exit, roll back on error.

    Take the write lock first, then read free capacity and book: no other process can
    book in between. Keep the block short; other writers wait up to
    :data:`BUSY_TIMEOUT_MS`.

    Args:
        factory: from :func:`open_db`.

    Yields:
        The session.
    """
    with factory() as session:
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_meta(session: Session, key: str, default: str | None = None) -> str | None:
    """Value of ``key`` in ``hospital_meta``, or ``default``."""
    row = session.get(HospitalMeta, key)
    return row.value if row is not None else default


def set_meta(session: Session, key: str, value: str) -> None:
    """Insert or update ``key`` in ``hospital_meta`` (caller commits)."""
    row = session.get(HospitalMeta, key)
    if row is None:
        session.add(HospitalMeta(key=key, value=value))
    else:
        row.value = value
