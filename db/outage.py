"""Which database errors an outage is made of: transient ones (wait and retry) and permanent ones (stop).

Transient: the server is unreachable or went away (connection refused, closed, reset; PostgreSQL shutting down or
starting up, SQLSTATE class 08 and 57P0x), SQLite's ``database is locked`` (another process holds the write lock past
the busy timeout), serialization failures and deadlocks (40001, 40P01), too many connections (53300), and any other
operational error (the driver's class for trouble outside the statement: a limit on the outage's length stops a study
whose trouble never ends).
Permanent: no space left (SQLite ``database or disk is full``, PostgreSQL 53100 / ``No space left on device``),
a schema that no longer matches (no such table or column: 42P01, 42703), credentials refused (28000, 28P01),
a read-only database, and any other error the driver raises that is not an operational one (a constraint, a bad
statement): retrying cannot help.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)

Kind = Literal["transient", "permanent"]

_PERMANENT_SQLSTATES = {"53100", "42P01", "42703", "28000", "28P01", "25006"}
_TRANSIENT_SQLSTATES = {"40001", "40P01", "53300", "57P01", "57P02", "57P03"}
_PERMANENT_TEXT = (
    "database or disk is full", "no space left", "disk full", "no such table", "no such column",
    "does not exist", "password authentication failed", "authentication failed", "readonly database",
    "read-only", "permission denied",
)


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def classify(exc: BaseException) -> Kind | None:
    """``transient`` or ``permanent`` for a database error; None for anything else (not a database fault)."""
    if isinstance(exc, DisconnectionError):
        return "transient"
    if not isinstance(exc, DBAPIError):
        return None
    state = _sqlstate(exc)
    text = str(getattr(exc, "orig", exc)).lower()
    if state in _PERMANENT_SQLSTATES or any(t in text for t in _PERMANENT_TEXT):
        return "permanent"
    if exc.connection_invalidated or state in _TRANSIENT_SQLSTATES or (state or "").startswith("08"):
        return "transient"
    return "transient" if isinstance(exc, (OperationalError, InterfaceError)) else "permanent"


def describe(exc: BaseException) -> str:
    """The driver's first line of the error (drivers never print passwords), without SQLAlchemy's statement."""
    lines = str(getattr(exc, "orig", exc)).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__
