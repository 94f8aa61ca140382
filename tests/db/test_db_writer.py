"""The write path: idempotent studies, runs, points and diagnostics; validation before anything is written."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db import queries, writer
from db.errors import StudySpecMismatch, UnknownRun, UnknownStudy
from db.models import POINT_METRICS, RUN_HPARAMS, Diagnostic, Point, Run, Study


def count(engine: Engine, model: type, **where: object) -> int:
    with Session(engine) as session:
        stmt = sa.select(sa.func.count()).select_from(model).filter_by(**where)
        return int(session.scalar(stmt) or 0)


def batch(steps: range, offset: float = 0.0) -> list[dict]:
    return [{"step": s, **{m: s + offset + i / 100 for i, m in enumerate(POINT_METRICS)}} for s in steps]


def stored(engine: Engine, run_id: int) -> dict[int, dict]:
    with Session(engine) as session:
        rows = session.scalars(sa.select(Point).where(Point.run_id == run_id).order_by(Point.step))
        return {r.step: {m: getattr(r, m) for m in POINT_METRICS} for r in rows}


def test_write_points_idempotent(engine: Engine, study: dict) -> None:
    run_id = study["runs"]["trial-000"]
    first = batch(range(100))
    with engine.begin() as conn:
        assert writer.write_points(conn, run_id, first) == 100
    with engine.begin() as conn:
        assert writer.write_points(conn, run_id, first) == 0  # the same report again
    overlapping = batch(range(50, 150), offset=1000.0)  # steps 50..99 re-reported with other values
    with engine.begin() as conn:
        assert writer.write_points(conn, run_id, overlapping) == 50
    assert count(engine, Point, run_id=run_id) == 150
    values = stored(engine, run_id)
    expected = {p["step"]: {m: p[m] for m in POINT_METRICS} for p in first}
    expected.update({p["step"]: {m: p[m] for m in POINT_METRICS} for p in overlapping if p["step"] >= 100})
    assert values == expected  # old steps unchanged, new ones added
    assert count(engine, Point, run_id=study["runs"]["trial-001"]) == 0


def test_write_points_targets_and_chunks(engine: Engine, study: dict) -> None:
    run_id = study["runs"]["trial-001"]
    many = batch(range(writer.CHUNK_ROWS * 2 + 17))  # several INSERT statements on SQLite
    assert writer.write_points(engine, run_id, many) == len(many)  # an Engine: own transaction
    with Session(engine) as session, session.begin():  # a Session: the caller's transaction
        assert writer.write_points(session, run_id, batch(range(len(many), len(many) + 5))) == 5
        assert writer.write_points(session, run_id, many[:10] + batch(range(10_000, 10_003))) == 3
    assert count(engine, Point, run_id=run_id) == len(many) + 8
    assert writer.write_points(engine, run_id, []) == 0


def test_write_points_sparse_and_duplicates_within_a_batch(engine: Engine, study: dict) -> None:
    run_id = study["runs"]["trial-002"]
    points = [{"step": 0, "train_loss": 2.0}, {"step": 10, "test_acc": 0.5}, {"step": 0, "train_loss": 9.0}]
    assert writer.write_points(engine, run_id, points) == 2
    values = stored(engine, run_id)
    assert values[0]["train_loss"] == 2.0 and values[0]["test_acc"] is None
    assert values[10]["test_acc"] == 0.5 and values[10]["train_loss"] is None


def test_write_points_rejects_unknown_keys(engine: Engine, study: dict) -> None:
    run_id = study["runs"]["trial-000"]
    good = batch(range(3))
    with pytest.raises(ValueError, match=r"unknown point keys.*'train_los'"):
        writer.write_points(engine, run_id, [*good, {"step": 3, "train_los": 1.0}])
    with pytest.raises(ValueError, match="needs 'step'"):
        writer.write_points(engine, run_id, [{"train_loss": 1.0}])
    assert count(engine, Point) == 0  # nothing of a rejected batch is written


def test_write_diagnostics_idempotent(engine: Engine, study: dict) -> None:
    run_id = study["runs"]["trial-000"]
    spectrum = np.linspace(0, 1, 7).reshape(7, 1)
    items = [
        {"step": 100, "kind": "sharpness", "value": 3.5, "wall_seconds": 0.2, "summary": {"iters": np.int64(20)}},
        {"step": 100, "kind": "spectrum", "payload": spectrum, "summary": {"rank": 3, "top": np.float32(0.5)}},
        {"step": 200, "kind": "sharpness", "value": 4.0},
    ]
    assert writer.write_diagnostics(engine, run_id, items) == 3
    changed = [dict(items[0], value=99.0), {"step": 300, "kind": "sharpness", "value": 5.0}]
    assert writer.write_diagnostics(engine, run_id, changed) == 1
    assert count(engine, Diagnostic, run_id=run_id) == 4
    with Session(engine) as session:
        sharp = session.get(Diagnostic, (run_id, 100, "sharpness"))
        spec = session.get(Diagnostic, (run_id, 100, "spectrum"))
    assert sharp is not None and sharp.value == 3.5 and sharp.summary == {"iters": 20}
    assert spec is not None and spec.summary == {"rank": 3, "top": 0.5} and spec.value is None
    import io

    assert np.array_equal(np.load(io.BytesIO(spec.payload)), spectrum)
    with pytest.raises(ValueError, match="not a scalar"):
        writer.write_diagnostics(engine, run_id, [{"step": 1, "kind": "x", "summary": {"v": np.ones(3)}}])
    with pytest.raises(ValueError, match="unknown diagnostic keys"):
        writer.write_diagnostics(engine, run_id, [{"step": 1, "kind": "x", "values": 1.0}])
    with pytest.raises(ValueError, match="needs 'kind'"):
        writer.write_diagnostics(engine, run_id, [{"step": 1, "value": 1.0}])


def test_ensure_study_idempotent(engine: Engine) -> None:
    spec = {"name": "s", "sweep": {"lr": [0.1, 0.2]}}
    with Session(engine) as session, session.begin():
        first = writer.ensure_study(session, "s", spec, git_commit="abc123", ray_cpus=8.0)
        first_id = first.id
    with Session(engine) as session, session.begin():
        again = writer.ensure_study(session, "s", dict(reversed(list(spec.items()))), ray_gpus=1.0)
        assert again.id == first_id and again.ray_cpus == 8.0 and again.ray_gpus == 1.0
        assert again.spec == spec and again.spec_hash == writer.spec_hash(spec) and again.git_commit == "abc123"
        assert again.status == "running" and again.package_version
    assert count(engine, Study) == 1
    with Session(engine) as session, pytest.raises(StudySpecMismatch, match="different spec"):
        writer.ensure_study(session, "s", {"name": "s", "sweep": {"lr": [0.3]}})
    with Session(engine) as session, pytest.raises(ValueError, match="status"):
        writer.ensure_study(session, "t", spec, status="done")


def test_update_study(engine: Engine, study: dict) -> None:
    with Session(engine) as session, session.begin():
        writer.update_study(session, study["study_id"], status="completed", ray_nodes=2)
    with Session(engine) as session:
        st = session.get(Study, study["study_id"])
        assert st is not None and (st.status, st.ray_nodes) == ("completed", 2)
        with pytest.raises(ValueError, match=r"cannot update studies\.name"):
            writer.update_study(session, study["study_id"], name="x")
        with pytest.raises(UnknownStudy):
            writer.update_study(session, 12345, status="failed")


def test_ensure_runs_idempotent(engine: Engine, study: dict, make_config: Callable[..., writer.PlainTrial]) -> None:
    configs = [make_config(i) for i in range(6)]
    with Session(engine) as session, session.begin():
        ids = writer.ensure_runs(session, study["study_id"], configs)
    assert list(ids) == [c.trial_id for c in configs]
    assert {k: ids[k] for k in study["runs"]} == study["runs"]  # the fixture's 4 runs keep their ids
    with Session(engine) as session, session.begin():
        assert writer.ensure_runs(session, study["study_id"], configs[::-1]) == {k: ids[k] for k in reversed(ids)}
    assert count(engine, Run, study_id=study["study_id"]) == 6
    with Session(engine) as session:
        run = session.get(Run, ids["trial-005"])
        assert run is not None
        assert (run.status, run.attempts, run.trial_index) == ("pending", 0, 5)
        assert (run.optimizer, run.model, run.dataset) == ("adam", "mlp", "teacher")
        assert (run.batch_size, run.lr, run.weight_decay, run.svag_l, run.seed) == (64, 0.01, 5e-4, 1.0, 5)
        assert (run.beta1, run.beta2, run.eps, run.momentum) == (0.9, 0.999, 1e-8, None)
        assert (run.scaling_rule, run.kappa) == ("sqrt", 2.0)
        assert run.config == configs[5].config


def test_ensure_runs_validation(engine: Engine, study: dict, make_config: Callable[..., writer.PlainTrial]) -> None:
    with Session(engine) as session:
        with pytest.raises(ValueError, match="duplicate trial ids: trial-000"):
            writer.ensure_runs(session, study["study_id"], [make_config(0), make_config(0)])
        with pytest.raises(ValueError, match="trial-009: no lr, seed"):
            writer.ensure_runs(session, study["study_id"], [make_config(9, lr=None, seed=None)])
        hparams = {k: v for k, v in make_config(9).hparams.items() if k != "svag_l"} | {"l": 1.0}
        with pytest.raises(ValueError, match=r"trial-009: hyperparameters\(\) must give .*\(differs in l, svag_l\)"):
            writer.ensure_runs(session, study["study_id"], [writer.PlainTrial("trial-009", 9, hparams, {})])
    assert count(engine, Run, study_id=study["study_id"]) == 4  # nothing written


def test_run_row_stores_the_hyperparameters_as_given(make_config: Callable[..., writer.PlainTrial]) -> None:
    trial = make_config(3, optimizer="sgd", momentum=0.9, beta1=None, beta2=None, eps=None, scaling_rule="linear")
    row = writer.run_row(trial)
    assert row == {"trial_id": "trial-003", "trial_index": 3, **trial.hparams, "config": trial.config}
    assert list(row)[2:-1] == list(RUN_HPARAMS)


def test_update_run(engine: Engine, study: dict) -> None:
    run_id = study["runs"]["trial-003"]
    with Session(engine) as session, session.begin():
        writer.update_run(session, run_id, status="running", host="node-1", device="cuda:0", attempts=Run.attempts + 1)
        writer.update_run(session, run_id, attempts=Run.attempts + 1)
    with Session(engine) as session, session.begin():
        writer.update_run(session, run_id, status="diverged", diverged_step=1234, steps_done=1234, error=None)
    with Session(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        assert (run.status, run.host, run.device, run.attempts, run.diverged_step) == (
            "diverged",
            "node-1",
            "cuda:0",
            2,
            1234,
        )
        with pytest.raises(ValueError, match=r"cannot update runs\.trial_id"):
            writer.update_run(session, run_id, trial_id="other")
        with pytest.raises(ValueError, match=r"cannot update runs\.colour"):
            writer.update_run(session, run_id, colour="red")
        with pytest.raises(ValueError, match="run status 'done'"):
            writer.update_run(session, run_id, status="done")
        with pytest.raises(UnknownRun):
            writer.update_run(session, 424242, status="failed")


def test_add_verdict(engine: Engine, study: dict) -> None:
    with Session(engine) as session, session.begin():
        v = writer.add_verdict(
            session,
            study["study_id"],
            "linear_scaling",
            "CONFIRMED",
            statistic=0.03,
            parameters={"tolerance": 0.1},
            evidence={"rows": [[1, 2.0]]},
        )
        assert v.id is not None
    with Session(engine) as session, pytest.raises(ValueError, match="verdict 'YES'"):
        writer.add_verdict(session, study["study_id"], "x", "YES")


def test_store_verdict_appends_to_the_history(engine: Engine, study: dict) -> None:
    first = writer.store_verdict(engine, "demo", "nsr", "INCONCLUSIVE", evidence={"missing": ["seeds"]})
    second = writer.store_verdict(engine, study["study_id"], "nsr", "CONFIRMED", statistic=np.float64(1.5),
                                  parameters={"metric": "test_loss"})
    writer.store_verdict(engine, "demo", "sharpness", "REFUTED")
    history = queries.verdicts_frame(engine, "demo", check="nsr")  # committed: read on another connection
    assert history["id"].tolist() == [first, second] and second > first
    assert history["verdict"].tolist() == ["INCONCLUSIVE", "CONFIRMED"]
    assert np.isnan(history["statistic"].iloc[0]) and history["statistic"].iloc[1] == 1.5
    assert history["parameters"].tolist() == [{}, {"metric": "test_loss"}]
    assert history["evidence"].iloc[0] == {"missing": ["seeds"]} and history["evidence"].iloc[1] is None
    with pytest.raises(UnknownStudy, match="no study named 'dmeo'"):
        writer.store_verdict(engine, "dmeo", "nsr", "CONFIRMED")
    with pytest.raises(ValueError, match="verdict 'YES'"):
        writer.store_verdict(engine, "demo", "nsr", "YES")
    assert len(queries.verdicts_frame(engine, "demo")) == 3  # the refused ones wrote nothing


def test_checks_store_their_verdict_through_the_writer(engine: Engine, study: dict) -> None:
    from sweeper.checks.base import Verdict, store

    verdict = Verdict("sharpness", "REFUTED", "λ_max rises with η/B.", statistic=0.3, parameters={"runs": 8},
                      tolerance={"confidence_level": 0.95, "why": "t-interval"}, evidence=[{"lr": 0.1, "runs": 2}],
                      details={"fit": {"ci": [0.1, 0.5]}})
    store(engine, "demo", verdict)
    row = queries.verdicts_frame(engine, "demo").iloc[0]
    assert (row["check"], row["verdict"], row["statistic"], row["parameters"]) == ("sharpness", "REFUTED", 0.3,
                                                                                   {"runs": 8})
    payload = verdict.as_json()
    assert row["evidence"] == {k: payload[k] for k in ("summary", "tolerance", "evidence", "missing", "details")}
