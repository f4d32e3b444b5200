"""Schema migrations of the hospital tables with Alembic, for SQLite and PostgreSQL.

The revisions live in ``assistant/hospital/migrations/versions`` (shipped in the wheel).
:func:`ensure_schema` is what :func:`assistant.hospital.db.open_db` runs: it brings any
database to the head revision,

* an empty database: ``upgrade head`` (the revisions create every table and trigger);
* a database made before migrations existed (hospital tables, no ``alembic_version``):
  adopted - the missing tables of the initial revision are created, it is stamped at
  :data:`BASELINE_REVISION`, then upgraded;
* an older revision: ``upgrade head``; the current one: nothing (one query).

It holds the database's write lock meanwhile (SQLite ``BEGIN IMMEDIATE``, PostgreSQL a
transaction-level advisory lock), so several workers starting at once upgrade once.

Tables of other modules registered on :data:`assistant.hospital.models.Base.metadata`
are listed in :data:`MODEL_MODULES`, so autogenerate and the schema test see them.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, inspect, text

from assistant.errors import DataError

__all__ = [
    "BASELINE_REVISION",
    "BASELINE_TABLES",
    "MIGRATIONS_DIR",
    "MODEL_MODULES",
    "alembic_config",
    "check_revision",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "migration_options",
    "target_metadata",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Modules whose tables are on the hospital metadata (imported before autogenerate).
#: A module that is not installed is skipped.
MODEL_MODULES: tuple[str, ...] = (
    "assistant.hospital.models",
    "assistant.hospital.operations",
    "assistant.operations.models",
)
#: The initial revision: the schema as it was when migrations were introduced.
BASELINE_REVISION = "0001"
#: Tables of :data:`BASELINE_REVISION` (a pre-migration database is adopted with these).
BASELINE_TABLES = (
    "hospital_meta", "departments", "doctors", "doctor_sub_specialties", "doctor_languages",
    "clinic_sessions", "clinic_slots", "wards", "imaging_slots", "services", "demand_signals",
    "audit_log", "bookings",
)
#: PostgreSQL advisory lock key held while migrating ("MIGR").
MIGRATION_LOCK_KEY = 0x4D494752


def target_metadata() -> MetaData:
    """The hospital metadata with every module of :data:`MODEL_MODULES` imported."""
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
    from assistant.hospital.models import Base

    return Base.metadata


def migration_options(dialect: str) -> dict[str, Any]:
    """``context.configure`` options: batch mode on SQLite (its ALTER TABLE is limited),
    type comparison on, so autogenerate also reports changed column types."""
    return {"render_as_batch": dialect == "sqlite", "compare_type": True}


def alembic_config(url: str | None = None) -> Any:
    """An Alembic ``Config`` for the packaged migrations (no ini file needed).

    Args:
        url: database URL for commands that open their own connection.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


HEAD_REVISION = "0002"
"""The newest revision in ``migrations/versions`` (update it with each new revision;
``tests/test_migrations.py`` checks it against Alembic's own head). Lets every CLI call and
worker start confirm an up-to-date database without importing Alembic (~0.25 s)."""


@functools.cache
def head_revision() -> str:
    """The head revision id of the packaged migrations (one head, no branches)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise DataError(f"migrations have {len(heads)} heads ({', '.join(heads)}): merge them")
    return heads[0]


def current_revision(conn: Connection) -> str | None:
    """Revision recorded in ``alembic_version``, or None (no such table / no row)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def _upgrade(conn: Connection, revision: str = "head") -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def _stamp(conn: Connection, revision: str) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.stamp(cfg, revision)


def ensure_schema(engine: Engine) -> str:
    """Bring the database to the head revision (see the module docstring).

    Args:
        engine: from :func:`assistant.hospital.db.open_engine`.

    Returns:
        What was done: ``"current"``, ``"created"``, ``"adopted"`` or ``"upgraded"``.

    Raises:
        DataError: the database is at a revision these migrations do not know (made by
            a newer version of the assistant).
        sqlalchemy.exc.DatabaseError: the database cannot be read or written.
    """
    with engine.connect() as probe:  # cheap check without the write lock (or alembic)
        if current_revision(probe) == HEAD_REVISION:
            return "current"
    head = head_revision()
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        current = current_revision(conn)
        if current == head:
            return "current"
        _check_known(current)
        if current is None and inspect(conn).has_table("clinic_slots"):
            metadata = target_metadata()
            metadata.create_all(conn, tables=[metadata.tables[name] for name in BASELINE_TABLES])
            _stamp(conn, BASELINE_REVISION)
            _upgrade(conn)
            return "adopted"
        _upgrade(conn)
        return "created" if current is None else "upgraded"


def _check_known(revision: str | None) -> None:
    if revision is None:
        return
    from alembic.script import ScriptDirectory

    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown id
        raise DataError(f"the hospital database is at schema revision {revision}, unknown to this "
                        "version of the assistant (made by a newer one?)") from None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """``alembic upgrade`` of ``engine``'s database; to ``head`` via :func:`ensure_schema`
    (with adoption of a pre-migration database).

    Returns:
        ``(revision before, revision after)``.
    """
    with engine.connect() as conn:
        before = current_revision(conn)
    if revision == "head":
        ensure_schema(engine)
    else:
        with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            _upgrade(conn, revision)
    with engine.connect() as conn:
        after = current_revision(conn)
    return before, after


def check_revision(engine: Engine) -> None:
    """Refuse a database whose schema revision is not the code's head.

    A database without ``alembic_version`` (made before migrations) is accepted.

    Raises:
        DataError: another revision, with the command that upgrades it.
    """
    with engine.connect() as conn:
        current = current_revision(conn)
    if current is not None and current != HEAD_REVISION and current != head_revision():
        raise DataError(f"the hospital database is at schema revision {current}, this version needs "
                        f"{head_revision()}: run `assistant db upgrade`")
