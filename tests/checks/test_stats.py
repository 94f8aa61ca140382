"""The shared statistics against answers known in closed form: AR(1) autocorrelation times, the coverage of the
autocorrelation-aware error of a time average, overdispersion from a known between-seed variance, Holm, TOST."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweeper.checks.stats import (
    Estimate,
    Overdispersion,
    Replicates,
    SeriesMean,
    ar1_time,
    combine,
    holm,
    judge,
    loglog_slope,
    replicate_means,
    seeds_to_decide,
    series_mean,
)


def ar1(rho: float, n: int, rng: np.random.Generator, size: int = 1) -> np.ndarray:
    """Stationary AR(1) series with unit marginal variance, shape (size, n)."""
    x = np.empty((size, n))
    x[:, 0] = rng.standard_normal(size)
    e = rng.standard_normal((size, n)) * math.sqrt(1 - rho**2)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    return x


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8])
def test_iact_of_ar1_is_one_plus_rho_over_one_minus_rho(rho):
    rng = np.random.default_rng(1)
    taus = [ar1_time(x - x.mean()) for x in ar1(rho, 4000, rng, 20)]
    assert np.mean(taus) == pytest.approx((1 + rho) / (1 - rho), rel=0.1)


@pytest.mark.parametrize("rho, n", [(0.0, 40), (0.5, 40), (0.7, 60), (0.9, 200)])
def test_series_mean_error_covers_the_true_mean(rho, n):
    """Over 2000 AR(1) series with a linear drift, two-sided 90% t intervals from one series cover ≈ 90%."""
    rng = np.random.default_rng(2)
    drift = np.linspace(1.0, 0.0, n)  # deterministic drift: not noise
    hits = []
    for x in ar1(rho, n, rng, 2000):
        s = series_mean(drift + x)
        hits.append(abs(s.mean - drift.mean()) <= Estimate(0, 1, s.df).quantile(0.95) * math.sqrt(s.var))
    assert 0.84 <= np.mean(hits) <= 0.97


def test_series_mean_needs_three_finite_points():
    assert math.isnan(series_mean(np.array([1.0, 2.0])).var)
    assert math.isnan(series_mean(np.array([1.0, np.nan, 2.0, 3.0])).var)
    flat = series_mean(np.full(10, 2.0))
    assert flat.mean == 2.0 and flat.var == 0.0


def test_overdispersion_measures_a_known_between_seed_variance():
    """Seed means spread by τ² on top of within-run variance v: φ = Q/df estimates 1 + τ²/v."""
    rng = np.random.default_rng(3)
    v, tau2, n = 0.01, 0.03, 2
    sets = [Replicates(rng.normal(0, math.sqrt(v + tau2), n), np.full(n, v), np.full(n, 50.0)) for _ in range(400)]
    od = Overdispersion.pooled(sets)
    assert od.df == 400 and od.phi == pytest.approx(1 + tau2 / v, rel=0.15)
    est = combine(sets[0], od)
    assert est.se == pytest.approx(math.sqrt(od.phi * 2 * v) / 2) and est.df < 50 * 2


def test_combine_without_overdispersion_uses_the_within_run_variances():
    rep = Replicates.of([SeriesMean(1.0, 0.04, 10, 40, 2.0), SeriesMean(3.0, 0.04, 10, 40, 2.0)])
    est = combine(rep)
    assert est.value == 2.0 and est.se == pytest.approx(math.sqrt(0.08) / 2) and est.df == pytest.approx(20)
    assert Overdispersion(0.5, 10).factor == 1.0 and Overdispersion(3.0, 10).factor == 3.0


def test_welch_difference_of_estimates():
    d = Estimate(2.0, 0.3, 10).minus(Estimate(1.0, 0.4, 5))
    assert d.value == 1.0 and d.se == pytest.approx(0.5)
    assert d.df == pytest.approx(0.25**2 / (0.09**2 / 10 + 0.16**2 / 5))


def test_judge_is_tost_and_a_one_sided_failure_p():
    inside = judge(Estimate(0.01, 0.01, 20), 0.05, 0.05)
    assert inside.holds and inside.halfwidth == pytest.approx(1.724718 * 0.01, rel=1e-5) and inside.p_fail > 0.99
    beyond = judge(Estimate(0.2, 0.02, 20), 0.05, 0.05)
    assert not beyond.holds and beyond.p_fail < 1e-6
    edge = judge(Estimate(0.05, 0.02, 20), 0.05, 0.05)
    assert not edge.holds and edge.p_fail == pytest.approx(0.5)


def test_holm_step_down():
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05).tolist() == [True, False, False, True]
    assert holm([0.001, 0.012, 0.02], 0.05).tolist() == [True, True, True]  # 0.001 ≤ .05/3, .012 ≤ .025, .02 ≤ .05
    assert holm([math.nan, 0.01], 0.05).tolist() == [False, True]


def test_seeds_to_decide_scales_as_one_over_n():
    est = Estimate(0.0, 0.02, 30)
    n2 = seeds_to_decide(est, 0.03, 2, 0.05)  # need (2.49·0.02/0.03)²·2 ≈ 5.5 → 6
    assert n2 == 6
    assert seeds_to_decide(Estimate(0.03, 0.02, 30), 0.03, 2, 0.05) == math.inf


def test_loglog_slope_recovers_a_power_law_with_propagated_error():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    fit = loglog_slope(x, 3.0 / x)
    assert fit.slope == pytest.approx(-1.0) and fit.se_fit == pytest.approx(0.0, abs=1e-9)
    two = loglog_slope(x[:2], 3.0 / x[:2], np.array([0.1, 0.1]))
    assert two.slope == pytest.approx(-1.0) and two.se == pytest.approx(math.sqrt(0.02) / math.log(2))
    assert math.isnan(loglog_slope(x[:1], x[:1]).slope)


def test_replicate_means_take_the_seeds_mean_curve_as_the_drift():
    """A transient (e^{−t} decay, shared by the seeds) plus AR(1) noise: with the seeds' mean curve as the drift the
    combined 90% intervals cover ≈ 90%, where a straight line leaves the curvature in the residuals (intervals
    several times too wide)."""
    rng = np.random.default_rng(4)
    m, n, rho = 40, 2, 0.5
    drift = 0.5 + 2.0 * np.exp(-np.linspace(0, 4, m))
    hits, width_ratio = [], []
    for _ in range(1500):
        y = drift + 0.05 * ar1(rho, m, rng, n)
        est = combine(Replicates.of(replicate_means(y)))
        hits.append(abs(est.value - drift.mean()) <= est.quantile(0.95) * est.se)
        line = combine(Replicates.of([series_mean(row) for row in y]))
        width_ratio.append(line.se / est.se)
    assert 0.85 <= np.mean(hits) <= 0.96
    assert np.median(width_ratio) > 2.0
    assert replicate_means(drift[None, :] + 0.01 * ar1(rho, m, rng, 1))[0].df > 0  # one seed: the line
