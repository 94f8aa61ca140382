"""Connections to the results database: URL defaults and parsing, password redaction, engines with SQLite pragmas.

* :func:`resolve_url` — a URL (default: env ``SWEEPER_DB``, else ``sqlite:///sweeper.db``) checked for a supported
  scheme; ``postgresql://`` URLs get psycopg 3.
* :func:`make_engine` — an Engine for a URL. SQLite connections get WAL, a 30 s busy timeout and foreign keys on.
* :func:`redact` — a URL with its password masked, for every message that shows a URL.

The schema-version gate (``open_db``) is :mod:`db.engine`, on top of this module and :mod:`db.migrate`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from db.errors import SweeperDBError

__all__ = [
    "BUSY_TIMEOUT_S",
    "DatabaseURLError",
    "DEFAULT_URL",
    "ENV_VAR",
    "SUPPORTED_URLS",
    "make_engine",
    "redact",
    "resolve_url",
    "sqlite_path",
]

ENV_VAR = "SWEEPER_DB"
DEFAULT_URL = "sqlite:///sweeper.db"
BUSY_TIMEOUT_S = 30.0

_PG_ALIASES = {"postgresql", "postgres", "postgresql+psycopg", "postgres+psycopg"}
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_SECRET_QUERY_KEYS = {"password", "passfile", "sslpassword"}
SUPPORTED_URLS = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST[:PORT]/DB"


class DatabaseURLError(SweeperDBError, ValueError):
    """A database URL sweeper cannot use (not a URL, or an unsupported scheme); the message is one line."""


def resolve_url(url: str | URL | None = None) -> URL:
    """Parse ``url`` (or ``$SWEEPER_DB``, or the default); ``postgresql://``/``postgres://`` get the psycopg driver.

    Raises :class:`DatabaseURLError` for a string that is not a URL and for schemes other than SQLite and
    PostgreSQL (psycopg 3), naming the supported ones.
    """
    raw = url if url is not None else (os.environ.get(ENV_VAR) or DEFAULT_URL)
    try:
        parsed = make_url(raw)
    except Exception:  # sqlalchemy.exc.ArgumentError, or a value that is not a string at all
        raise DatabaseURLError(f"database URL {redact(str(raw))!r} is not a URL; use {SUPPORTED_URLS}") from None
    if parsed.drivername in _PG_ALIASES:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in _SQLITE_DRIVERS:
        scheme = parsed.drivername
        backend = scheme.split("+")[0]
        guess = difflib.get_close_matches(backend, ["sqlite", "postgresql"], n=1)
        if backend in ("postgresql", "postgres", "sqlite"):
            hint = f" (sweeper picks the driver: write {backend}://…)"
        else:
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise DatabaseURLError(f"database URL {redact(parsed)}: unsupported scheme {scheme!r}{hint}; sweeper "
                               f"supports {SUPPORTED_URLS}")
    return parsed


def redact(url: str | URL) -> str:
    """The URL as a string with its password (also a ``?password=`` query value) replaced by ``***``."""
    try:
        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy parses: mask anything between "user:" and "@"
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))
    secret = {k: "***" for k in parsed.query if k.lower() in _SECRET_QUERY_KEYS}
    if secret:
        parsed = parsed.update_query_dict(secret)
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(database)


def _set_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def make_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """Create an Engine for ``url`` (see :func:`resolve_url`); ``kwargs`` go to :func:`sqlalchemy.create_engine`.

    SQLite: the file's folder is created if missing; each connection runs ``journal_mode=WAL``,
    ``busy_timeout=30000`` and ``foreign_keys=ON``. PostgreSQL: pooled connections are pinged before use.
    JSON is written strictly (no ``NaN`` tokens; :class:`db.types.PortableJSON` tags non-finite floats).
    """
    parsed = resolve_url(url)
    kwargs.setdefault("json_serializer", lambda obj: json.dumps(obj, allow_nan=False))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = sqlite_path(parsed)
        if path is not None:
            folder = path.expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseURLError(f"database URL {redact(parsed)}: cannot create the folder {folder} for the "
                                       f"SQLite file: {exc.strerror or type(exc).__name__}") from None
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", BUSY_TIMEOUT_S)
        engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
        sa.event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    if backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(parsed, **kwargs)
