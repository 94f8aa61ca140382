"""Columnar reads: the numeric result of a SELECT as numpy arrays, with no Python object per row.

The rows are fetched by an ADBC driver (``adbc-driver-sqlite``, ``adbc-driver-postgresql``) as Arrow columns over
a connection of its own to the same database, so a read sees what is committed (a caller's uncommitted writes are
not in it). SQLAlchemy still builds the statement; its parameters are rendered as literals (integers and strings
only: the ids and names the read API passes). An in-memory SQLite database, which no second connection can open, is
read through the caller's DBAPI cursor instead.

SQLite keeps a NaN of a :class:`~db.types.PortableFloat` column as the text ``'NaN'``, which an Arrow column of
doubles cannot hold: each float column is read as ``CASE WHEN x <= +inf THEN x END`` (a number, else NULL) and the
few rows holding the text are then read by their key (a second, filtered scan) and set to NaN.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from db.connection import sqlite_path
from db.types import PortableFloat

__all__ = ["Columns", "read_columns"]

Columns = dict[str, np.ndarray]
"""Column name → array of shape (rows,): int64 for integer columns, float64 for float columns (NULL read as NaN)."""

_INF = sa.literal_column("9e999")  # SQLite reads the literal as +inf; the text 'NaN' sorts above every number


def _floats(stmt: sa.Select[Any]) -> list[str]:
    return [c.name for c in stmt.selected_columns if isinstance(c.type, PortableFloat)]


def _sql(conn: Connection, stmt: sa.Select[Any]) -> str:
    return str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def _guarded(stmt: sa.Select[Any]) -> sa.Select[Any]:
    """``stmt`` with each PortableFloat column read as a number or NULL (SQLite's NaN text becomes NULL)."""
    cols = [sa.case((c <= _INF, c)).label(c.name) if isinstance(c.type, PortableFloat) else c
            for c in stmt.selected_columns]
    return stmt.with_only_columns(*cols, maintain_column_froms=True)


def _adbc_uri(conn: Connection) -> tuple[str, str] | None:
    """(driver module, URI) of a second connection to ``conn``'s database; None for an in-memory SQLite one."""
    url = conn.engine.url
    if conn.dialect.name == "sqlite":
        path = sqlite_path(url)
        if path is None:
            return None
        return "adbc_driver_sqlite.dbapi", "file:" + urllib.parse.quote(str(path.expanduser().resolve()))
    if conn.dialect.name == "postgresql":
        return "adbc_driver_postgresql.dbapi", url.set(drivername="postgresql").render_as_string(hide_password=False)
    raise NotImplementedError(f"no columnar read for dialect {conn.dialect.name!r} (use sqlite or postgresql)")


def _fetch_arrow(module: str, uri: str, sql: str, floats: set[str]) -> tuple[Columns, Columns]:
    """Values and NULL masks (float columns) of ``sql`` through the ADBC driver ``module``."""
    import importlib

    dbapi = importlib.import_module(module)
    with dbapi.connect(uri) as adbc, adbc.cursor() as cur:
        if module == "adbc_driver_sqlite.dbapi":  # infer each column's type from the whole result, not 1024 rows
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(2**30)})
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    values = {name: table.column(name).to_numpy() for name in table.column_names}
    return values, {name: table.column(name).is_null().to_numpy() for name in floats}


def _fetch_dbapi(conn: Connection, sql: str, names: Sequence[str], floats: set[str]) -> tuple[Columns, Columns]:
    """Values and NULL masks of ``sql`` through ``conn``'s own cursor (SQLite only: no NaN in a guarded read)."""
    rows = conn.exec_driver_sql(sql).fetchall()
    data = np.array(rows, dtype=float).reshape(len(rows), len(names))
    values = {name: data[:, i] for i, name in enumerate(names)}
    return values, {name: np.isnan(values[name]) for name in floats}


def _row(out: Columns, key: Sequence[str], values: Sequence[Any]) -> int:
    """The index of the row whose ``key`` columns (sorted lexicographically) hold ``values``."""
    lo, hi = 0, len(out[key[0]])
    for name, value in zip(key, values):
        col = out[name][lo:hi]
        lo, hi = lo + int(np.searchsorted(col, value, "left")), lo + int(np.searchsorted(col, value, "right"))
    return lo


def _set_sqlite_nans(conn: Connection, stmt: sa.Select[Any], key: Sequence[str], out: Columns,
                     nulls: Columns) -> None:
    """Set NaN (not NULL) where SQLite holds the text 'NaN' in a float column of ``stmt``."""
    floats = _floats(stmt)
    if not floats:
        return
    by_name = {c.name: c for c in stmt.selected_columns}
    locate = (stmt.with_only_columns(*(by_name[k] for k in key), *(by_name[f] for f in floats),
                                     maintain_column_froms=True)
              .where(sa.or_(*(by_name[f] > _INF for f in floats))))
    for row in conn.execute(locate):  # PortableFloat reads the text back as NaN
        at = _row(out, key, row[: len(key)])
        for name, value in zip(floats, row[len(key):]):
            if value is not None and math.isnan(value):
                out[name][at], nulls[name][at] = np.nan, False


def read_columns(conn: Connection, stmt: sa.Select[Any], key: Sequence[str]) -> tuple[Columns, Columns]:
    """Run ``stmt`` (numeric columns only, ordered by the integer columns ``key``, which identify a row) and return
    its columns and, for each PortableFloat column, its NULL mask (True = not measured; NaN is a value).

    Integer columns come back as int64 (``key`` columns must not be NULL), float columns as float64 with NULL and
    NaN both NaN (the mask tells them apart).
    """
    names = [c.name for c in stmt.selected_columns]
    floats = set(_floats(stmt))
    read = _guarded(stmt) if conn.dialect.name == "sqlite" else stmt
    sql = _sql(conn, read)
    target = _adbc_uri(conn)
    raw, nulls = _fetch_dbapi(conn, sql, names, floats) if target is None else _fetch_arrow(*target, sql, floats)
    out = {name: np.array(raw[name], dtype=float if name in floats else np.int64) for name in names}
    nulls = {name: np.array(mask, dtype=bool) for name, mask in nulls.items()}
    if conn.dialect.name == "sqlite" and len(out[key[0]]):
        _set_sqlite_nans(conn, stmt, key, out, nulls)
    return out, nulls
