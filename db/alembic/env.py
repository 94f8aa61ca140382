"""Alembic environment for the sweeper results database.

Used two ways:

* programmatically by :mod:`db.migrate`, which hands over an open connection in ``config.attributes["connection"]``;
* by the ``alembic`` CLI from the repository root (``alembic.ini``), with the database URL from ``-x db=URL``,
  else ``$SWEEPER_DB``, else ``sqlite:///sweeper.db`` — e.g. ``alembic -x db=sqlite:///x.db upgrade head``.

SQLite migrations run in batch mode (``render_as_batch``: ALTER by copy-and-rename) with foreign keys off, so that
recreating a parent table does not cascade-delete its children.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from db.connection import make_engine, resolve_url
from db.migrate import VERSION_TABLE
from db.models import Base

config = context.config
target_metadata = Base.metadata

if (
    config.config_file_name is not None
    and config.get_section("loggers") is not None
    and config.attributes.get("configure_logger", True)
):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str | None:
    return context.get_x_argument(as_dictionary=True).get("db") or config.get_main_option("sqlalchemy.url") or None


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _migrate(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:  # must be set outside a transaction; restored below
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    url = resolve_url(_url())
    context.configure(
        url=url,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=url.get_backend_name() == "sqlite",
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the connection given by :mod:`db.migrate`, or one opened on the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _migrate(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
