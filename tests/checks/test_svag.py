"""``svag`` on constructed studies whose answer is known (both ways, and INCONCLUSIVE), plus the example spec."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from sweeper.checks import svag
from sweeper.checks.base import StudyData
from tests.checks.test_lsr import _run_example

Curve = Callable[[float, int, np.ndarray], np.ndarray]  # (l, seed, t) -> metric


def svag_study(curve: Curve, levels=(1, 2, 4, 8), seeds=(0, 1, 2, 3), *, optimizer: str = "sgd",
               t_end: float = 10.0, n: int = 201, diverged: dict[float, float] | None = None) -> StudyData:
    """Runs differing only in l (and seed), metric ``curve(l, seed, t)`` at n equal SDE times; ``diverged`` maps l
    to the time at which its seed-0 run diverged."""
    runs, points = [], []
    for ell in levels:
        for seed in seeds:
            rid = len(runs) + 1
            stop = (diverged or {}).get(ell) if seed == seeds[0] else None
            runs.append({"run_id": rid, "trial_id": f"t{rid}", "status": "diverged" if stop else "completed",
                         "optimizer": optimizer, "batch_size": 8, "lr": 0.5, "weight_decay": 0.0,
                         "svag_l": float(ell), "seed": seed, "momentum": 0.0, "beta1": None, "beta2": None,
                         "eps": None, "scaling_rule": None, "kappa": None, "config": {}})
            t = np.linspace(0.0, t_end if stop is None else stop, n)
            y = curve(float(ell), seed, t)
            if stop is not None:
                y[-1] = np.nan
            points += [{"run_id": rid, "step": i, "sde_time": ti, "epoch": ti, "test_loss": yi}
                       for i, (ti, yi) in enumerate(zip(t, y, strict=True))]
    return StudyData("constructed", {}, pd.DataFrame(runs), pd.DataFrame(points), pd.DataFrame())


def weak_error(c: float, power: float = 1.0, sd: float = 0.0005) -> Curve:
    """0.5 + 0.5·e^(−t) + c/l^power, plus point noise depending on (l, seed)."""
    def curve(ell: float, seed: int, t: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([int(ell), seed])
        return 0.5 + 0.5 * np.exp(-t) + c / ell**power + sd * rng.standard_normal(len(t))
    return curve


def test_confirmed_when_trajectories_converge_like_one_over_l_and_sgd_is_close():
    v = svag.check(svag_study(weak_error(0.01)))
    assert v.verdict == "CONFIRMED", v.summary
    assert v.statistic == pytest.approx(-1.0, abs=0.15)
    rate = next(r for r in v.evidence if r["what"] == "rate")
    assert rate["call"] == "holds" and rate["pairs"] == 3


def test_confirmed_when_all_levels_agree_within_noise():
    v = svag.check(svag_study(weak_error(0.0, sd=0.003)))
    assert v.verdict == "CONFIRMED", v.summary
    assert "within noise" in v.summary


def test_refuted_when_sgd_departs_from_the_sde_limit():
    v = svag.check(svag_study(weak_error(0.2)))  # l = 1 sits 0.175 (≈ 35%) above l = 8
    assert v.verdict == "REFUTED", v.summary
    assert next(r for r in v.evidence if r["what"].startswith("SGD vs"))["call"] == "fails"
    assert next(r for r in v.evidence if r["what"] == "rate")["call"] == "holds"


def test_refuted_when_distances_do_not_shrink():
    """Consecutive levels stay 0.004 apart (alternating offsets): no convergence, though l = 1 is close to l = 8."""
    v = svag.check(svag_study(lambda ell, seed, t: weak_error(0.0)(ell, seed, t) + 0.004 * (np.log2(ell) % 2)))
    rate = next(r for r in v.evidence if r["what"] == "rate")
    assert rate["call"] == "fails" and abs(rate["slope"]) < 0.3, rate
    assert v.verdict == "REFUTED"


def test_slow_convergence_rate_fails():
    v = svag.check(svag_study(weak_error(0.02, power=0.2)))
    assert next(r for r in v.evidence if r["what"] == "rate")["call"] == "fails"
    assert v.verdict == "REFUTED"


def test_sgd_divergence_refutes_and_svag_divergence_is_inconclusive():
    assert svag.check(svag_study(weak_error(0.01), diverged={1.0: 4.0})).verdict == "REFUTED"
    v = svag.check(svag_study(weak_error(0.01), diverged={8.0: 4.0}))
    assert v.verdict == "INCONCLUSIVE" and "lr" in v.missing[0]


def test_a_single_seed_is_judged_on_its_own_trajectory():
    assert svag.check(svag_study(weak_error(0.0, sd=0.003), seeds=(0,))).verdict == "CONFIRMED"


@pytest.mark.parametrize("change, needs", [
    (dict(levels=(1,)), "svag_l"),
    (dict(levels=(2, 4, 8)), "svag_l"),
])
def test_inconclusive_on_incomplete_studies(change, needs):
    v = svag.check(svag_study(weak_error(0.01), **change))
    assert v.verdict == "INCONCLUSIVE", v.summary
    assert any(needs in m for m in v.missing), v.missing


def test_inconclusive_when_noise_hides_the_comparison():
    v = svag.check(svag_study(weak_error(0.01, sd=0.3), seeds=(0, 1)))
    assert v.verdict == "INCONCLUSIVE", v.summary


def test_adaptive_levels_are_ell_squared():
    """Adam's SVAG mixes with l = ℓ²: distances ∝ 1/ℓ² are the predicted 1/x rate."""
    v = svag.check(svag_study(weak_error(0.01, power=2.0), levels=(1, 2, 4), optimizer="adam"))
    assert v.verdict == "CONFIRMED", v.summary
    assert v.statistic == pytest.approx(-1.0, abs=0.15)


def test_figure_draws():
    study = svag_study(weak_error(0.01))
    fig = svag.figure(study, svag.check(study))
    assert len(fig.axes) == 2 and fig.axes[0].lines and fig.axes[1].lines


@pytest.mark.slow
def test_example_svag(tmp_path, one_thread):
    v = svag.check(_run_example("svag.toml", tmp_path, {"log.every_epochs": 0.125}))
    assert v.verdict == "CONFIRMED", v.summary
