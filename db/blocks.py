"""Sealed runs' points as one columnar block per run (table ``point_blocks``): a derived copy that reads fast.

``points`` (one row per logged step) stays the source of truth: every write goes there and SQL aggregates it. A run
whose status is sealed (:data:`~db.models.SEALED_STATUSES`: completed, diverged — nothing reopens them) also keeps
its points as one block: an Arrow IPC stream of one record batch holding every column of
:data:`~db.models.POINT_FIELDS` (``step`` int64, the metrics float64) in step order, NULL in the validity bitmap,
NaN and ±inf as values, its buffers LZ4-compressed. Reading a block creates no Python object per value
(:func:`decode`; :func:`db.columnar.read_points` reads sealed runs from blocks, the others from rows).

Invariant, kept by :mod:`db.writer` in the transaction of each write that could break it: a run has a block exactly
when its status is sealed, and the block holds exactly its rows. :func:`refresh` restores it for a run whose
status was written, :func:`reseal` for a run that got new points; :func:`seal_all` builds every sealed run's block
(migration ``0004``; a migration that changes the point columns must call it again, :func:`decode` refuses a block
of another layout). A run without a block is read from its rows, so a missing block costs speed, never values.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, cast

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

from db.models import POINT_FIELDS, POINT_METRICS, SEALED_STATUSES, Point, PointBlock, Run

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["SCHEMA", "encode", "decode", "seal", "refresh", "reseal", "seal_all"]

SCHEMA = pa.schema([pa.field("step", pa.int64()),
                    *(pa.field(m, pa.float64()) for m in POINT_METRICS)])
"""A block's columns: POINT_FIELDS, ``step`` int64 (never NULL) and the metrics float64."""
_WRITE = pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False)
"""LZ4. On bench/bench_queries.py's study (11 of 16 metrics measured), bytes per point and CPU s to decode a million
points: uncompressed 138.5 and 0.02, LZ4 68.6 and 0.09, zstd 54.8 and 0.31."""

_points = Point.__table__.c


def encode(step: np.ndarray, values: np.ndarray, nulls: np.ndarray) -> bytes:
    """A block of ``n`` points sorted by step: ``step`` of shape (n,), ``values`` float64 of shape (n, metrics) in
    POINT_METRICS order (anything where NULL) and ``nulls`` bool of the same shape (True = NULL)."""
    columns = [pa.array(step.astype(np.int64))]
    columns += [pa.array(values[:, i], mask=nulls[:, i]) for i in range(len(POINT_METRICS))]
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SCHEMA, options=_WRITE) as stream:
        stream.write_batch(pa.record_batch(columns, schema=SCHEMA))
    return cast(bytes, sink.getvalue().to_pybytes())


def decode(data: bytes, fields: Sequence[str]) -> pa.RecordBatch:
    """The ``step`` column and ``fields`` (POINT_FIELDS names) of a block, decompressing only those; a block of
    another layout (written before the point columns changed, not rebuilt) raises ValueError."""
    fields = ["step", *fields]
    at = sorted({SCHEMA.get_field_index(f) for f in fields})
    reader = pa.ipc.open_stream(data, options=pa.ipc.IpcReadOptions(
        included_fields=at, use_threads=False))  # threads cost more than they save on one small block
    if reader.schema.names != [SCHEMA.field(i).name for i in at]:
        raise ValueError(f"a point block has other columns than {', '.join(POINT_FIELDS)}: rebuild the blocks "
                         "(db.blocks.seal_all)")
    return reader.read_next_batch().select(fields)  # in the order asked (the reader keeps the block's)


def _null_bits() -> sa.ColumnElement[int]:
    """Per row, the sum of 2**i over the metrics i (POINT_METRICS order) that are NULL: one integer instead of a
    flag per metric (SQLite hands each value to Python as an object of its own)."""
    bits = [sa.case((_points[m].is_(None), sa.literal_column(str(1 << i))), else_=sa.literal_column("0"))
            for i, m in enumerate(POINT_METRICS)]
    return cast(sa.ColumnElement[int], sum(bits[1:], bits[0]))


@functools.lru_cache(maxsize=8)
def _points_query(dialect: Dialect) -> SQLCompiler:
    """The SELECT of a run's points (parameter ``run_id``) as :func:`_run_points` reads them, compiled once."""
    stmt = (sa.select(_points.step, *(_points[m] for m in POINT_METRICS), _null_bits())
            .where(_points.run_id == sa.bindparam("run_id")).order_by(_points.step))
    return stmt.compile(dialect=dialect)


def _run_points(conn: Connection, run_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run's points as :func:`encode` takes them, read through ``conn`` (in its transaction: what it wrote so
    far counts) by one SELECT converted at once; SQLite's text ``'NaN'`` becomes NaN, the NULL bits tell NULL."""
    query = _points_query(conn.dialect)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # plain tuples
    try:
        cursor.execute(query.string, (int(run_id),) if query.positional else {"run_id": int(run_id)})
        rows = np.array(cursor.fetchall(), dtype=float).reshape(-1, len(POINT_METRICS) + 2)
    finally:
        cursor.close()
    bits = rows[:, -1].astype(np.int64)
    nulls = (bits[:, None] >> np.arange(len(POINT_METRICS))) & 1 == 1
    return rows[:, 0], rows[:, 1:-1], nulls


def _drop(conn: Connection, run_id: int) -> int:
    """Delete the run's block; 1 if it had one. Plain driver SQL: it runs for every write of points (Core's
    statement execution costs ~40 µs, this ~5)."""
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    return conn.exec_driver_sql(f"DELETE FROM point_blocks WHERE run_id = {mark}", (int(run_id),)).rowcount


def seal(conn: Connection, run_id: int) -> None:
    """(Re)write the run's block from its rows, in ``conn``'s transaction."""
    step, values, nulls = _run_points(conn, run_id)
    _drop(conn, run_id)
    conn.execute(sa.insert(PointBlock).values(run_id=run_id, n_points=len(step), data=encode(step, values, nulls),
                                              last_step=int(step[-1]) if len(step) else None))


def refresh(conn: Connection, run_id: int) -> None:
    """After the run's status was written: seal it if its status is sealed, else drop its block (a run reopened)."""
    status = conn.scalar(sa.select(Run.status).where(Run.id == run_id))
    if status in SEALED_STATUSES:
        seal(conn, run_id)
    else:
        _drop(conn, run_id)


def reseal(conn: Connection, run_id: int) -> None:
    """After points were added to the run: rebuild its block if it has one (points written to a sealed run)."""
    if _drop(conn, run_id):
        seal(conn, run_id)


def seal_all(conn: Connection) -> int:
    """Build the block of every run whose status is sealed; the number built."""
    run_ids = conn.scalars(sa.select(Run.id).where(Run.status.in_(SEALED_STATUSES)).order_by(Run.id)).all()
    for run_id in run_ids:
        seal(conn, run_id)
    return len(run_ids)
