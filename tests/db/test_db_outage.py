"""Database faults sorted into transient (wait and retry) and permanent (stop), as the drivers raise them."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from db.outage import classify, describe


class PgError(Exception):
    """A psycopg error as far as classify looks: its message and SQLSTATE."""

    def __init__(self, message: str, sqlstate: str | None):
        super().__init__(message)
        self.sqlstate = sqlstate


def wrapped(cls, orig, invalidated: bool = False):
    return cls("INSERT ...", {}, orig, connection_invalidated=invalidated)


CASES = [
    (wrapped(sa.exc.OperationalError, sqlite3.OperationalError("database is locked")), "transient"),
    (wrapped(sa.exc.OperationalError, sqlite3.OperationalError("unable to open database file")), "transient"),
    (wrapped(sa.exc.OperationalError, PgError('connection failed: connection to server at "127.0.0.1", port 5 '
                                              "failed: Connection refused", None)), "transient"),
    (wrapped(sa.exc.OperationalError, PgError("server closed the connection unexpectedly", None), True),
     "transient"),
    (wrapped(sa.exc.OperationalError, PgError("terminating connection due to administrator command", "57P01")),
     "transient"),
    (wrapped(sa.exc.OperationalError, PgError("could not serialize access", "40001")), "transient"),
    (wrapped(sa.exc.DBAPIError, PgError("the database system is starting up", "57P03")), "transient"),
    (sa.exc.DisconnectionError("pool ping failed"), "transient"),
    (wrapped(sa.exc.OperationalError, sqlite3.OperationalError("database or disk is full")), "permanent"),
    (wrapped(sa.exc.OperationalError, PgError('could not extend file "base/1/2": No space left on device',
                                              "53100")), "permanent"),
    (wrapped(sa.exc.OperationalError, sqlite3.OperationalError("no such column: points.lr")), "permanent"),
    (wrapped(sa.exc.ProgrammingError, PgError('column "lr" of relation "points" does not exist', "42703")),
     "permanent"),
    (wrapped(sa.exc.OperationalError, PgError('FATAL:  password authentication failed for user "s"', "28P01")),
     "permanent"),
    (wrapped(sa.exc.OperationalError, sqlite3.OperationalError("attempt to write a readonly database")),
     "permanent"),
    (wrapped(sa.exc.IntegrityError, sqlite3.IntegrityError("FOREIGN KEY constraint failed")), "permanent"),
    (ValueError("not a database error"), None),
]


@pytest.mark.parametrize("exc, kind", CASES, ids=[describe(c[0])[:40] for c in CASES])
def test_classify(exc, kind) -> None:
    assert classify(exc) == kind


def test_describe_is_the_driver_line_without_the_statement() -> None:
    exc = wrapped(sa.exc.OperationalError, PgError("server closed the connection unexpectedly\n\tThis probably "
                                                   "means the server terminated abnormally", None))
    assert describe(exc) == "server closed the connection unexpectedly"
