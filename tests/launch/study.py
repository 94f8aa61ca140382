"""A small real study for the launch tests, and the exact rows it must produce."""

from __future__ import annotations

import sqlalchemy as sa

from db.models import Point, Run, Study
from sweeper.expand import TrialConfig, expand
from sweeper.spec import StudySpec
from sweeper.train.clock import make_clock
from tests.helpers import make_spec


def small_study(name: str = "launch-test", epochs: float = 2.0, **changes) -> StudySpec:
    """8 trials (2 lr × 2 svag_l × 2 seeds) of linreg, a point every 0.5 epochs, each reported with a checkpoint."""
    return make_spec(
        name=name, seeds=[0, 1], data={"name": "linreg", "n_train": 512, "dim": 4, "condition": 2.0},
        sweep={"batch_size": [8], "lr": [0.05, 0.1], "svag_l": [1, 2]}, budget={"epochs": epochs},
        log={"every_epochs": 0.5, "eval_samples": 256, "report_seconds": 1e-6}, **changes,
    )


def expected_steps(trial: TrialConfig) -> list[int]:
    return list(make_clock(trial, trial.data.n_train).log_steps)


def stored(url_or_engine, name: str) -> dict[str, dict]:
    """{trial_id: {"status", "attempts", "node_id", "error", "steps": [...]}} for a study."""
    engine = sa.create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    with engine.connect() as conn:
        runs = conn.execute(
            sa.select(Run.id, Run.trial_id, Run.status, Run.attempts, Run.node_id, Run.error, Run.host, Run.device)
            .join(Study, Study.id == Run.study_id).where(Study.name == name)
        ).all()
        out = {}
        for r in runs:
            steps = conn.scalars(sa.select(Point.step).where(Point.run_id == r.id).order_by(Point.step)).all()
            out[r.trial_id] = {"status": r.status, "attempts": r.attempts, "node_id": r.node_id, "error": r.error,
                               "host": r.host, "device": r.device, "steps": list(steps)}
    if isinstance(url_or_engine, str):
        engine.dispose()
    return out


def assert_complete(spec: StudySpec, rows: dict[str, dict], failed: set[str] = frozenset()) -> None:
    """Every trial present; finished ones have exactly their logged steps (complete, unique)."""
    trials = expand(spec)
    assert set(rows) == {t.trial_id for t in trials}
    for t in trials:
        row = rows[t.trial_id]
        if t.trial_id in failed:
            assert row["status"] == "failed" and row["error"], row
            continue
        assert row["status"] == "completed", (t.trial_id, row)
        assert row["steps"] == expected_steps(t), (t.trial_id, row["steps"])
