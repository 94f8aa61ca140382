"""Opening the results database at this code's schema: :func:`open_db`, the schema-version gate the CLI and the Tune
callback call — :func:`~db.connection.make_engine` plus the check that the schema is at this code's head revision.

URLs and engines are :mod:`db.connection` (re-exported here, where callers have always found them); migrations are
:mod:`db.migrate`. Both sit below this module, so neither imports it.
"""

from __future__ import annotations

import shlex

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from db import migrate
from db.connection import (
    BUSY_TIMEOUT_S,
    DEFAULT_URL,
    ENV_VAR,
    SUPPORTED_URLS,
    DatabaseURLError,
    make_engine,
    redact,
    resolve_url,
    sqlite_path,
)
from db.errors import DatabaseVersionError

__all__ = [
    "BUSY_TIMEOUT_S",
    "DatabaseURLError",
    "DEFAULT_URL",
    "ENV_VAR",
    "SUPPORTED_URLS",
    "make_engine",
    "open_db",
    "redact",
    "resolve_url",
    "sqlite_path",
    "upgrade_command",
]


def upgrade_command(url: str | URL) -> str:
    """The shell command that brings the database at ``url`` to this code's schema (password masked)."""
    return f"sweeper db upgrade --db {shlex.quote(redact(url))}"


def open_db(url: str | URL | None = None, create: bool = False) -> Engine:
    """An Engine for a database whose schema is at this code's head revision.

    An empty database (no sweeper tables, no revision) is upgraded to head when ``create`` is true. Anything else
    not at head — an older revision, an unknown (newer) one, an empty database with ``create=False``, or a missing
    SQLite file — raises :class:`~db.errors.DatabaseVersionError` whose one-line message names the command to run,
    ``sweeper db upgrade --db <url with password masked>``.
    """
    parsed = resolve_url(url)
    shown = redact(parsed)
    command = upgrade_command(parsed)
    if parsed.get_backend_name() == "sqlite" and not create:
        path = sqlite_path(parsed)
        if path is not None and not path.expanduser().exists():
            raise DatabaseVersionError(f"no database at {shown}; create it with: {command}")
    engine = make_engine(parsed)
    try:
        _check_revision(engine, shown, command, create)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _check_revision(engine: Engine, shown: str, command: str, create: bool) -> None:
    current = migrate.current(engine)
    if current == migrate.HEAD_REVISION:  # the usual case, decided without loading Alembic
        return
    head = migrate.head()
    if current is None:
        present = sorted(set(sa.inspect(engine).get_table_names()) & set(migrate.schema_tables()))
        if present:
            raise DatabaseVersionError(
                f"database {shown} has sweeper tables ({', '.join(present)}) but no schema revision; it was not "
                f"made by `sweeper db upgrade` — use another database, or move these tables away and run: {command}"
            )
        if create:
            migrate.upgrade(engine)
            return
        raise DatabaseVersionError(f"database {shown} has no sweeper schema yet; create it with: {command}")
    if migrate.is_known_revision(current):
        raise DatabaseVersionError(
            f"database {shown} is at schema revision {current}, this sweeper needs {head}; run: {command}"
        )
    raise DatabaseVersionError(
        f"database {shown} is at schema revision {current}, unknown to this sweeper (head {head}): it was written by "
        f"a newer sweeper; install that version (or a newer one) and run: {command}"
    )
