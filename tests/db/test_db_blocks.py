"""Sealed runs' point blocks (db.blocks): kept in step with the rows by every write, and read back exactly as the
rows read — values, dtypes, order, NULL apart from NaN apart from ±inf — on both engines."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db import blocks, columnar, queries, writer
from db.engine import open_db
from db.journal import Journal
from db.models import POINT_METRICS, PointBlock, Run
from db.writer import RunWrite, write_run_batch
from tests.db.conftest import trial_config

NAN, INF = math.nan, math.inf


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


def _blocks(engine: Engine) -> dict[int, tuple[int, int | None]]:
    """run id → (n_points, last_step) of the stored blocks."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(PointBlock.run_id, PointBlock.n_points, PointBlock.last_step)).all()
    return {run_id: (n, last) for run_id, n, last in rows}


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


def test_a_run_is_sealed_by_its_final_status_and_reopened_by_any_other(engine: Engine, study: dict) -> None:
    r0, r1, r2, r3 = study["runs"].values()
    for run_id in (r0, r1, r2):
        writer.write_points(engine, run_id, _points(12))
    _seal(engine, r0, "completed")
    _seal(engine, r1, "diverged")
    _seal(engine, r2, "failed")  # resumable with --retry-failed: never sealed
    _seal(engine, r3, "completed")  # a run without points
    assert _blocks(engine) == {r0: (12, 11), r1: (12, 11), r3: (0, None)}
    writer.write_points(engine, r0, _points(3, first=12))  # points written to a sealed run rebuild its block
    writer.write_points(engine, r1, _points(3))  # steps already stored: nothing to rebuild
    assert _blocks(engine) == {r0: (15, 14), r1: (12, 11), r3: (0, None)}
    _seal(engine, r1, "running")
    assert set(_blocks(engine)) == {r0, r3}
    with engine.begin() as conn:
        conn.execute(sa.delete(Run).where(Run.id == r0))  # deleting a run deletes its block
    assert set(_blocks(engine)) == {r3}


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
    assert set(_blocks(engine)) == {r0, r2, r3}
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


def test_replaying_a_journal_leaves_blocks_that_agree_with_the_rows(engine: Engine, study: dict, tmp_path) -> None:
    """A journal applied twice (killed between commit and deletion), holding a run's last points with its final
    status and then points for it again: its block is the rows'."""
    r0, r1 = study["runs"]["trial-000"], study["runs"]["trial-001"]
    batches = [[RunWrite(r0, points=_points(5), fields={"status": "running"}), RunWrite(r1, points=_points(4))],
               [RunWrite(r0, points=_points(5, first=5), fields={"status": "completed"})],
               [RunWrite(r0, points=_points(2, first=10))]]
    journal = Journal(tmp_path / "j.jsonl")
    journal.append(batches)
    with Session(engine) as session, session.begin():
        for batch in journal.read():
            write_run_batch(session, batch)
    assert journal.replay(engine) == 3
    assert _blocks(engine) == {r0: (12, 11)}
    read = queries.point_columns(engine, "demo", ["train_loss", "test_loss", "sde_time"], keep_null=True)
    pd.testing.assert_frame_equal(read, _from_rows(engine, lambda c: queries.point_columns(
        c, "demo", ["train_loss", "test_loss", "sde_time"], keep_null=True)))


def test_a_study_read_while_written_is_one_state(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the read of the blocks and the read of the rows, the driver seals a run and writes points of
    another: the sealed run is read once, from its rows; on SQLite the read is one snapshot (the new points are not
    in it), on PostgreSQL each run is read from one state."""
    engine = open_db(db_url, create=True)
    with Session(engine) as session, session.begin():
        st = writer.ensure_study(session, "live", {"name": "live"})
        r0, r1, r2 = writer.ensure_runs(session, st, [trial_config(i) for i in range(3)]).values()
    for run_id in (r0, r1, r2):
        writer.write_points(engine, run_id, _points(6))
    _seal(engine, r0)
    before = queries.point_columns(engine, "live", ["train_loss"], keep_null=True)
    real = columnar.read_columns

    def then_the_driver_writes(*args: Any, **kwargs: Any) -> Any:
        other = open_db(db_url)
        writer.write_points(other, r2, _points(2, first=6))
        _seal(other, r1)
        other.dispose()
        return real(*args, **kwargs)

    monkeypatch.setattr(columnar, "read_columns", then_the_driver_writes)
    during = queries.point_columns(engine, "live", ["train_loss"], keep_null=True)
    monkeypatch.undo()
    assert set(_blocks(engine)) == {r0, r1} and len(queries.point_columns(engine, "live", [])) == 20
    engine.dispose()
    if db_url.startswith("sqlite"):
        pd.testing.assert_frame_equal(during, before)
    else:
        assert during["run_id"].tolist() == [r0] * 6 + [r1] * 6 + [r2] * 8
        pd.testing.assert_frame_equal(during.head(12), before.head(12))


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
