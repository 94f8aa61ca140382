"""The read API: DataFrames of studies, runs, points and diagnostics; clear errors for unknown names."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db import queries, writer
from db.errors import AmbiguousRun, UnknownRun, UnknownStudy
from db.models import POINT_METRICS, RUN_HPARAMS

NAN = float("nan")


@pytest.fixture
def filled(engine: Engine, study: dict, make_config: Callable[..., dict]) -> dict:
    """The demo study with points for runs 0 and 1, diagnostics for run 0, run 1 completed; and a second study."""
    runs = study["runs"]
    for i, trial in enumerate(("trial-000", "trial-001")):
        points = [{"step": s, "train_loss": 1.0 / (s + 1) + i, "lr": 0.5 * (i + 1), "epoch": s / 10} for s in range(5)]
        writer.write_points(engine, runs[trial], points)
    writer.write_diagnostics(
        engine,
        runs["trial-000"],
        [
            {"step": 0, "kind": "sharpness", "value": 2.0, "summary": {"iters": 10}},
            {"step": 4, "kind": "sharpness", "value": 3.0, "summary": {"iters": 12, "converged": True}},
            {"step": 4, "kind": "spectrum", "payload": np.arange(3.0)},
        ],
    )
    with Session(engine) as session, session.begin():
        writer.update_run(session, runs["trial-001"], status="completed")
        other = writer.ensure_study(session, "other", {"name": "other"})
        writer.ensure_runs(session, other, [make_config(0)])  # same trial id as in "demo"
    return study


def test_list_studies(engine: Engine, filled: dict) -> None:
    df = queries.list_studies(engine)
    assert df["name"].tolist() == ["demo", "other"]
    demo = df.set_index("name").loc["demo"]
    assert (demo["n_runs"], demo["n_pending"], demo["n_completed"], demo["n_failed"]) == (4, 3, 1, 0)
    assert "spec" not in df.columns and "created_at" in df.columns


def test_runs_frame(engine: Engine, filled: dict) -> None:
    df = queries.runs_frame(engine, "demo")
    assert df["trial_id"].tolist() == [f"trial-{i:03d}" for i in range(4)]
    assert df["run_id"].tolist() == [filled["runs"][t] for t in df["trial_id"]]
    assert set(RUN_HPARAMS) <= set(df.columns) and {"config", "status", "attempts", "started_at"} <= set(df.columns)
    assert df["lr"].tolist() == [0.01, 0.01, 0.02, 0.02] and df["batch_size"].tolist() == [32, 64, 32, 64]
    assert df["config"].iloc[0]["optimizer"]["name"] == "adam"
    assert queries.runs_frame(engine, "demo", status="completed")["trial_id"].tolist() == ["trial-001"]
    assert queries.runs_frame(engine, filled["study_id"]).shape == df.shape  # by id


def test_points_frame(engine: Engine, filled: dict) -> None:
    df = queries.points_frame(engine, "demo")
    assert len(df) == 10
    expected = [
        "run_id",
        "trial_id",
        "status",
        *RUN_HPARAMS,
        "step",
        *(queries.RENAMED_POINT_COLUMNS.get(m, m) for m in POINT_METRICS),
    ]
    assert df.columns.tolist() == expected
    first = df[df["trial_id"] == "trial-000"]
    assert first["step"].tolist() == [0, 1, 2, 3, 4]
    assert first["train_loss"].tolist() == [1.0 / (s + 1) for s in range(5)]
    assert set(first["lr_t"]) == {0.5} and set(first["lr"]) == {0.01}  # scheduled value vs run's base lr
    assert df["test_acc"].isna().all()
    one = queries.points_frame(engine, "demo", run_ids=[filled["runs"]["trial-001"]], metrics=["train_loss", "lr"])
    assert one.columns.tolist()[-3:] == ["step", "train_loss", "lr_t"] and set(one["trial_id"]) == {"trial-001"}
    assert queries.points_frame(engine, "other").empty
    with pytest.raises(ValueError, match="unknown point columns"):
        queries.points_frame(engine, "demo", metrics=["loss"])


def test_diagnostics_frame(engine: Engine, filled: dict) -> None:
    df = queries.diagnostics_frame(engine, "demo", decode_payload=True)
    assert df[["kind", "step"]].values.tolist() == [["sharpness", 0], ["sharpness", 4], ["spectrum", 4]]
    assert df["value"].tolist()[:2] == [2.0, 3.0] and np.isnan(df["value"].iloc[2])
    assert df["summary.iters"].tolist()[:2] == [10, 12] and df["summary.converged"].iloc[1] == True  # noqa: E712
    assert np.array_equal(df["payload"].iloc[2], np.arange(3.0)) and df["payload"].iloc[0] is None
    assert (df["optimizer"] == "adam").all() and "summary" not in df.columns
    sharp = queries.diagnostics_frame(engine, "demo", kind="sharpness", expand_summary=False)
    assert len(sharp) == 2 and sharp["summary"].iloc[0] == {"iters": 10}


def test_verdicts_frame(engine: Engine, filled: dict) -> None:
    with Session(engine) as session, session.begin():
        writer.add_verdict(session, filled["study_id"], "sde_scaling", "INCONCLUSIVE", parameters={"tol": 0.1})
    df = queries.verdicts_frame(engine, "demo")
    assert df[["check", "verdict"]].values.tolist() == [["sde_scaling", "INCONCLUSIVE"]]
    assert df["parameters"].iloc[0] == {"tol": 0.1}


def test_study_spec_and_frames(engine: Engine, filled: dict) -> None:
    assert queries.study_spec(engine, "demo") == {"name": "demo", "lr": [0.01, 0.02]}
    assert queries.study_spec(engine, filled["study_id"]) == queries.study_spec(engine, "demo")
    frames = queries.study_frames(engine, "demo")
    assert frames.spec == {"name": "demo", "lr": [0.01, 0.02]}
    pd.testing.assert_frame_equal(frames.runs, queries.runs_frame(engine, "demo"))
    pd.testing.assert_frame_equal(frames.points, queries.points_frame(engine, "demo"))
    diagnostics = queries.diagnostics_frame(engine, "demo")
    pd.testing.assert_frame_equal(frames.diagnostics.drop(columns="payload"), diagnostics.drop(columns="payload"))
    assert np.array_equal(frames.diagnostics["payload"].iloc[2], np.arange(3.0))  # decoded
    assert queries.study_frames(engine, "other").points.empty
    for read in (queries.study_spec, queries.study_frames):
        with pytest.raises(UnknownStudy, match="no study named 'dmeo'"):
            read(engine, "dmeo")


def test_checks_load_a_study_through_the_queries(engine: Engine, filled: dict) -> None:
    from sweeper.checks.base import StudyData

    data = StudyData.load(engine, "demo")
    frames = queries.study_frames(engine, "demo")
    assert data.name == "demo" and data.spec == frames.spec
    pd.testing.assert_frame_equal(data.runs, frames.runs)
    pd.testing.assert_frame_equal(data.points, frames.points)
    assert data.finished_runs()["trial_id"].tolist() == ["trial-001"]


def test_get_run(engine: Engine, filled: dict) -> None:
    run_id = filled["runs"]["trial-001"]
    run = queries.get_run(engine, run_id)
    assert run.trial_id == "trial-001" and run.status == "completed" and run.study.name == "demo"
    assert queries.get_run(engine, "trial-001").id == run_id  # unique trial id
    assert queries.get_run(engine, "trial-000", study="other").study.name == "other"
    assert run.as_dict()["lr"] == 0.01
    with pytest.raises(AmbiguousRun, match="demo, other"):
        queries.get_run(engine, "trial-000")
    with pytest.raises(UnknownRun):
        queries.get_run(engine, 999_999)
    with pytest.raises(UnknownRun, match="'nope'"):
        queries.get_run(engine, "nope")


def test_unknown_study(engine: Engine, filled: dict) -> None:
    with pytest.raises(UnknownStudy, match="no study named 'dmeo'; known studies: other, demo"):
        queries.runs_frame(engine, "dmeo")
    with pytest.raises(UnknownStudy, match="no study with id 777"):
        queries.points_frame(engine, 777)
    with pytest.raises(LookupError):
        queries.diagnostics_frame(engine, "missing")


def test_runs_with_final(engine: Engine, filled: dict) -> None:
    runs = filled["runs"]
    writer.write_points(engine, runs["trial-000"], [{"step": 9, "test_acc": 0.75}, {"step": 10, "train_loss": NAN}])
    df = queries.runs_with_final(engine, "demo")
    assert df["trial_id"].tolist() == [f"trial-{i:03d}" for i in range(4)]
    assert {f"final_{m}" for m in POINT_METRICS} <= set(df.columns) and "config" in df.columns
    first = df.iloc[0]
    assert np.isnan(first["final_train_loss"])  # the last measured value: NaN (diverged), not an older one
    assert first["final_test_acc"] == 0.75 and first["final_epoch"] == 0.4  # last non-NULL of each column
    assert df.iloc[1]["final_train_loss"] == 1.0 + 1.0 / 5 and np.isnan(df.iloc[2]["final_train_loss"])
    kept = queries.runs_with_final(engine, "demo", keep_null=True)
    assert kept["final_train_loss"].isna().tolist() == [False, False, True, True]  # NaN vs <NA> (no points)

    picked = queries.runs_with_final(engine, "demo", where="final_train_loss < 1.5 or (lr >= 0.02 and batch_size = 64)")
    assert picked["trial_id"].tolist() == ["trial-001", "trial-003"]
    done = queries.runs_with_final(engine, "demo", where="status = 'completed' and run_id > 0")
    assert done["trial_id"].tolist() == ["trial-001"]
    with pytest.raises(ValueError, match="final_train_los"):
        queries.runs_with_final(engine, "demo", where="final_train_los < 1")


def test_liveness_from_the_heartbeat(engine: Engine, study: dict, make_config: Callable[..., dict]) -> None:
    """A running study with a stale or missing heartbeat lists as interrupted (its running runs too); a fresh one
    as running; a finished one as what it is. Reading changes no stored row."""
    import datetime as dt

    from db.models import HEARTBEAT_GRACE_S, Study

    now = dt.datetime.now(dt.timezone.utc)
    grace = dt.timedelta(seconds=HEARTBEAT_GRACE_S)
    with Session(engine) as session, session.begin():
        writer.update_run(session, study["runs"]["trial-000"], status="running")
        writer.update_run(session, study["runs"]["trial-001"], status="completed")
        writer.write_heartbeat(session, study["study_id"], now - grace - dt.timedelta(seconds=5))  # "demo": stale
        ids = {}
        for name, status, beat in (("fresh", "running", now - grace + dt.timedelta(seconds=5)),
                                   ("silent", "running", None),  # died before its first beat
                                   ("done", "completed", now - 10 * grace)):
            st = writer.ensure_study(session, name, {"name": name})
            writer.ensure_runs(session, st, [make_config(0)])
            writer.update_study(session, st.id, status=status, heartbeat_at=beat)
            ids[name] = st.id
        writer.update_run(session, writer.ensure_runs(session, ids["fresh"], [make_config(0)])["trial-000"],
                          status="running")
    df = queries.list_studies(engine, now=now).set_index("name")
    assert df["status"].to_dict() == {"demo": "interrupted", "fresh": "running", "silent": "interrupted",
                                      "done": "completed"}
    assert "heartbeat_at" in df.columns
    assert queries.study_status(engine, "demo", now=now) == "interrupted"
    assert queries.study_status(engine, "fresh", now=now) == "running"
    # a minute later the fresh one is stale too
    assert queries.study_status(engine, "fresh", now=now + dt.timedelta(seconds=60)) == "interrupted"

    runs = queries.runs_with_final(engine, "demo", now=now)
    assert runs["status"].tolist() == ["interrupted", "completed", "pending", "pending"]
    picked = queries.runs_with_final(engine, "demo", now=now, where="status = 'interrupted'")
    assert picked["trial_id"].tolist() == ["trial-000"]
    assert queries.runs_with_final(engine, "fresh", now=now)["status"].tolist() == ["running"]

    with Session(engine) as session:  # nothing was rewritten by reading
        stored = dict(session.execute(sa.select(Study.name, Study.status)).all())
        assert stored == {"demo": "running", "fresh": "running", "silent": "running", "done": "completed"}
        assert queries.runs_frame(engine, "demo")["status"].tolist()[0] == "running"


def test_points_and_diagnostics_bind_no_parameter_per_run(engine: Engine, study: dict,
                                                 make_config: Callable[..., writer.PlainTrial]) -> None:
    """points_frame (and diagnostics_frame) read the runs' rows by their ids written into the statement, not one bound
    parameter each (PostgreSQL's driver refuses a statement of more than 65,535: a study of that many runs failed);
    checked here by the largest count of parameters any statement binds, on both engines."""
    with Session(engine) as session, session.begin():
        run_ids = list(writer.ensure_runs(session, study["study_id"], [make_config(i) for i in range(40)]).values())
    writer.write_points(engine, run_ids[-1], [{"step": 0, "train_loss": 1.0}])
    bound: list[int] = []

    def count(conn: object, cursor: object, statement: str, parameters: object, *args: object) -> None:
        bound.append(len(parameters) if isinstance(parameters, (tuple, list, dict)) else 0)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        frame = queries.points_frame(engine, "demo", metrics=["train_loss"])
        cols = queries.point_columns(engine, "demo", ["train_loss"], run_ids=run_ids)
        queries.diagnostics_frame(engine, "demo", run_ids=run_ids)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert frame["run_id"].tolist() == cols["run_id"].tolist() == [run_ids[-1]]
    assert bound and max(bound) < 10, bound
