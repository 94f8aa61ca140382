"""Plain rows (db.rows, what the CLI's listings print): the same columns and values as the DataFrames of db.queries,
but integers stay integers and a missing timestamp is None however the other rows look."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db import queries, rows, writer
from db.errors import AmbiguousRun, UnknownRun

STARTED = dt.datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=dt.timezone.utc)


@pytest.fixture
def measured(engine: Engine, study: dict) -> dict:
    """The demo study: trial-000 completed (12 345 steps, started at STARTED) with two points and three
    diagnostics; trial-001 failed; trial-002/003 pending."""
    ids = study["runs"]
    writer.write_points(engine, ids["trial-000"], [{"step": 0, "train_loss": 2.0, "lr": 0.5},
                                                   {"step": 12_345, "train_loss": math.nan, "test_loss": 1.5}])
    writer.write_diagnostics(engine, ids["trial-000"], [
        {"step": 9, "kind": "spectrum", "payload": np.arange(3.0)},
        {"step": 4, "kind": "sharpness", "value": 3.0, "summary": {"iters": 12}},
        {"step": 0, "kind": "sharpness", "value": 2.0}])
    with Session(engine) as session, session.begin():
        writer.update_run(session, ids["trial-000"], status="completed", steps_done=12_345, started_at=STARTED)
        writer.update_run(session, ids["trial-001"], status="failed", error="boom")
    return study


def test_runs_rows_match_the_frame_with_native_types(engine: Engine, measured: dict) -> None:
    found = rows.runs_with_final(engine, "demo")
    frame = queries.runs_with_final(engine, "demo")
    assert tuple(frame.columns) == rows.RUNS_COLUMNS == tuple(found[0])
    assert [r["trial_id"] for r in found] == frame["trial_id"].tolist()
    assert [r["steps_done"] for r in found] == [12_345, None, None, None]  # the frame has 12345.0 and NaN
    assert [r["started_at"] for r in found] == [STARTED, None, None, None]  # the frame has NaT
    assert math.isnan(found[0]["final_train_loss"]) and found[0]["final_test_loss"] == 1.5
    assert found[1]["final_train_loss"] is None and found[1]["error"] == "boom"
    assert [r["run_id"] for r in rows.runs_with_final(engine, "demo", where="status = 'failed'")] == [
        measured["runs"]["trial-001"]]


def test_study_rows_match_the_frame(engine: Engine, measured: dict) -> None:
    (demo,) = rows.list_studies(engine)
    assert list(demo) == list(queries.list_studies(engine).columns)
    assert (demo["name"], demo["n_runs"], demo["n_completed"], demo["n_failed"], demo["n_pending"]) == (
        "demo", 4, 1, 1, 2)
    assert demo["status"] == "interrupted"  # "running" with no heartbeat: its driver is gone


def test_find_run(engine: Engine, measured: dict, make_config) -> None:
    run_id = measured["runs"]["trial-000"]
    assert rows.find_run(engine, run_id) == queries.get_run(engine, run_id).as_dict()
    assert rows.find_run(engine, "trial-001")["id"] == measured["runs"]["trial-001"]
    with Session(engine) as session, session.begin():
        writer.ensure_runs(session, writer.ensure_study(session, "b-other", {"name": "b-other"}), [make_config(0)])
    with pytest.raises(AmbiguousRun, match=r"in several studies \(b-other, demo\)"):
        rows.find_run(engine, "trial-000")
    assert rows.find_run(engine, "trial-000", study="demo")["id"] == run_id
    with pytest.raises(UnknownRun, match="no run with trial id 'nope' in study 'demo'"):
        rows.find_run(engine, "nope", study="demo")


def test_run_points_and_diagnostics(engine: Engine, measured: dict) -> None:
    run_id = measured["runs"]["trial-000"]
    points = rows.run_points(engine, run_id)
    assert list(points[0]) == ["step", *rows.POINT_COLUMNS]
    assert [(p["step"], p["lr_t"], p["test_loss"]) for p in points] == [(0, 0.5, None), (12_345, None, 1.5)]
    assert math.isnan(points[1]["train_loss"])
    found = rows.run_diagnostics(engine, run_id)
    assert [(d["kind"], d["step"]) for d in found] == [("sharpness", 0), ("sharpness", 4), ("spectrum", 9)]
    assert found[1]["summary"] == {"iters": 12} and found[0]["payload"] is None
    np.testing.assert_array_equal(rows.load_npy(found[2]["payload"]), np.arange(3.0))
