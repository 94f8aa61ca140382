"""Columnar reads: the numeric result of a SELECT as numpy arrays, one per column; a study's points
(:func:`read_points`) from its runs' blocks (:mod:`db.blocks`) and the rows after them.

PostgreSQL: the rows are fetched by the ADBC driver (``adbc-driver-postgresql``, binary COPY) as Arrow columns, with
no Python object per row, over a connection of its own: a read sees what is committed (a caller's uncommitted
writes are not in it). SQLAlchemy still builds the statement; its parameters are rendered as literals (integers and
strings only: the ids and names the read API passes).

SQLite: the caller's own connection's cursor, its rows converted to arrays at once. Never a second SQLite library
in the process (as ADBC's SQLite driver would be): POSIX locks are per process, so its connection would take itself
for the file's last user, checkpoint and delete the -wal/-shm that this process's sqlite3 connections still use,
and what they write next would be lost. SQLite keeps a NaN of a :class:`~db.types.PortableFloat` column as the text
``'NaN'``, which converts to NaN like NULL does: the few rows holding the text are then found by their key (a second
scan, of the columns that read a NaN) and their NaN is marked as a value, not as NULL.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from db.models import SEALED_STATUSES, Point, PointBlock, Run
from db.types import PortableFloat

if TYPE_CHECKING:
    import sqlite3

    import pyarrow as pa

__all__ = ["Columns", "read_columns", "read_points", "snapshot"]

Columns = dict[str, np.ndarray]
"""Column name → array of shape (rows,): int64 for integer columns, float64 for float columns (NULL read as NaN)."""

_KEY = ("run_id", "step")
"""The key of a read of points."""
_CHUNK_ROWS = 2**18
"""Rows fetched and converted at a time on SQLite (their tuples take ~0.5 KB a row of 18 columns)."""
# SQLite reads the literal as +inf; the text 'NaN' compares above numbers
_INF: sa.ColumnClause[float] = sa.literal_column("9e999")


def _floats(stmt: sa.Select[Any]) -> list[str]:
    return [c.name for c in stmt.selected_columns if isinstance(c.type, PortableFloat)]


def _sql(conn: Connection, stmt: sa.Select[Any]) -> str:
    return str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def _fetch_arrow(conn: Connection, sql: str, floats: set[str]) -> tuple[Columns, Columns]:
    """Values and NULL masks (float columns) of ``sql`` through ADBC's PostgreSQL driver."""
    import adbc_driver_postgresql.dbapi as adbc

    uri = conn.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with adbc.connect(uri) as pg, pg.cursor() as cur:
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    values = {name: table.column(name).to_numpy() for name in table.column_names}
    return values, {name: table.column(name).is_null().to_numpy() for name in floats}


def _fetch_sqlite(conn: Connection, sql: str, names: Sequence[str], floats: set[str]) -> tuple[Columns, Columns]:
    """Values and NULL masks of ``sql`` through ``conn``'s own sqlite3 cursor: NULL and the text 'NaN' both read
    as NaN, and both count as NULL until :func:`_set_sqlite_nans` tells them apart."""
    sqlite = cast("sqlite3.Connection", conn.connection.driver_connection)
    cursor = sqlite.cursor()  # plain tuples: no SQLAlchemy Row per row
    try:
        cursor.execute(sql)
        chunks = [np.empty((0, len(names)))]
        while rows := cursor.fetchmany(_CHUNK_ROWS):  # tuples of a chunk at a time: memory ∝ chunk, not result
            chunks.append(np.array(rows, dtype=float))
    finally:
        cursor.close()
    data = np.concatenate(chunks)
    values = {name: data[:, i] for i, name in enumerate(names)}
    return values, {name: np.isnan(values[name]) for name in floats}


def _row(out: Columns, key: Sequence[str], values: Sequence[Any]) -> int | None:
    """The index of the row whose ``key`` columns (sorted lexicographically) hold ``values``, None if none does."""
    lo, hi = 0, len(out[key[0]])
    for name, value in zip(key, values, strict=True):
        col = out[name][lo:hi]
        lo, hi = lo + int(np.searchsorted(col, value, "left")), lo + int(np.searchsorted(col, value, "right"))
    return lo if lo < hi else None


def _set_sqlite_nans(conn: Connection, stmt: sa.Select[Any], key: Sequence[str], out: Columns,
                     nulls: Columns) -> None:
    """Mark as NaN, not NULL, where SQLite holds the text 'NaN' in a float column of ``stmt``."""
    floats = [f for f in _floats(stmt) if nulls[f].any()]  # only a column that read a NaN can hold the text
    if not floats:
        return
    by_name = {c.name: c for c in stmt.selected_columns}
    locate = (stmt.with_only_columns(*(by_name[k] for k in key), *(by_name[f] for f in floats),
                                     maintain_column_froms=True)
              .where(sa.or_(*(by_name[f] > _INF for f in floats))))
    for row in conn.execute(locate):  # PortableFloat reads the text back as NaN
        at = _row(out, key, row[: len(key)])
        if at is None:  # committed by another connection after the first scan: not in the result
            continue
        for name, value in zip(floats, row[len(key):], strict=True):
            if value is not None and math.isnan(value):
                nulls[name][at] = False


def read_columns(conn: Connection, stmt: sa.Select[Any], key: Sequence[str]) -> tuple[Columns, Columns]:
    """Run ``stmt`` (numeric columns only, ordered by the integer columns ``key``, which identify a row) and return
    its columns and, for each PortableFloat column, its NULL mask (True = not measured; NaN is a value).

    Integer columns come back as int64 (``key`` columns must not be NULL), float columns as float64 with NULL and
    NaN both NaN (the mask tells them apart).
    """
    names = [c.name for c in stmt.selected_columns]
    floats = set(_floats(stmt))
    if conn.dialect.name == "sqlite":
        raw, nulls = _fetch_sqlite(conn, _sql(conn, stmt), names, floats)
    elif conn.dialect.name == "postgresql":
        raw, nulls = _fetch_arrow(conn, _sql(conn, stmt), floats)
    else:
        raise NotImplementedError(f"no columnar read for dialect {conn.dialect.name!r} (use sqlite or postgresql)")
    out = {name: np.require(raw[name], float if name in floats else np.int64, "W") for name in names}  # NaNs set below
    nulls = {name: np.require(mask, bool, "W") for name, mask in nulls.items()}
    if conn.dialect.name == "sqlite" and len(out[key[0]]):
        _set_sqlite_nans(conn, stmt, key, out, nulls)
    return out, nulls


@contextmanager
def snapshot(conn: Connection) -> Iterator[Connection]:
    """``conn`` inside one read transaction on SQLite, so that the statements run in it see one state of the file
    (Python's sqlite3 begins no transaction for a SELECT: each would see the latest commit); nothing to do when
    ``conn`` is in a transaction already, or on PostgreSQL (whose columnar reads use connections of their own)."""
    sqlite = cast("sqlite3.Connection", conn.connection.driver_connection)
    if conn.dialect.name != "sqlite" or sqlite.in_transaction:
        yield conn
        return
    sqlite.execute("BEGIN")
    try:
        yield conn
    finally:
        sqlite.commit()  # it only read


def read_points(conn: Connection, runs: sa.Select[Any], columns: Sequence[str]) -> tuple[Columns, Columns]:
    """``run_id``, ``step`` and the ``points`` table ``columns`` of the runs whose ids ``runs`` selects, by run and
    step, as :func:`read_columns` returns them: each run's blocks decoded (:mod:`db.blocks`: no Python object per
    value) and its rows after them read by :func:`read_columns` (not for a sealed run that has its block, so not at
    all when every run is).

    The blocks are read first and name, per run, the step from which its rows are read (a block written in between
    is not skipped: its rows are read); on SQLite both reads are one snapshot (:func:`snapshot`), on PostgreSQL the
    rows are the later state's.
    """
    from db import blocks

    columns = list(dict.fromkeys(columns))
    stored, run = PointBlock.__table__.c, Run.__table__.c
    with snapshot(conn):
        listed = conn.execute(sa.select(run.id, run.status, stored.last_step, stored.data)
                              .outerjoin_from(Run, PointBlock, stored.run_id == run.id)
                              .where(run.id.in_(runs)).order_by(run.id, stored.last_step)).all()
        chunks: dict[int, list[bytes]] = {}
        start: dict[int, int | None] = {}  # run → the first step read from its rows (None: every row)
        for run_id, status, last, data in listed:  # a run's blocks in step order: its last one decides
            if data is not None:
                chunks.setdefault(run_id, []).append(data)
            if data is None or status not in SEALED_STATUSES:
                start[run_id] = None if data is None else last + 1
            else:
                start.pop(run_id, None)
        parts = _read_rows(conn, start, columns)
    decoded = {run_id: [blocks.decode(d, columns) for d in data] for run_id, data in chunks.items()}
    if not decoded and len(parts) <= 1:
        return parts[0] if parts else _no_rows(columns)
    values, nulls = _no_rows(columns) if not parts else (
        {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]},
        {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]})
    return _merge(decoded, values, nulls, columns)


def _read_rows(conn: Connection, start: dict[int, int | None], columns: Sequence[str]) -> list[tuple[Columns, Columns]]:
    """The rows of each run of ``start`` from its step on (every row where None), by :func:`read_columns`: the runs
    without blocks by ``run_id IN (…)`` (read in the key's order), the others' by a join on a VALUES list of
    (run, first step) (whose result SQLite sorts: a few rows per run); a part per kind that has runs."""
    table = Point.__table__.c
    select = sa.select(table.run_id, table.step, *(table[c] for c in columns)).order_by(table.run_id, table.step)
    whole = sorted(r for r, first in start.items() if first is None)
    after = sorted((r, first) for r, first in start.items() if first is not None)
    parts = [read_columns(conn, select.where(table.run_id.in_(whole)), key=_KEY)] if whole else []
    if after:
        cover = sa.values(sa.column("run_id", sa.Integer), sa.column("from_step", sa.Integer),
                          name="cover").data(after).cte()
        parts.append(read_columns(conn, select.join_from(cover, Point, sa.and_(
            table.run_id == cover.c.run_id, table.step >= cover.c.from_step)), key=_KEY))
    return parts


def _no_rows(columns: Sequence[str]) -> tuple[Columns, Columns]:
    """What :func:`read_columns` returns for no rows."""
    return ({"run_id": np.zeros(0, np.int64), "step": np.zeros(0, np.int64)} | {c: np.zeros(0) for c in columns},
            {c: np.zeros(0, bool) for c in columns})


def _merge(decoded: dict[int, list[pa.RecordBatch]], values: Columns, nulls: Columns,
           columns: Sequence[str]) -> tuple[Columns, Columns]:
    """The blocks' batches and the rows read (each run's rows after its blocks) as one set of columns by run and
    step."""
    import pyarrow as pa

    rows = pa.record_batch([pa.array(values["step"]), *(pa.array(values[c], mask=nulls[c]) for c in columns)],
                           names=["step", *columns])
    row_ids, starts, counts = np.unique(values["run_id"], return_index=True, return_counts=True)
    pieces = {int(r): rows.slice(start, n) for r, start, n in zip(row_ids, starts, counts, strict=True)}
    order = sorted({*decoded, *pieces})
    batches = [b for r in order for b in [*decoded.get(r, []), *([pieces[r]] if r in pieces else [])]]
    sizes = [sum(b.num_rows for b in decoded.get(r, [])) + (len(pieces[r]) if r in pieces else 0) for r in order]
    whole = pa.Table.from_batches(batches, schema=rows.schema)
    out = {"run_id": np.repeat(np.array(order, dtype=np.int64), sizes),
           "step": np.require(whole.column("step").to_numpy(), np.int64, "W")}
    masks: Columns = {}
    for c in columns:
        out[c] = np.require(whole.column(c).to_numpy(), float, "W")  # NULL as NaN
        masks[c] = np.require(whole.column(c).is_null().to_numpy(), bool, "W")
    return out, masks
