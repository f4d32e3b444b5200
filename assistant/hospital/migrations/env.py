"""Alembic environment of the hospital tables (SQLite and PostgreSQL).

The database comes from, in order: a connection handed over by
:mod:`assistant.hospital.migrate` (``config.attributes["connection"]``), ``-x url=...``
on the ``alembic`` command line, ``sqlalchemy.url`` in the ini file, or the
assistant's settings (``hospital_db``, i.e. ``ASSISTANT_HOSPITAL_DB`` / assistant.toml).
"""

from __future__ import annotations

from alembic import context

from assistant.hospital.migrate import migration_options, target_metadata

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from assistant.hospital.db import database_url
    from assistant.settings import Settings

    return database_url(Settings().resolved_hospital_db)


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    url = _url()
    context.configure(url=url, target_metadata=target_metadata(), literal_binds=True,
                      **migration_options(url.split(":", 1)[0].split("+", 1)[0]))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata(),
                          **migration_options(connection.dialect.name))
        with context.begin_transaction():
            context.run_migrations()
        return
    from assistant.hospital.db import open_engine

    engine = open_engine(_url())
    try:
        with engine.connect() as conn:
            context.configure(connection=conn, target_metadata=target_metadata(),
                              **migration_options(conn.dialect.name))
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
