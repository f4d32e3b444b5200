"""Alembic migrations of the hospital tables, on SQLite and on a real PostgreSQL server.

``upgrade head`` on an empty database must give exactly the SQLAlchemy metadata
(autogenerate finds no difference) plus the booking triggers; a database made before
migrations is adopted without losing rows; a database at an older revision is refused
by ``open_db(create=False)`` until ``assistant db upgrade`` runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from assistant.errors import DataError
from assistant.hospital.db import open_db, open_engine
from assistant.hospital.migrate import (
    BASELINE_REVISION,
    BASELINE_TABLES,
    alembic_config,
    current_revision,
    ensure_schema,
    HEAD_REVISION,
    head_revision,
    migration_options,
    target_metadata,
)
from assistant.hospital.triggers import TRIGGER_NAMES

_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database: an SQLite file, or a new database on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'h.sqlite'}"
    else:
        server = request.getfixturevalue("postgres_server")
        yield server.create_database(f"mig{next(_names)}")


def _diff(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts=migration_options(conn.dialect.name))
            return compare_metadata(context, target_metadata())
    finally:
        engine.dispose()


def _triggers(url: str) -> set[str]:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            else:
                sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
            return set(conn.execute(text(sql)).scalars())
    finally:
        engine.dispose()


def test_upgrade_head_on_an_empty_database_is_exactly_the_metadata(empty_db: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(empty_db), "head")
    diff = _diff(empty_db)
    assert diff == [], (
        "the models differ from the migrations: add a revision (README 'Database migrations'): "
        f"{diff[:5]}"
    )
    dialect = "sqlite" if empty_db.startswith("sqlite") else "postgresql"
    assert _triggers(empty_db) == set(TRIGGER_NAMES[dialect])
    engine = open_engine(empty_db)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    engine.dispose()
    # ... and back down to nothing
    command.downgrade(alembic_config(empty_db), "base")
    assert set(inspect(create_engine(empty_db)).get_table_names()) == {"alembic_version"}
    assert _triggers(empty_db) == set()


def test_a_database_made_before_migrations_is_adopted_with_its_rows(tmp_path: Path) -> None:
    from assistant.hospital.models import Base

    path = tmp_path / "old.sqlite"
    engine = open_engine(path)
    old_tables = [Base.metadata.tables[n] for n in BASELINE_TABLES if n not in ("audit_log", "demand_signals")]
    Base.metadata.create_all(engine, tables=old_tables)  # the pre-migration file: no alembic_version
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO departments (code, name_en, name_zh, treats_en, treats_zh) "
                          "VALUES ('ENT', 'ENT', '耳鼻喉科', '', '')"))
    assert ensure_schema(engine) == "adopted"
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert conn.execute(text("SELECT name_zh FROM departments")).scalar_one() == "耳鼻喉科"
    engine.dispose()
    assert _diff(f"sqlite:///{path}") == []
    assert ensure_schema(open_engine(path)) == "current"


def test_an_older_revision_is_refused_until_db_upgrade(empty_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from alembic import command
    from typer.testing import CliRunner

    from assistant.cli import app

    if BASELINE_REVISION == head_revision():
        pytest.skip("only one revision: nothing to upgrade from")
    command.upgrade(alembic_config(empty_db), BASELINE_REVISION)
    with pytest.raises(DataError, match="assistant db upgrade"):
        open_db(empty_db, create=False)
    monkeypatch.setenv("ASSISTANT_HOSPITAL_DB", empty_db)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"{BASELINE_REVISION} -> {head_revision()}" in result.output
    assert "password" not in result.output
    open_db(empty_db, create=False).kw["bind"].dispose()
    assert _diff(empty_db) == []


def test_a_revision_from_a_newer_version_is_an_error_not_a_guess(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    open_db(path).kw["bind"].dispose()
    engine = open_engine(path)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff99'"))
    with pytest.raises(DataError, match="ffff99"):
        open_db(path)
    with pytest.raises(DataError, match="ffff99"):
        open_db(path, create=False)
    engine.dispose()


def test_migrations_ship_in_the_package() -> None:
    from assistant.hospital.migrate import MIGRATIONS_DIR

    versions = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    assert (MIGRATIONS_DIR / "env.py").is_file() and (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert versions[0].startswith(BASELINE_REVISION)


def test_the_fast_head_constant_is_alembics_head() -> None:
    """The start-up probe compares with HEAD_REVISION instead of importing Alembic; a new
    revision without updating it would leave databases un-upgraded."""
    assert HEAD_REVISION == head_revision()
