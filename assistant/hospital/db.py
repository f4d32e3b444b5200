"""Opening the hospital database (SQLite file or PostgreSQL URL), and the read queries.

Targets: a path (or ``sqlite:///`` URL) is the embedded SQLite database; a
``postgresql+psycopg://user:password@host:5432/db`` URL is a PostgreSQL server shared by
several app workers. Everything above this module sees the same SQLAlchemy sessions.

Concurrency:

* SQLite: every connection runs in WAL mode with a busy timeout, so several processes
  (UI, CLI, allocator) can read while one writes, and a writer waits for the lock
  instead of failing. :func:`write_session` starts the transaction with ``BEGIN
  IMMEDIATE``, so a read-then-book sequence cannot be interleaved with another
  process's booking.
* PostgreSQL: :func:`write_session` takes a transaction-level advisory lock
  (``pg_advisory_xact_lock``) first, the same one-writer-at-a-time guarantee across
  every worker process and host; :func:`assistant.hospital.bookings.create_booking`
  also locks the resource row (``SELECT ... FOR UPDATE``).

On both, the triggers, CHECK constraints and partial unique indexes of
:mod:`assistant.hospital.models` refuse a double booking regardless, even for a writer
that bypasses :func:`write_session`.

A session reads from one snapshot until its transaction ends (SQLite; PostgreSQL reads
committed data per statement): call ``session.rollback()`` (or use a new session) to
see other processes' later commits. Do not call ``commit()`` inside
:func:`write_session`; it commits on exit.

The schema is created and upgraded by Alembic migrations (:mod:`assistant.hospital.migrate`).
The read queries live in :mod:`assistant.hospital.queries` and are re-exported here.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Integer, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError
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
    "WRITE_LOCK_KEY",
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
    "database_exists",
    "database_url",
    "department_load",
    "display_target",
    "find_doctors",
    "get_meta",
    "hospital_timezone",
    "is_sqlite",
    "next_free_imaging_slots",
    "next_free_slots",
    "open_db",
    "open_engine",
    "open_existing",
    "reset_sequences",
    "set_meta",
    "upgrade_database",
    "write_session",
]

#: How long a connection waits for another process's write lock (ms).
BUSY_TIMEOUT_MS = 10_000
#: PostgreSQL advisory lock key taken by :func:`write_session` (any fixed bigint; "HOSP").
WRITE_LOCK_KEY = 0x484F5350
#: How long a PostgreSQL connection attempt may take (s).
CONNECT_TIMEOUT_S = 10
#: Hospital timezone when the database does not record one.
from assistant.hospital.meta import DEFAULT_TIMEZONE, hospital_timezone, zone  # noqa: F401


def database_url(target: str | Path) -> str:
    """SQLAlchemy URL of ``target``: a path becomes ``sqlite:///<path>``; a URL stays
    (a bare ``postgresql://`` gets the installed driver, ``postgresql+psycopg://``).

    Raises:
        DataError: a URL SQLAlchemy cannot parse, or a database other than SQLite or
            PostgreSQL.
    """
    if isinstance(target, Path) or "://" not in str(target):
        return f"sqlite:///{Path(target)}"
    try:
        url = make_url(str(target))
    except ArgumentError:
        raise DataError("hospital_db: not a valid database URL") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise DataError(f"hospital_db: unsupported database '{url.get_backend_name()}' "
                        "(SQLite file or postgresql+psycopg:// URL)")
    if url.drivername == "postgresql":
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return str(target)


def is_sqlite(target: str | Path) -> bool:
    """Whether ``target`` is an SQLite database (a path or an ``sqlite://`` URL)."""
    return database_url(target).startswith("sqlite")


def _sqlite_path(target: str | Path) -> Path | None:
    """The file of an SQLite target (None for ``:memory:`` or a server URL)."""
    if not is_sqlite(target):
        return None
    database = make_url(database_url(target)).database
    return Path(database) if database and database != ":memory:" else None


def display_target(target: str | Path) -> str:
    """``target`` for messages and logs: the file path, or the URL with its password masked."""
    if isinstance(target, Path) or "://" not in str(target):
        return str(target)
    try:
        return make_url(str(target)).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def open_engine(path: str | Path) -> Engine:
    """Create an engine for ``path``: an SQLite file (parent folders are created) or a URL.

    SQLite: every connection gets ``journal_mode=WAL``, ``busy_timeout`` =
    :data:`BUSY_TIMEOUT_MS`, ``foreign_keys=ON`` and ``synchronous=NORMAL``;
    transactions are begun explicitly (``BEGIN`` or, in :func:`write_session`, ``BEGIN
    IMMEDIATE``) instead of by the sqlite3 driver.

    PostgreSQL (``postgresql+psycopg://``): a pooled engine (at most 20 connections per
    process, a caller waits up to 60 s for one) with ``pool_pre_ping`` (a restarted
    server costs one retry, not an error) and a connect timeout of
    :data:`CONNECT_TIMEOUT_S` s; nothing is contacted until first use.

    Args:
        path: the database file or URL, e.g. ``Settings.resolved_hospital_db``.

    Returns:
        The engine (one per process and database is enough; it pools connections).

    Raises:
        DataError: the folder cannot be created, or the URL is invalid/unsupported.
        StorageError: the disk is full.
    """
    url = database_url(path)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=15, pool_timeout=60,
                             connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    file = _sqlite_path(path)
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageError(f"{file}: disk full, cannot create folder") from None
            raise DataError(f"{file}: cannot create folder ({exc.strerror})") from None
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

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


def _no_tables(path: str | Path) -> DataError:
    return DataError(f"{display_target(path)}: no hospital tables; run `assistant hospital demo` "
                     "or import CSV")


def open_db(path: str | Path, *, create: bool = True) -> sessionmaker[Session]:
    """Open the hospital database and return a session factory.

    Args:
        path: SQLite file or database URL (``Settings.resolved_hospital_db``).
        create: create missing tables, or upgrade an older schema, with the Alembic
            migrations (idempotent; see :func:`create_schema`). With False, a database
            without the schema raises :class:`DataError`, and one whose schema revision
            is not the code's raises :class:`DataError` naming ``assistant db upgrade``.

    Returns:
        A ``sessionmaker``; its engine is ``factory.kw["bind"]``. Sessions do not
        expire objects on commit.

    Raises:
        StorageError: (a :class:`DataError`) the file is not an SQLite database, is
            corrupt, the disk is full, or the server cannot be reached.
        DataError: the database has no schema, or does not exist, and ``create`` is
            False (nothing is created then); a schema revision other than the code's.
    """
    file = _sqlite_path(path)
    if not create and file is not None and not file.is_file():
        raise _no_tables(path)
    engine = open_engine(path)
    where = display_target(path)
    try:
        if create:
            create_schema(engine)
        elif not inspect(engine).has_table("clinic_slots"):
            raise _no_tables(path)
        else:
            from assistant.hospital.migrate import check_revision

            check_revision(engine)
    except (DataError, StorageError):
        engine.dispose()
        raise
    except OperationalError as exc:
        engine.dispose()
        detail = _detail(exc)
        if "full" in detail.lower():
            raise StorageError(f"{where}: disk full ({detail})") from None
        if file is None and not is_sqlite(path):
            raise StorageError(f"{where}: cannot reach the database server ({detail})") from None
        raise StorageError(f"{where}: not a usable SQLite database ({detail}); restore it from a backup "
                           "or rebuild it (`assistant hospital demo` / `assistant hospital import`)") from None
    except DatabaseError as exc:  # corrupt, not SQLite
        engine.dispose()
        detail = _detail(exc)
        if "full" in detail.lower():
            raise StorageError(f"{where}: disk full ({detail})") from None
        kind = "SQLite database" if file is not None else "database"
        raise StorageError(f"{where}: not a usable {kind} ({detail}); restore it from a backup "
                           "or rebuild it (`assistant hospital demo` / `assistant hospital import`)") from None
    except OSError as exc:
        engine.dispose()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageError(f"{where}: disk full") from None
        raise StorageError(f"{where}: cannot open ({exc.strerror})") from None
    return sessionmaker(bind=engine, expire_on_commit=False)


def _detail(exc: DatabaseError) -> str:
    """First line of the driver's message (never the URL, so never a password)."""
    orig = exc.orig if exc.orig is not None else exc
    return (str(orig).splitlines() or [type(orig).__name__])[0][:200]


def database_exists(path: str | Path) -> bool:
    """Whether ``path`` holds hospital tables: the SQLite file exists, or the server has
    the ``clinic_slots`` table. A corrupt SQLite file counts as existing (opening it
    reports the damage).

    Raises:
        StorageError: the database server cannot be reached or refuses the login - never
            "no tables", so a caller never builds a demo over a hospital it cannot see.
    """
    file = _sqlite_path(path)
    if file is not None:
        return file.is_file()
    engine = open_engine(path)
    try:
        return inspect(engine).has_table("clinic_slots")
    except DatabaseError as exc:
        raise StorageError(f"{display_target(path)}: cannot reach the database server ({_detail(exc)})") from None
    finally:
        engine.dispose()


def open_existing(path: str | Path) -> sessionmaker[Session] | None:
    """:func:`open_db` with ``create=False`` when :func:`database_exists`, else None (also
    when the server cannot be reached: the caller runs without the tables)."""
    try:
        return open_db(path, create=False) if database_exists(path) else None
    except StorageError:
        if _sqlite_path(path) is not None:
            raise
        return None


def upgrade_database(path: str | Path, revision: str = "head") -> tuple[str | None, str | None]:
    """``assistant db upgrade``: bring the database at ``path`` (file or URL) to ``revision``
    (default the newest) with the Alembic migrations; a pre-migration database is adopted.

    Returns:
        ``(revision before, revision after)`` (None: no ``alembic_version``).

    Raises:
        StorageError: the database cannot be opened or written (as :func:`open_db`).
        DataError: an unknown revision.
    """
    from assistant.hospital.migrate import upgrade

    engine = open_engine(path)
    try:
        return upgrade(engine, revision)
    except OperationalError as exc:
        raise StorageError(f"{display_target(path)}: cannot upgrade the schema ({_detail(exc)})") from None
    finally:
        engine.dispose()


def create_schema(engine: Engine) -> None:
    """Create or upgrade the schema (Alembic ``upgrade head``) and seed ``hospital_meta``.

    A database made before migrations existed (tables, no ``alembic_version``) is
    adopted: missing tables of the initial revision are created and it is stamped at
    that revision before upgrading. Also records ``schema_version`` and, when absent,
    ``timezone`` = :data:`DEFAULT_TIMEZONE` in ``hospital_meta``.

    Args:
        engine: from :func:`open_engine`.
    """
    from assistant.hospital.migrate import ensure_schema

    ensure_schema(engine)
    with Session(engine) as session, session.begin():
        if session.get(HospitalMeta, "schema_version") is None:
            session.add(HospitalMeta(key="schema_version", value=SCHEMA_VERSION))
        if session.get(HospitalMeta, "timezone") is None:
            session.add(HospitalMeta(key="timezone", value=DEFAULT_TIMEZONE))


@contextmanager
def write_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session holding the database's write lock: commit on exit, roll back on error.

    SQLite: the transaction starts with ``BEGIN IMMEDIATE``. PostgreSQL: it first takes
    ``pg_advisory_xact_lock(WRITE_LOCK_KEY)`` (released at commit/rollback). Either way,
    take the lock first, then read free capacity and book: no other process or worker
    can book in between. Keep the block short; other writers wait (SQLite up to
    :data:`BUSY_TIMEOUT_MS`).

    Args:
        factory: from :func:`open_db`.

    Yields:
        The session.
    """
    with factory() as session:
        conn = session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def reset_sequences(session: Session) -> None:
    """PostgreSQL: move every integer-id sequence past the largest id (rows inserted
    with explicit ids, as the demo and the CSV import do, leave them behind).
    A no-op on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in Base.metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or pk[0].autoincrement is False or not isinstance(pk[0].type, Integer):
            continue
        column = pk[0].name
        session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column}'), "
            f"COALESCE((SELECT max({column}) FROM {table.name}), 0) + 1, false)"))


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
