"""A results database written through ``db.writer`` (no training, no Ray), with known contents for the CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from db.engine import open_db
from db.writer import ensure_runs, ensure_study, store_verdict, update_run, write_diagnostics, write_points
from sweeper.expand import expand
from tests.helpers import make_spec

NOISE_PAYLOADS = {0: [3.0, 2.0, 1.0], 10: [2.0, 1.0, 0.5], 20: [1.0, 0.5, 0.25]}
"""Run 1's ``noise`` diagnostic: payload (eigenvalues) per step; value = their sum, summary rank = 3."""


def _points(lr: float) -> list[dict[str, float]]:
    """Three points whose losses fall as 1/(1 + lr·step); test_acc is never measured (a regression)."""
    return [{"step": s, "epoch": s / 20, "train_loss": 1 / (1 + lr * s), "test_loss": 1.1 / (1 + lr * s)}
            for s in (0, 10, 20)]


@pytest.fixture(scope="package")
def known_db(tmp_path_factory) -> str:
    """SQLite URL of study 'lin': three completed linreg runs (lr 0.05, 0.1, 0.2; run ids 1–3) with three points
    each; run 1 has ``noise`` diagnostics at steps 0/10/20 (NOISE_PAYLOADS) and one ``sharpness`` at step 20;
    three stored verdicts: lsr CONFIRMED (statistic 0.02, relative tolerance 0.05), svag REFUTED (0.4, 0.1), lsr
    INCONCLUSIVE whose finished runs said REFUTED (provisional)."""
    folder: Path = tmp_path_factory.mktemp("known")
    url = f"sqlite:///{folder / 'sweeper.db'}"
    spec = make_spec(name="lin", sweep={"batch_size": [8], "lr": [0.05, 0.1, 0.2]})
    trials = expand(spec)
    engine = open_db(url, create=True)
    with Session(engine) as session, session.begin():
        study = ensure_study(session, spec.name, spec.model_dump(mode="json"))
        ids = ensure_runs(session, study, list(trials))
        for trial in trials:
            write_points(session, ids[trial.trial_id], _points(trial.lr))
            update_run(session, ids[trial.trial_id], status="completed", steps_done=20)
        first = ids[trials[0].trial_id]
        write_diagnostics(session, first, [
            {"step": s, "kind": "noise", "value": sum(p), "summary": {"rank": 3, "top": p[0]},
             "payload": np.array(p), "wall_seconds": 0.01} for s, p in NOISE_PAYLOADS.items()])
        write_diagnostics(session, first, [{"step": 20, "kind": "sharpness", "value": 7.5,
                                            "summary": {"iterations": 12}}])
    for check, verdict, statistic, tolerance, details in (
            ("lsr", "CONFIRMED", 0.02, 0.05, {}),
            ("svag", "REFUTED", 0.4, 0.1, {}),
            ("lsr", "INCONCLUSIVE", 0.03, 0.05, {"provisional": {"verdict": "REFUTED", "summary": "so far"}})):
        store_verdict(engine, "lin", check, verdict, statistic=statistic, parameters={"metric": "test_loss"},
                      evidence={"summary": f"{check} {verdict.lower()}", "evidence": [{"path": "a", "why": "b"}],
                                "tolerance": {"relative": tolerance, "alpha": 0.05, "why": "a quarter of the line"},
                                "missing": [], "details": details})
    engine.dispose()
    return url
