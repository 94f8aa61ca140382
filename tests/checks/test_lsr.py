"""``lsr`` on constructed studies whose answer is known (both ways, and INCONCLUSIVE), plus the example spec."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from sweeper.checks import lsr
from sweeper.checks.base import StudyData

Curve = Callable[[float, int, np.ndarray], np.ndarray]  # (κ, seed, t) -> metric


def path_study(curve: Curve, kappas=(1, 2, 4, 8), seeds=(0, 1, 2), *, rule: str = "linear", optimizer: str = "sgd",
               b0: int = 8, lr0: float = 0.1, t_end: float = 10.0, n: int = 201,
               diverged: dict[float, float] | None = None) -> StudyData:
    """Runs along a scaling path with metric ``curve(κ, seed, t)`` at n equal SDE times; ``diverged`` maps κ to
    the time at which its seed-0 run diverged (its points stop there, the last one NaN)."""
    runs, points = [], []
    for kappa in kappas:
        for seed in seeds:
            rid = len(runs) + 1
            scale = kappa if rule == "linear" else math.sqrt(kappa)
            bk = kappa if rule == "sqrt" else 1.0  # the sqrt rule also scales 1 − β and ε
            stop = (diverged or {}).get(kappa) if seed == seeds[0] else None
            runs.append({"run_id": rid, "trial_id": f"t{rid}", "status": "diverged" if stop else "completed",
                         "optimizer": optimizer, "batch_size": int(b0 * kappa), "lr": lr0 * scale,
                         "weight_decay": 0.0, "svag_l": 1.0, "seed": seed, "momentum": 0.0 if optimizer == "sgd"
                         else None, "beta1": 1 - bk * 0.1 if optimizer == "adam" else None,
                         "beta2": 1 - bk * 0.001 if optimizer != "sgd" else None,
                         "eps": 1e-8 / math.sqrt(bk) if optimizer != "sgd" else None,
                         "scaling_rule": rule, "kappa": float(kappa),
                         "config": {"scaling": {"rule": rule, "kappa": kappa, "base_batch_size": b0, "base_lr": lr0}}})
            t = np.linspace(0.0, t_end if stop is None else stop, n)
            y = curve(float(kappa), seed, t)
            if stop is not None:
                y[-1] = np.nan
            points += [{"run_id": rid, "step": i, "sde_time": ti, "epoch": ti, "test_loss": yi, "train_loss": yi}
                       for i, (ti, yi) in enumerate(zip(t, y, strict=True))]
    return StudyData("constructed", {}, pd.DataFrame(runs), pd.DataFrame(points), pd.DataFrame())


def noisy(offset: Callable[[float], float], sd: float = 0.004) -> Curve:
    """0.5 + 0.5·e^(−t) + offset(κ), plus point noise that depends on (κ, seed)."""
    def curve(kappa: float, seed: int, t: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([int(kappa * 1000), seed])
        return 0.5 + 0.5 * np.exp(-t) + offset(kappa) + sd * rng.standard_normal(len(t))
    return curve


def test_confirmed_when_every_kappa_matches_the_baseline():
    v = lsr.check(path_study(noisy(lambda k: 0.0)))
    assert v.verdict == "CONFIRMED", v.summary
    assert v.statistic == 8.0
    assert [r["status"] for r in v.evidence] == ["baseline", "holds", "holds", "holds"]
    assert v.tolerance["relative"] == 0.05 and "why" in v.tolerance


def test_refuted_when_large_kappa_departs_and_reports_largest_holding():
    v = lsr.check(path_study(noisy(lambda k: 0.2 if k >= 8 else 0.0)))
    assert v.verdict == "REFUTED", v.summary
    assert v.statistic == 4.0
    assert {r["kappa"]: r["status"] for r in v.evidence}[8.0] == "fails"
    assert "κ = 8" in v.summary and "B = 64" in v.summary


def test_a_transient_difference_fails_even_when_the_end_agrees():
    """Equal at the end but slower early: the trajectory comparison catches what the final value misses."""
    def curve(kappa: float, seed: int, t: np.ndarray) -> np.ndarray:
        rate = 0.25 if kappa == 4 else 1.0
        return 0.5 + 0.5 * np.exp(-rate * t) + 0.002 * np.random.default_rng([int(kappa), seed]).standard_normal(len(t))
    v = lsr.check(path_study(curve, t_end=40.0))
    rows = {r["kappa"]: r for r in v.evidence}
    assert v.verdict == "REFUTED" and rows[4.0]["status"] == "fails" and rows[8.0]["status"] == "holds"
    assert rows[4.0]["final_diff"] == pytest.approx(0.0, abs=0.01)


def test_divergence_counts_as_failure():
    v = lsr.check(path_study(noisy(lambda k: 0.0), diverged={8.0: 3.0}))
    assert v.verdict == "REFUTED"
    row = {r["kappa"]: r for r in v.evidence}[8.0]
    assert row["status"] == "fails" and "diverged" in row["why"]
    assert v.statistic == 4.0


def test_tolerance_is_settable():
    study = path_study(noisy(lambda k: 0.03 if k >= 8 else 0.0))  # 0.03 ≈ 6% of the late loss 0.5
    assert lsr.check(study).verdict == "REFUTED"
    assert lsr.check(study, tolerance=0.2).verdict == "CONFIRMED"


def test_inconclusive_when_noise_hides_the_answer():
    v = lsr.check(path_study(noisy(lambda k: 0.0, sd=0.3)))
    assert v.verdict == "INCONCLUSIVE", v.summary
    assert any("seeds" in m for m in v.missing)


def test_a_single_seed_is_judged_on_its_own_trajectory():
    """One seed per κ: the within-run error of 201 points decides both ways."""
    assert lsr.check(path_study(noisy(lambda k: 0.0), seeds=(0,))).verdict == "CONFIRMED"
    assert lsr.check(path_study(noisy(lambda k: 0.2 if k >= 8 else 0.0), seeds=(0,))).verdict == "REFUTED"


def test_unresolved_kappa_names_the_seeds_a_power_analysis_asks_for():
    """An offset of 4.4% against a 5% tolerance with visible noise: more seeds would decide it; the hint says how
    many (more than we have)."""
    v = lsr.check(path_study(noisy(lambda k: 0.022 if k >= 8 else 0.0, sd=0.05), seeds=(0, 1)))
    assert v.verdict == "INCONCLUSIVE", v.summary
    hint = next(m for m in v.missing if m.startswith("seeds: about"))
    assert int(hint.split()[2]) > 2 and "κ = 8" not in hint and "8" in hint


@pytest.mark.parametrize("change, needs", [
    (dict(kappas=(1,)), "factors"),
    (dict(rule="sqrt", optimizer="adam"), "[scaling]"),
    (dict(optimizer="adam"), "sgd"),
])
def test_inconclusive_on_incomplete_studies(change, needs):
    v = lsr.check(path_study(noisy(lambda k: 0.0), **change))
    assert v.verdict == "INCONCLUSIVE"
    assert any(needs in m for m in v.missing), v.missing


def test_baseline_divergence_and_unknown_metric_are_inconclusive():
    assert lsr.check(path_study(noisy(lambda k: 0.0), diverged={1.0: 2.0})).verdict == "INCONCLUSIVE"
    v = lsr.check(path_study(noisy(lambda k: 0.0)), metric="test_acc")
    assert v.verdict == "INCONCLUSIVE" and "metric" in v.missing[0]


def test_figure_draws():
    study = path_study(noisy(lambda k: 0.2 if k >= 8 else 0.0))
    fig = lsr.figure(study, lsr.check(study))
    assert len(fig.axes) == 2 and fig.axes[0].lines


def _run_example(name: str, tmp_path, overrides: dict[str, object] | None = None) -> StudyData:
    from db.engine import open_db
    from sweeper.launch.inline import run_inline
    from sweeper.spec import load_spec
    from tests.helpers import REPO_ROOT

    spec = load_spec(REPO_ROOT / "examples" / name, overrides or {})
    engine = open_db(f"sqlite:///{tmp_path / 'sweeper.db'}", create=True)
    run_inline(spec, engine)
    return StudyData.load(engine, spec.name)


@pytest.mark.slow
def test_example_lsr_confirm(tmp_path, one_thread):
    v = lsr.check(_run_example("lsr-confirm.toml", tmp_path, {"budget.epochs": 3, "log.every_epochs": 0.1}))
    assert v.verdict == "CONFIRMED", v.summary


@pytest.mark.slow
def test_example_lsr_refute(tmp_path, one_thread):
    v = lsr.check(_run_example("lsr-refute.toml", tmp_path, {"log.every_epochs": 0.02}))
    assert v.verdict == "REFUTED", v.summary
    rows = {r["kappa"]: r for r in v.evidence}
    assert rows[max(rows)]["status"] == "fails"
