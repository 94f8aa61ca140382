"""Run the Alembic migrations programmatically, from the installed package, whatever the current directory.

The scripts live in ``db/alembic`` (``alembic.ini`` at the repository root points there for the ``alembic`` CLI).
The revision is kept in the table ``sweeper_alembic_version`` so that a database shared with another Alembic user
(e.g. MLflow's ``alembic_version``) does not clash. Each function takes a URL (password-bearing URLs are fine; they
are never printed) or an existing :class:`~sqlalchemy.engine.Engine`.

Alembic is imported by the functions that need its script directory, not by this module: :func:`current` reads the
revision with plain SQL and :data:`HEAD_REVISION` names the head, so the gate ``db.engine.open_db`` loads Alembic only
for a database that is not at head (issue 11: start-up of the reading commands).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from db.connection import make_engine, resolve_url, sqlite_path
from db.errors import DatabaseVersionError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "HEAD_REVISION",
    "VERSION_TABLE",
    "SCRIPT_LOCATION",
    "alembic_config",
    "head",
    "current",
    "upgrade",
    "downgrade",
    "stamp",
    "is_known_revision",
    "schema_tables",
]

VERSION_TABLE = "sweeper_alembic_version"
HEAD_REVISION = "0005"
"""The head revision of ``db/alembic/versions``, known without loading Alembic; a test pins it to :func:`head`."""
SCRIPT_LOCATION = Path(__file__).resolve().with_name("alembic")

DbTarget = str | URL | Engine | None


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config for ``db/alembic``; ``connection``, if given, is the one ``env.py`` migrates."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _connect(target: DbTarget) -> Iterator[Connection]:
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.connect() as conn:
            yield conn
            conn.commit()
    finally:
        if engine is not target:
            engine.dispose()


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The head revision of this code's migrations, as Alembic computes it from the scripts."""
    rev = _scripts().get_current_head()
    if rev is None:
        raise RuntimeError(f"{SCRIPT_LOCATION / 'versions'} has no migration scripts: the sweeper installation is "
                           "incomplete; reinstall it")
    return rev


def is_known_revision(rev: str) -> bool:
    """Whether ``rev`` is a revision of this code's migrations."""
    from alembic.util.exc import CommandError

    try:
        return _scripts().get_revision(rev) is not None
    except CommandError:
        return False


def schema_tables() -> tuple[str, ...]:
    """The tables the migrations create (the models' tables)."""
    from db.models import Base

    return tuple(Base.metadata.tables)


def current(url: DbTarget = None) -> str | None:
    """The database's schema revision, or None for a database never migrated (or migrated down to base).

    A SQLite file that does not exist is reported as None, and not created. Read with plain SQL (what Alembic's
    ``MigrationContext.get_current_revision`` reads); a version table holding several revisions (never written by
    these linear migrations) raises :class:`~db.errors.DatabaseVersionError`.
    """
    if not isinstance(url, Engine):
        parsed = resolve_url(url)
        path = sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
        if path is not None and not path.expanduser().exists():
            return None
    with _connect(url) as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        revisions = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(revisions) > 1:
        raise DatabaseVersionError(f"the database's {VERSION_TABLE} holds several revisions "
                                   f"({', '.join(sorted(revisions))}); sweeper's migrations have one head "
                                   f"({HEAD_REVISION}): keep the right row only")
    return revisions[0] if revisions else None


def upgrade(url: DbTarget = None, rev: str = "head") -> None:
    """Migrate the database up to ``rev`` (default: head); a no-op when it is there already."""
    from alembic import command

    with _connect(url) as conn:
        command.upgrade(alembic_config(conn), rev)


def downgrade(url: DbTarget, rev: str) -> None:
    """Migrate the database down to ``rev`` (``"base"`` drops every sweeper table and all their data)."""
    from alembic import command

    with _connect(url) as conn:
        command.downgrade(alembic_config(conn), rev)


def stamp(url: DbTarget, rev: str) -> None:
    """Record ``rev`` as the database's revision without running migrations (repairs and tests)."""
    from alembic import command

    with _connect(url) as conn:
        command.stamp(alembic_config(conn), rev)
