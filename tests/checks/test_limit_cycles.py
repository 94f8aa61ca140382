"""limit-cycles on constructed trajectories with known answers, and on the example studies (slow).

Constructed runs are discretised linear SDEs x ← x − h·A x + √(2h)·ξ in 4 dimensions (docs/theory.md §8): a symmetric A
is reversible (no probability current); A = I + ω·J with J antisymmetric has a current of known sign. Their
``trajectory_stats`` rows are computed with the same estimators as the in-trial diagnostic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sweeper.checks import limit_cycles
from sweeper.checks.base import StudyData
from sweeper.diagnostics.trajectory import (
    increment_spectrum,
    levy_area_test,
    long_lag_autocorrelation,
    msd_exponent,
)


def sde(omega: float, steps: int, seed: int, h: float = 0.05, k: int = 8) -> np.ndarray:
    """(steps, k) projections of a 4-D linear SDE with drift −(I + ω J) x (J: rotation in two planes)."""
    rng = np.random.default_rng(seed)
    j = np.zeros((4, 4))
    j[0, 1], j[1, 0], j[2, 3], j[3, 2] = -1, 1, -1, 1
    a = np.diag([1.0, 1.0, 0.5, 0.5]) + omega * j
    step = np.eye(4) - h * a
    noise = rng.standard_normal((steps, 4)) * np.sqrt(2 * h)
    x, out = np.zeros(4), np.empty((steps, 4))
    for t in range(steps):
        x = step @ x + noise[t]
        out[t] = x
    u = np.random.default_rng(100).standard_normal((k, 4))
    return out @ (u / np.linalg.norm(u, axis=1, keepdims=True)).T


def stats_row(traj: np.ndarray) -> dict[str, Any]:
    """The summary the in-trial diagnostic stores (sweeper.train.diagnose._TrajectoryRecorder.statistics)."""
    t = len(traj)
    spectrum, acf = increment_spectrum(traj), long_lag_autocorrelation(traj)
    msd, levy = msd_exponent(traj, window=(1, max(2, t // 8))), levy_area_test(traj)
    return {"summary.samples": t, "summary.low_freq_ratio": spectrum.low_freq_ratio,
            "summary.low_freq_p": spectrum.p_value, "summary.acf_fraction_outside": acf.fraction_outside,
            "summary.msd_exponent": msd.exponent, "summary.levy_statistic": levy.statistic,
            "summary.levy_z": levy.z_score, "summary.levy_p": levy.p_value, "value": levy.p_value}


def study(runs: list[dict[str, Any]], payload: bool = True, stats: bool = True) -> StudyData:
    """Runs from dicts {omega, steps, seed, control (bool), levy_p (override)}: a trajectory per run."""
    run_rows, diag_rows = [], []
    for i, r in enumerate(runs, start=1):
        control = r.get("control", False)
        config = ({"data": {"name": "linreg", "hetero": 0.0}, "model": {"name": "linear"}} if control else
                  {"data": {"name": "teacher"}, "model": {"name": "mlp"}})
        hyper = {"batch_size": 4, "lr": 0.5, "weight_decay": 0.0 if control else 1e-2, "seed": r.get("seed", i)}
        run_rows.append({"run_id": i, "trial_id": f"t{i}", "status": "completed", "dataset": config["data"]["name"],
                         "model": config["model"]["name"], "optimizer": "sgd", "config": config, **hyper})
        traj = sde(r["omega"], r["steps"], seed=hyper["seed"])
        base = {"run_id": i, "trial_id": f"t{i}", **hyper}
        if payload:
            half = len(traj) // 2  # two flushed chunks, as a trial reports them
            for start, stop in ((0, half), (half, len(traj))):
                chunk = np.column_stack([np.arange(start, stop, dtype=float), traj[start:stop]])
                diag_rows.append({**base, "step": start, "kind": "trajectory", "value": float(len(chunk)),
                                  "payload": chunk})
        if stats:
            row = {**base, "step": len(traj), "kind": "trajectory_stats", "payload": None, **stats_row(traj)}
            if "levy_p" in r:
                row["summary.levy_p"] = r["levy_p"]
            diag_rows.append(row)
    return StudyData("constructed", {}, pd.DataFrame(run_rows), pd.DataFrame(), pd.DataFrame(diag_rows))


def test_confirmed_on_a_rotational_sde_with_a_reversible_control():
    v = limit_cycles.check(study([{"omega": 2.0, "steps": 4000, "seed": 1},
                                  {"omega": 0.0, "steps": 4000, "seed": 2, "control": True}]))
    assert v.verdict == "CONFIRMED", v.summary
    ev = {e["run_id"]: e for e in v.evidence}
    assert ev[1]["rejects"] and not ev[2]["rejects"] and ev[2]["control"]
    assert v.tolerance["bonferroni_threshold"] == pytest.approx(0.005)
    assert v.statistic <= 0.005


def test_refuted_on_reversible_sdes_with_enough_data():
    v = limit_cycles.check(study([{"omega": 0.0, "steps": 8000, "seed": s} for s in (1, 2, 3)]))
    assert v.verdict == "REFUTED", v.summary
    assert not any(e["rejects"] for e in v.evidence)
    assert all(e["effective_samples"] > 80 for e in v.evidence)  # τ_int ≈ 70 samples
    assert "undetected" in v.summary and "power_caveat" in v.details


def test_inconclusive_without_the_trajectory_diagnostic():
    v = limit_cycles.check(study([{"omega": 2.0, "steps": 1000}], stats=False, payload=False))
    assert v.verdict == "INCONCLUSIVE"
    assert any("[diagnostics.trajectory]" in m for m in v.missing)


def test_inconclusive_when_too_short_to_rule_a_current_out():
    v = limit_cycles.check(study([{"omega": 0.0, "steps": 500, "seed": 1}]))
    assert v.verdict == "INCONCLUSIVE" and "too little data" in v.summary
    assert v.evidence[0]["samples"] == 500


def test_inconclusive_when_a_reversible_control_is_flagged():
    """A run labelled as the linreg control whose trajectory does carry a current: the null is not trusted."""
    v = limit_cycles.check(study([{"omega": 2.0, "steps": 4000, "seed": 1},
                                  {"omega": 2.0, "steps": 4000, "seed": 2, "control": True}]))
    assert v.verdict == "INCONCLUSIVE" and "control" in v.summary


def test_p_at_the_surrogate_floor_is_recomputed_when_bonferroni_needs_it():
    """20 runs: α/m = 5e-4 is below the stored floor 1/1000; the stored trajectory gives a finer p."""
    runs = [{"omega": 0.0, "steps": 2500, "seed": s} for s in range(1, 20)] + [{"omega": 2.0, "steps": 2500,
                                                                                 "seed": 50}]
    v = limit_cycles.check(study(runs))
    ev = v.evidence[-1]
    assert v.verdict == "CONFIRMED", v.summary
    assert ev["p_source"].startswith("recomputed") and ev["p"] < 5e-4
    no_payload = limit_cycles.check(study(runs, payload=False))
    assert no_payload.verdict == "INCONCLUSIVE" and "surrogate floor" in no_payload.summary


def test_alpha_is_the_tolerance():
    data = study([{"omega": 0.0, "steps": 4000, "seed": 1, "levy_p": 0.03}])
    assert limit_cycles.check(data).verdict == "REFUTED"
    assert limit_cycles.check(data, tolerance=0.05).verdict == "CONFIRMED"


def test_figure_draws():
    data = study([{"omega": 2.0, "steps": 2000, "seed": 1}])
    fig = limit_cycles.figure(data, limit_cycles.check(data))
    assert len(fig.axes) == 2


def _run_example(tmp_path: Path, name: str, overrides: dict[str, Any]) -> Any:
    from db.engine import open_db
    from sweeper.launch.inline import run_inline
    from sweeper.spec import load_spec
    from tests.helpers import REPO_ROOT

    spec = load_spec(REPO_ROOT / "examples" / name, overrides)
    engine = open_db(f"sqlite:///{tmp_path / 'lc.db'}", create=True)
    run_inline(spec, engine)
    return limit_cycles.check(StudyData.load(engine, spec.name))


@pytest.mark.slow
def test_example_tiny_mlp_shows_a_current(tmp_path: Path):
    """examples/limit-cycles.toml with one seed."""
    v = _run_example(tmp_path, "limit-cycles.toml", {"seeds": [0]})
    assert v.verdict == "CONFIRMED", v.summary


@pytest.mark.slow
def test_example_linreg_control_is_not_flagged(tmp_path: Path):
    """examples/limit-cycles-linreg.toml (Σ ∝ H at the optimum: reversible, docs/theory.md §9)."""
    v = _run_example(tmp_path, "limit-cycles-linreg.toml", {})
    assert v.verdict == "REFUTED", v.summary
    assert all(e["control"] for e in v.evidence)
