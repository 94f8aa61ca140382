"""Point blocks (db.blocks): a sealed run's one block and a running run's chunks, kept in step with the rows by every
write (appends at each chunk boundary, replays and retries writing covered steps, reopened runs), and read back
exactly as the rows read — values, dtypes, order, NULL apart from NaN apart from ±inf — on both engines."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db import blocks, columnar, queries, rows, writer
from db.engine import open_db
from db.journal import Journal
from db.models import POINT_METRICS, SEALED_STATUSES, PointBlock, Run
from db.writer import RunWrite, write_run_batch
from tests.db.conftest import trial_config

NAN, INF = math.nan, math.inf
N = blocks.CHUNK_POINTS


def _points(n: int, first: int = 0) -> list[dict[str, Any]]:
    """Steps ``first``… : train_loss NaN at step 3, NULL where step % 4 == 0; test_loss +inf at 5, -inf at 6;
    test_acc, grad_sq and the others never measured (NULL columns)."""
    out = []
    for s in range(first, first + n):
        p: dict[str, Any] = {"step": s, "sde_time": 0.5 * s, "test_loss": {5: INF, 6: -INF}.get(s, 1.0 / (s + 1))}
        if s % 4:
            p["train_loss"] = NAN if s == 3 else float(s)
        out.append(p)
    return out


def _seal(engine: Engine, run_id: int, status: str = "completed") -> None:
    with Session(engine) as session, session.begin():
        writer.update_run(session, run_id, status=status)


def _blocks(engine: Engine) -> dict[int, list[tuple[int, int]]]:
    """run id → [(n_points, last_step), ...] of the stored blocks, in step order."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(PointBlock.run_id, PointBlock.n_points, PointBlock.last_step)
                            .order_by(PointBlock.run_id, PointBlock.last_step)).all()
    out: dict[int, list[tuple[int, int]]] = {}
    for run_id, n, last in rows:
        out.setdefault(run_id, []).append((n, last))
    return out


def _assert_blocks_hold_the_rows(engine: Engine, reads: bool = True) -> None:
    """The invariant of db.blocks, checked from the rows: each run's blocks hold exactly its rows up to their last
    step (contiguous, with their counts and measured masks), a sealed run's all of them in one block, a running
    run's fewer than CHUNK_POINTS rows after them; and (``reads``) every read through the blocks is the rows'."""
    with engine.connect() as conn:
        listed = conn.execute(sa.select(PointBlock.run_id, PointBlock.last_step, PointBlock.n_points,
                                        PointBlock.measured, PointBlock.data)
                              .order_by(PointBlock.run_id, PointBlock.last_step)).all()
        status = dict(conn.execute(sa.select(Run.id, Run.status)).all())
    rows = _from_rows(engine, lambda c: queries.point_columns(c, "demo", list(queries.POINT_COLUMNS), keep_null=True))
    for run_id in status:
        mine = rows[rows.run_id == run_id].drop(columns="run_id").reset_index(drop=True)
        held = [(last, n, measured, data) for r, last, n, measured, data in listed if r == run_id]
        covered = mine[mine.step <= held[-1][0]] if held else mine.iloc[:0]
        if status[run_id] in SEALED_STATUSES:
            assert len(held) == (1 if len(mine) else 0) and len(covered) == len(mine), run_id
        else:
            assert len(mine) - len(covered) < blocks.CHUNK_POINTS, run_id
        start = 0
        for last, n, measured, data in held:
            part = covered.iloc[start:start + n].reset_index(drop=True)
            start += n
            assert n and part.step.iloc[-1] == last, (run_id, last)
            batch = blocks.decode(data, POINT_METRICS)
            frame = pd.DataFrame({"step": batch.column("step").to_numpy()} | {  # NaN a value, NULL <NA>
                name: pd.arrays.FloatingArray(batch.column(m).to_numpy(zero_copy_only=False),
                                              batch.column(m).is_null().to_numpy(zero_copy_only=False))
                for name, m in queries.POINT_COLUMNS.items()})
            pd.testing.assert_frame_equal(frame, part, check_dtype=False)
            assert measured == sum(1 << i for i, m in enumerate(queries.POINT_COLUMNS)
                                   if part[m].notna().any()), (run_id, last)
        assert start == len(covered), run_id
    for some in (["train_loss"], ["test_loss", "lr_t", "sde_time"]) if reads else ():
        pd.testing.assert_frame_equal(queries.point_columns(engine, "demo", some, keep_null=True), _from_rows(
            engine, lambda c, s=some: queries.point_columns(c, "demo", s, keep_null=True)))


def _from_rows(engine: Engine, read: Any) -> Any:
    """``read()`` with the blocks out of the way (a transaction rolled back): what the rows alone give."""
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(sa.delete(PointBlock))
        out = read(conn)
        tx.rollback()
    return out


def test_a_block_round_trips_null_nan_and_inf() -> None:
    step = np.array([0, 10, 20, 30])
    values = np.zeros((4, len(POINT_METRICS)))
    nulls = np.ones((4, len(POINT_METRICS)), dtype=bool)  # every metric NULL …
    at = POINT_METRICS.index("train_loss")
    values[:, at], nulls[:, at] = [1.5, NAN, INF, -INF], [False, False, False, True]  # … but train_loss
    batch = blocks.decode(blocks.encode(step, values, nulls), ["train_loss", "test_acc"])
    assert batch.schema.names == ["step", "train_loss", "test_acc"]
    assert batch.column("step").type == pa.int64() and batch.column("step").to_pylist() == [0, 10, 20, 30]
    loss = batch.column("train_loss").to_pylist()
    assert loss[0] == 1.5 and math.isnan(loss[1]) and loss[2:] == [INF, None]
    assert batch.column("test_acc").null_count == 4
    assert blocks.decode(blocks.encode(step[:0], values[:0], nulls[:0]), ["grad_norm"]).num_rows == 0


def test_a_block_of_another_layout_is_refused() -> None:
    old = pa.schema([pa.field("step", pa.int64()), pa.field("loss", pa.float64())])  # columns renamed since
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, old) as stream:
        stream.write_batch(pa.record_batch([pa.array([0]), pa.array([1.0])], schema=old))
    with pytest.raises(ValueError, match="rebuild the blocks"):
        blocks.decode(sink.getvalue().to_pybytes(), ["effective_step"])


def test_a_run_is_sealed_by_its_final_status_and_keeps_its_blocks_when_reopened(engine: Engine, study: dict) -> None:
    r0, r1, r2, r3 = study["runs"].values()
    for run_id in (r0, r1, r2):
        writer.write_points(engine, run_id, _points(12))
    _seal(engine, r0, "completed")
    _seal(engine, r1, "diverged")
    _seal(engine, r2, "failed")  # resumable with --retry-failed: never sealed (and 12 points make no chunk)
    _seal(engine, r3, "completed")  # a run without points: no block
    assert _blocks(engine) == {r0: [(12, 11)], r1: [(12, 11)]}
    writer.write_points(engine, r0, _points(3, first=12))  # points written to a sealed run: one block again
    writer.write_points(engine, r1, _points(3))  # steps already stored: nothing to rebuild
    assert _blocks(engine) == {r0: [(15, 14)], r1: [(12, 11)]}
    _seal(engine, r1, "running")  # reopened: its block still holds its rows up to step 11, a chunk now
    writer.write_points(engine, r1, _points(2, first=12))
    assert _blocks(engine) == {r0: [(15, 14)], r1: [(12, 11)]}
    _assert_blocks_hold_the_rows(engine)
    _seal(engine, r1, "completed")
    assert _blocks(engine) == {r0: [(15, 14)], r1: [(14, 13)]}
    with engine.begin() as conn:
        conn.execute(sa.delete(Run).where(Run.id == r0))  # deleting a run deletes its blocks
    assert set(_blocks(engine)) == {r1}


@pytest.mark.parametrize("reports", [[N - 1, 1, 1, N - 1], [2 * N + 1]])
def test_a_running_run_reads_as_its_rows_at_every_chunk_boundary(engine: Engine, study: dict,
                                                                 reports: list[int]) -> None:
    """Reports taking a running run through 0, N−1, N, N+1 and 2N points (N = CHUNK_POINTS): a chunk of the rows
    after the blocks once they are N, two chunks of N merged into one; one report of 2N+1 points is one chunk."""
    r0, r1 = study["runs"]["trial-000"], study["runs"]["trial-001"]
    writer.write_points(engine, r1, _points(5))
    _assert_blocks_hold_the_rows(engine)  # r0 has no points, r1 a few rows and no block
    seen, done = [], 0
    for n in reports:
        writer.write_points(engine, r0, _points(n, first=done))
        done += n
        seen.append(_blocks(engine).get(r0, []))
        _assert_blocks_hold_the_rows(engine)
    if len(reports) > 1:
        assert seen == [[], [(N, N - 1)], [(N, N - 1)], [(2 * N, 2 * N - 1)]]
    else:
        assert seen == [[(2 * N + 1, 2 * N)]]
    _seal(engine, r0)
    assert _blocks(engine)[r0] == [(done, done - 1)]
    _assert_blocks_hold_the_rows(engine)


def test_chunks_merge_as_they_add_up(engine: Engine, study: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """With chunks of 4 points, reports of 1 to 3 points: after each, the blocks hold the rows and each is more
    than twice the next (so a run has about log2(n/4) chunks)."""
    monkeypatch.setattr(blocks, "CHUNK_POINTS", 4)
    r0 = study["runs"]["trial-000"]
    done = 0
    for i, n in enumerate([1, 3, 2, 2, 3, 1, 1, 3, 2, 3, 3, 1, 2, 2, 3, 3, 1, 1, 2, 3, 3, 2, 3, 1, 3]):
        writer.write_points(engine, r0, _points(n, first=done))
        done += n
        if i % 4 == 0:
            _assert_blocks_hold_the_rows(engine, reads=False)
        sizes = [n for n, _ in _blocks(engine).get(r0, [])]
        assert all(a > 2 * b for a, b in itertools.pairwise(sizes)), sizes
    _assert_blocks_hold_the_rows(engine)
    assert sum(sizes) > done - 4 and len(sizes) <= 4


def test_rows_written_at_steps_a_chunk_holds_rebuild_the_run_s_blocks(engine: Engine, study: dict,
                                                                       tmp_path) -> None:
    """A journal replayed twice, a retry filling a gap under a chunk, a resumed trial reporting from an earlier
    checkpoint, a run failing and retried: the blocks hold the rows after each."""
    r0, r1 = study["runs"]["trial-000"], study["runs"]["trial-001"]
    gap = [p for p in _points(N + 10) if p["step"] != 5]
    batches = [[RunWrite(r0, points=gap, fields={"status": "running"}), RunWrite(r1, points=_points(N))],
               [RunWrite(r0, points=_points(3, first=N + 10))]]
    journal = Journal(tmp_path / "j.jsonl")
    journal.append(batches)
    with Session(engine) as session, session.begin():
        for batch in journal.read():
            write_run_batch(session, batch)
    assert journal.replay(engine) == 2  # the same batches again: nothing inserted, nothing rebuilt
    assert _blocks(engine) == {r0: [(N + 9, N + 9)], r1: [(N, N - 1)]}
    _assert_blocks_hold_the_rows(engine)
    writer.write_points(engine, r0, _points(1, first=5))  # the retry of the lost step: under the chunk
    assert _blocks(engine)[r0] == [(N + 13, N + 12)]  # rebuilt from the rows: one chunk of every row
    _assert_blocks_hold_the_rows(engine)
    writer.write_points(engine, r1, _points(30, first=N - 20))  # resumed from step N-20: 20 stored, 10 new
    assert _blocks(engine)[r1] == [(N, N - 1)]
    _seal(engine, r1, "failed")
    writer.write_points(engine, r1, _points(N, first=N + 10))  # retried (--retry-failed) and running again
    _seal(engine, r1, "running")
    assert _blocks(engine)[r1] == [(2 * N + 10, 2 * N + 9)]
    _assert_blocks_hold_the_rows(engine)


def test_blocks_read_exactly_as_rows(engine: Engine, study: dict) -> None:
    """A study mixing sealed and unsealed runs (one sealed with no points) reads the same with and without blocks:
    values, dtypes, order, NULL columns, NaN and ±inf; a subset of runs and of columns too."""
    r0, r1, r2, r3 = study["runs"].values()
    writer.write_points(engine, r0, _points(30))
    writer.write_points(engine, r1, _points(20, first=7))
    writer.write_points(engine, r2, _points(25))
    _seal(engine, r0)
    _seal(engine, r2, "diverged")
    _seal(engine, r3)
    assert set(_blocks(engine)) == {r0, r2}
    for keep_null in (False, True):
        frame = queries.points_frame(engine, "demo", keep_null=keep_null)
        pd.testing.assert_frame_equal(frame, _from_rows(engine, lambda c, k=keep_null: queries.points_frame(
            c, "demo", keep_null=k)))
    assert frame["run_id"].tolist() == [r0] * 30 + [r1] * 20 + [r2] * 25
    assert frame["train_loss"].isna().sum() == 8 + 5 + 7  # NULLs; the NaN at step 3 is a value
    some = ["test_loss", "lr_t", "train_loss"]
    cols = queries.point_columns(engine, "demo", some, run_ids=[r2, r1], keep_null=True)
    pd.testing.assert_frame_equal(cols, _from_rows(engine, lambda c: queries.point_columns(
        c, "demo", some, run_ids=[r2, r1], keep_null=True)))
    assert cols["test_loss"].dtype == "Float64" and cols["step"].dtype == np.int64
    for sealed in ([r0, r2], [r3]):  # every run sealed: no row read at all; a sealed run without points
        cols = queries.point_columns(engine, "demo", some, run_ids=sealed)
        pd.testing.assert_frame_equal(cols, _from_rows(engine, lambda c, s=sealed: queries.point_columns(
            c, "demo", some, run_ids=s)))
    assert cols.empty and cols.dtypes.tolist() == [np.int64, np.int64, float, float, float]


def test_a_study_read_while_written_is_one_state(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the read of the blocks and the read of the rows, the driver seals a run and writes a chunk's worth
    of points to another that has a chunk (its two chunks merge): the sealed run is read once, from its rows, the
    other's new chunk is not read twice; on SQLite the read is one snapshot (the new points are not in it), on
    PostgreSQL each run is read from one state or, for the chunked run, its rows read later after its block."""
    engine = open_db(db_url, create=True)
    with Session(engine) as session, session.begin():
        st = writer.ensure_study(session, "live", {"name": "live"})
        r0, r1, r2 = writer.ensure_runs(session, st, [trial_config(i) for i in range(3)]).values()
    for run_id, n in ((r0, 6), (r1, 6), (r2, N + 6)):
        writer.write_points(engine, run_id, _points(n))
    _seal(engine, r0)
    assert _blocks(engine) == {r0: [(6, 5)], r2: [(N + 6, N + 5)]}
    before = queries.point_columns(engine, "live", ["train_loss"], keep_null=True)
    real = columnar.read_columns

    def then_the_driver_writes(*args: Any, **kwargs: Any) -> Any:
        other = open_db(db_url)
        writer.write_points(other, r2, _points(N, first=N + 6))
        _seal(other, r1)
        other.dispose()
        return real(*args, **kwargs)

    monkeypatch.setattr(columnar, "read_columns", then_the_driver_writes)
    during = queries.point_columns(engine, "live", ["train_loss"], keep_null=True)
    monkeypatch.undo()
    assert _blocks(engine) == {r0: [(6, 5)], r1: [(6, 5)], r2: [(2 * N + 6, 2 * N + 5)]}
    after = queries.point_columns(engine, "live", ["train_loss"], keep_null=True)
    engine.dispose()
    if db_url.startswith("sqlite"):
        pd.testing.assert_frame_equal(during, before)
    else:
        pd.testing.assert_frame_equal(during, after)


def test_points_frame_joins_only_the_runs_it_read(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run added (with points) after points_frame read the runs is not in its points either: on PostgreSQL the
    points are another read, and a point of an unknown run would be joined to the wrong run's row."""
    engine = open_db(db_url, create=True)
    with Session(engine) as session, session.begin():
        study_id = writer.ensure_study(session, "grow", {"name": "grow"}).id
        (r0,) = writer.ensure_runs(session, study_id, [trial_config(0)]).values()
    writer.write_points(engine, r0, _points(3))
    real = queries._frame

    def then_a_run_is_added(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        other = open_db(db_url)
        with Session(other) as session, session.begin():
            (r1,) = writer.ensure_runs(session, study_id, [trial_config(1)]).values()
        writer.write_points(other, r1, _points(2))
        other.dispose()
        return out

    monkeypatch.setattr(queries, "_frame", then_a_run_is_added)
    frame = queries.points_frame(engine, "grow")
    engine.dispose()
    assert frame["run_id"].tolist() == [r0] * 3 and frame["trial_id"].tolist() == ["trial-000"] * 3


def test_final_metrics_are_the_rows_whichever_block_measured_them(engine: Engine, study: dict) -> None:
    """The runs table's final_<metric> walks past the blocks only for a metric some block measured: a metric
    measured in a chunk only, in the rows after it only, in neither, NaN last, a sealed run, a run without blocks and
    one without points read as from the rows alone (and filter alike)."""
    r0, r1, r2, r3 = study["runs"].values()
    early = [dict(p, grad_norm=0.25 * p["step"]) for p in _points(N)]  # grad_norm measured in the chunk only
    writer.write_points(engine, r0, early)
    writer.write_points(engine, r0, [dict(p, test_acc=0.5) for p in _points(3, first=N)])  # test_acc: after it
    writer.write_points(engine, r1, _points(N + 4))
    _seal(engine, r1)
    writer.write_points(engine, r2, _points(4))  # train_loss NaN last (step 3)
    assert _blocks(engine) == {r0: [(N, N - 1)], r1: [(N + 4, N + 3)]}
    found = rows.runs_with_final(engine, "demo")
    assert repr(found) == repr(_from_rows(engine, lambda c: rows.runs_with_final(c, "demo")))  # NaN as NaN
    final = {r["run_id"]: r for r in found}
    assert final[r0]["final_grad_norm"] == 0.25 * (N - 1) and final[r0]["final_test_acc"] == 0.5
    assert final[r0]["final_grad_sq"] is None and final[r3]["final_train_loss"] is None
    assert math.isnan(final[r2]["final_train_loss"]) and final[r1]["final_train_loss"] == N + 3
    for where, chosen in (("final_grad_norm > 1", [r0]), ("final_test_acc = 0.5", [r0]),
                          ("final_grad_norm is null and final_test_loss < 0.01", [r1])):
        assert [r["run_id"] for r in rows.runs_with_final(engine, "demo", where=where)] == chosen
