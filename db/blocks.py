"""A run's points as columnar blocks (table ``point_blocks``): a derived copy that reads fast.

``points`` (one row per logged step) stays the source of truth: every write goes there and SQL aggregates it. Its
rows are also kept as blocks: each an Arrow IPC stream of one record batch holding every column of
:data:`~db.models.POINT_FIELDS` (``step`` int64, the metrics float64) in step order, NULL in the validity bitmap,
NaN and ±inf as values, its buffers LZ4-compressed. Reading a block creates no Python object per value
(:func:`decode`; :func:`db.columnar.read_points` decodes a run's blocks and reads only its rows after them).

Invariant, kept by :mod:`db.writer` in the transaction of each write that could break it. Let S be the largest
``last_step`` of a run's blocks:

* the run's blocks hold exactly its rows with step ≤ S, each block the rows after the previous block's
  ``last_step`` up to its own (so they are disjoint, contiguous, in step order); ``n_points`` counts a block's rows
  and ``measured`` has bit i set when metric i (POINT_METRICS order) is non-NULL in some row of it;
* a run whose status is sealed (:data:`~db.models.SEALED_STATUSES`: completed, diverged) has one block holding all
  its rows (none when it has no rows);
* any other run gets a block (a *chunk*) of its rows after S as soon as they number :data:`CHUNK_POINTS` or more,
  in the transaction that wrote them, so fewer are left to read from rows; chunks are merged (the last two while
  the earlier holds at most twice the later's rows), so a run of n points has about log2(n / CHUNK_POINTS) chunks.

:func:`after_points` keeps it after rows were inserted: rows inserted at a step ≤ S (a journal replayed, a retry or
a resumed trial writing steps out of order) drop every block of the run, and the blocks are built again from its
rows in that transaction; :func:`after_status` after the run's status was written (sealing merges the chunks and
the rows after them into one block; reopening a run keeps its blocks, which still hold its rows up to S).
:func:`build_all` builds every run's blocks (migration ``0005``; a migration that changes the point columns must
call it again, :func:`decode` refuses a block of another layout). A run without blocks is read from its rows, so a
missing block costs speed, never values.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

from db.models import POINT_FIELDS, POINT_METRICS, SEALED_STATUSES, Point, PointBlock, Run

__all__ = ["SCHEMA", "CHUNK_POINTS", "encode", "decode", "after_points", "after_status", "build_all"]

SCHEMA = pa.schema([pa.field("step", pa.int64()),
                    *(pa.field(m, pa.float64()) for m in POINT_METRICS)])
"""A block's columns: POINT_FIELDS, ``step`` int64 (never NULL) and the metrics float64."""
_WRITE = pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False)
"""LZ4. On bench/bench_queries.py's study (11 of 16 metrics measured), bytes per point and CPU s to decode a million
points: uncompressed 138.5 and 0.02, LZ4 68.6 and 0.09, zstd 54.8 and 0.31."""
CHUNK_POINTS = 256
"""A running run's rows after its blocks become a chunk when they number this many. A chunk costs ~25 µs to decode
and a row ~1 µs to read (SQLite, the dashboard's columns): a run then reads ≤ 255 rows plus a few chunks. The
writer pays for it: each row is read back once into a chunk and chunks are re-encoded as they merge (1,000 runs ×
1,000 points in 50-point reports, SQLite: 21.9 CPU s to write and complete them, 17.8 when only sealing built
blocks; left running, 21.2 against 13.7)."""
assert len(POINT_METRICS) < 31, "point_blocks.measured is a 32-bit mask of the metrics"

_points = Point.__table__.c


def _first_step(dialect: Dialect) -> int:
    """The smallest value the ``step`` column holds on ``dialect`` (Integer: 32 bits on PostgreSQL, 64 on
    SQLite): "read from this step" means every row of a run without blocks."""
    return -(2**31) if dialect.name == "postgresql" else -(2**63)


def _batch(step: np.ndarray, values: np.ndarray, nulls: np.ndarray) -> pa.RecordBatch:
    values, nulls = np.ascontiguousarray(values.T), np.ascontiguousarray(nulls.T)  # a strided column costs ×25
    columns = [pa.array(step.astype(np.int64))]
    columns += [pa.array(values[i], mask=nulls[i]) for i in range(len(POINT_METRICS))]
    return pa.record_batch(columns, schema=SCHEMA)


def _bytes(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SCHEMA, options=_WRITE) as stream:
        stream.write_batch(batch)
    return cast(bytes, sink.getvalue().to_pybytes())


def encode(step: np.ndarray, values: np.ndarray, nulls: np.ndarray) -> bytes:
    """A block of ``n`` points sorted by step: ``step`` of shape (n,), ``values`` float64 of shape (n, metrics) in
    POINT_METRICS order (anything where NULL) and ``nulls`` bool of the same shape (True = NULL)."""
    return _bytes(_batch(step, values, nulls))


def decode(data: bytes, fields: list[str] | tuple[str, ...]) -> pa.RecordBatch:
    """The ``step`` column and ``fields`` (POINT_FIELDS names) of a block, decompressing only those; a block of
    another layout (written before the point columns changed, not rebuilt) raises ValueError."""
    fields = ["step", *fields]
    at = sorted({SCHEMA.get_field_index(f) for f in fields})
    reader = pa.ipc.open_stream(data, options=pa.ipc.IpcReadOptions(
        included_fields=at, use_threads=False))  # threads cost more than they save on one small block
    if reader.schema.names != [SCHEMA.field(i).name for i in at]:
        raise ValueError(f"a point block has other columns than {', '.join(POINT_FIELDS)}: rebuild the blocks "
                         "(db.blocks.build_all)")
    return reader.read_next_batch().select(fields)  # in the order asked (the reader keeps the block's)


def _null_bits() -> sa.ColumnElement[int]:
    """Per row, the sum of 2**i over the metrics i (POINT_METRICS order) that are NULL: one integer instead of a
    flag per metric (SQLite hands each value to Python as an object of its own)."""
    bits = [sa.case((_points[m].is_(None), sa.literal_column(str(1 << i))), else_=sa.literal_column("0"))
            for i, m in enumerate(POINT_METRICS)]
    return cast(sa.ColumnElement[int], sum(bits[1:], bits[0]))


@functools.lru_cache(maxsize=8)
def _points_query(dialect: Dialect) -> SQLCompiler:
    """The SELECT of a run's points from a step on (parameters ``run_id``, ``first``), compiled once."""
    stmt = (sa.select(_points.step, *(_points[m] for m in POINT_METRICS), _null_bits())
            .where(_points.run_id == sa.bindparam("run_id"), _points.step >= sa.bindparam("first"))
            .order_by(_points.step))
    return stmt.compile(dialect=dialect)


def _sql(conn: Connection, sql: str, *params: int | bytes, rows: bool = True) -> list[tuple[Any, ...]]:
    """The rows of plain driver SQL (``?`` marks parameters; none read when not ``rows``): Core's statement
    execution costs ~40 µs, this ~5, and these run for every write of points."""
    if conn.dialect.name != "sqlite":
        sql = sql.replace("?", "%s")
    result = conn.exec_driver_sql(sql, tuple(p if isinstance(p, bytes) else int(p) for p in params))
    return [tuple(r) for r in result.all()] if rows else []


def _drop(conn: Connection, run_id: int) -> None:
    """Delete every block of the run."""
    conn.exec_driver_sql(f"DELETE FROM point_blocks WHERE run_id = {int(run_id)}")


def _rows(conn: Connection, run_id: int, first: int) -> pa.RecordBatch:
    """The run's rows with step ≥ ``first`` as a block's batch, read through ``conn`` (in its transaction: what it
    wrote so far counts) by one SELECT converted at once; SQLite's text ``'NaN'`` becomes NaN, the NULL bits tell
    NULL."""
    query = _points_query(conn.dialect)
    params = {"run_id": int(run_id), "first": int(first)}
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # plain tuples
    try:
        cursor.execute(query.string, tuple(params[k] for k in query.positiontup or ()) if query.positional
                       else params)
        rows = np.array(cursor.fetchall(), dtype=float).reshape(-1, len(POINT_METRICS) + 2)
    finally:
        cursor.close()
    bits = rows[:, -1].astype(np.int64)
    nulls = (bits[:, None] >> np.arange(len(POINT_METRICS))) & 1 == 1
    return _batch(rows[:, 0], rows[:, 1:-1], nulls)


def _store(conn: Connection, run_id: int, batches: list[pa.RecordBatch]) -> tuple[int, int]:
    """Insert ``batches`` (consecutive, in step order, not empty together) as one block; its (last_step,
    n_points)."""
    batch = pa.Table.from_batches(batches, schema=SCHEMA).combine_chunks().to_batches()[0]
    measured = sum(1 << i for i, m in enumerate(POINT_METRICS) if batch.column(m).null_count < batch.num_rows)
    last = int(batch.column("step")[-1].as_py())
    _sql(conn, "INSERT INTO point_blocks (run_id, last_step, n_points, measured, data) VALUES (?, ?, ?, ?, ?)",
         run_id, last, batch.num_rows, measured, _bytes(batch), rows=False)
    return last, batch.num_rows


def _take(conn: Connection, run_id: int, chunks: list[tuple[int, int]]) -> list[pa.RecordBatch]:
    """Delete ``chunks`` (the run's last blocks) and return their batches, in step order."""
    if not chunks:
        return []
    where = "WHERE run_id = ? AND last_step >= ?"
    data = _sql(conn, f"SELECT data FROM point_blocks {where} ORDER BY last_step", run_id, chunks[0][0])
    _sql(conn, f"DELETE FROM point_blocks {where}", run_id, chunks[0][0], rows=False)
    return [decode(d, POINT_METRICS) for (d,) in data]


def _after(conn: Connection, chunks: list[tuple[int, int]]) -> int:
    """The first step after ``chunks`` (a run's blocks)."""
    return chunks[-1][0] + 1 if chunks else _first_step(conn.dialect)


def _seal(conn: Connection, run_id: int, chunks: list[tuple[int, int]]) -> None:
    """Make the run's blocks one block of all its rows: its chunks and the rows after them, merged."""
    tail = _rows(conn, run_id, _after(conn, chunks))
    if tail.num_rows == 0 and len(chunks) <= 1:
        return  # one block of every row already, or no rows
    _store(conn, run_id, [*_take(conn, run_id, chunks), tail])


def _tail(conn: Connection, run_id: int, chunks: list[tuple[int, int]]) -> int:
    """How many rows the run has after ``chunks`` (its blocks)."""
    return int(_sql(conn, "SELECT count(*) FROM points WHERE run_id = ? AND step >= ?", run_id,
                    _after(conn, chunks))[0][0])


def _chunk(conn: Connection, run_id: int, chunks: list[tuple[int, int]], tail: int) -> None:
    """A chunk of the run's ``tail`` rows after its blocks if they number CHUNK_POINTS or more, then merged (see
    the module doc)."""
    if tail < CHUNK_POINTS:
        return
    chunks = [*chunks, _store(conn, run_id, [_rows(conn, run_id, _after(conn, chunks))])]
    while len(chunks) >= 2 and chunks[-2][1] <= 2 * chunks[-1][1]:
        chunks[-2:] = [_store(conn, run_id, _take(conn, run_id, chunks[-2:]))]


def _state(conn: Connection, run_id: int) -> tuple[str | None, list[tuple[int, int]], int]:
    """The run's status, its blocks as (last_step, n_points) in step order and how many rows it has after them, by
    one statement; on PostgreSQL the run's row is locked until the transaction ends (two writers of one run's
    blocks wait for each other)."""
    lock = " FOR UPDATE OF r" if conn.dialect.name == "postgresql" else ""
    after = "SELECT max(last_step) + 1 FROM point_blocks WHERE run_id = r.id"
    found = _sql(conn, "SELECT r.status, b.last_step, b.n_points, (SELECT count(*) FROM points p WHERE p.run_id = r.id"
                       f" AND p.step >= coalesce(({after}), ?)) FROM runs r LEFT JOIN point_blocks b ON b.run_id = r.id"
                       f" WHERE r.id = ? ORDER BY b.last_step{lock}", _first_step(conn.dialect), run_id)
    if not found:
        return None, [], 0
    return str(found[0][0]), [(int(last), int(n)) for _, last, n, _ in found if last is not None], int(found[0][3])


def after_points(conn: Connection, run_id: int, first: int) -> None:
    """After rows were inserted for the run (at steps ≥ ``first``), in ``conn``'s transaction: keep its blocks
    (module doc). One statement (two index seeks and a count of the rows after the blocks) when nothing is due."""
    status, chunks, tail = _state(conn, run_id)
    if chunks and first <= chunks[-1][0]:  # rows inserted at a step a block covers?
        covered = _sql(conn, "SELECT count(*) FROM points WHERE run_id = ? AND step <= ?", run_id, chunks[-1][0])
        if covered[0][0] != sum(n for _, n in chunks):
            _drop(conn, run_id)
            chunks, tail = [], _tail(conn, run_id, [])
    if status in SEALED_STATUSES:
        _seal(conn, run_id, chunks)
    else:
        _chunk(conn, run_id, chunks, tail)


def after_status(conn: Connection, run_id: int) -> None:
    """After the run's status was written, in ``conn``'s transaction: a sealed run's blocks become one (a reopened
    run keeps its blocks: they still hold its rows up to their last step)."""
    status, chunks, _ = _state(conn, run_id)
    if status in SEALED_STATUSES:
        _seal(conn, run_id, chunks)


def build_all(conn: Connection) -> int:
    """(Re)build every run's blocks from its rows; the number of runs that have blocks afterwards."""
    conn.execute(sa.delete(PointBlock))
    runs = conn.execute(sa.select(Run.id, Run.status).order_by(Run.id)).all()
    for run_id, status in runs:
        if status in SEALED_STATUSES:
            _seal(conn, run_id, [])
        else:
            _chunk(conn, run_id, [], _tail(conn, run_id, []))
    return int(conn.scalar(sa.select(sa.func.count(sa.distinct(PointBlock.run_id)))) or 0)
