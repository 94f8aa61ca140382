"""Trajectory statistics against processes with a known answer (docs/theory.md §5, §8, §9): a rotational linear SDE
has a probability current, a symmetric one does not; white vs red increments; Brownian MSD; long-lag ACF."""

import numpy as np
import pytest
import torch

from sweeper.diagnostics import (
    increment_spectrum,
    levy_area_test,
    long_lag_autocorrelation,
    msd_exponent,
    project,
    random_directions,
)

DT = 0.01
OMEGA = 1.5
ROTATION = [[1.0, -OMEGA], [OMEGA, 1.0]]  # A = I + ω J: stationary covariance I/2, nonzero current
SYMMETRIC = [[1.5, 0.5], [0.5, 1.0]]  # reversible: no current


def linear_sde(a, n_paths: int, steps: int, seed: int) -> np.ndarray:
    """Euler–Maruyama paths of dx = −A x dt + dW in 2-D, started near stationarity: shape (n_paths, steps, 2)."""
    rng = np.random.default_rng(seed)
    m = np.eye(2) - DT * np.asarray(a)
    x = rng.normal(size=(n_paths, 2)) * np.sqrt(0.5)
    out = np.empty((steps, n_paths, 2))
    noise = rng.normal(size=(steps, n_paths, 2)) * np.sqrt(DT)
    for t in range(steps):
        x = x @ m.T + noise[t]
        out[t] = x
    return out.transpose(1, 0, 2)


def ar1(phi: float, shape: tuple[int, int], seed: int) -> np.ndarray:
    """AR(1) series x_t = φ x_{t−1} + ε_t along axis 0, stationary start, shape (T, K)."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(size=shape)
    x = np.empty(shape)
    x[0] = eps[0] / np.sqrt(1 - phi**2)
    for t in range(1, shape[0]):
        x[t] = phi * x[t - 1] + eps[t]
    return x


def test_random_directions_and_projection():
    u = random_directions(1000, 8, seed=4)
    assert u.shape == (8, 1000) and u.dtype == torch.float32
    torch.testing.assert_close(u.norm(dim=1), torch.ones(8))
    assert torch.equal(u, random_directions(1000, 8, seed=4))
    w = torch.randn(1000, dtype=torch.float64)
    torch.testing.assert_close(project(u, w), u @ w.float())


def test_rotational_sde_is_flagged_symmetric_is_not():
    rot = linear_sde(ROTATION, 5, 10000, seed=1)
    for path in rot:
        res = levy_area_test(path, seed=0)
        assert res.p_value < 0.01
        # lag-1 correlation matrix e^{−Aᵀdt} ≈ I − Aᵀdt: antisymmetric part −2ω·dt
        assert res.area[0, 1] == pytest.approx(-2 * OMEGA * DT, rel=0.2)
        assert res.area[1, 0] == -res.area[0, 1]
        reversed_res = levy_area_test(path[::-1], seed=0)  # time reversal flips the current
        assert reversed_res.area[0, 1] == pytest.approx(-res.area[0, 1], rel=1e-9)
    sym = linear_sde(SYMMETRIC, 1, 10000, seed=2)[0]
    assert levy_area_test(sym, seed=0).p_value > 0.05


def test_levy_area_false_positive_rate():
    paths = linear_sde(SYMMETRIC, 400, 10000, seed=4)
    p = np.array([levy_area_test(path, seed=i).p_value for i, path in enumerate(paths)])
    rate = float(np.mean(p < 0.05))
    assert 0.01 <= rate <= 0.12, rate


def test_low_frequency_excess():
    rng = np.random.default_rng(5)
    walk = np.cumsum(rng.normal(size=(4000, 6)), axis=0)  # white increments
    white = increment_spectrum(walk, seed=0)
    assert white.low_freq_ratio == pytest.approx(1.0, abs=0.15) and white.p_value > 0.05
    assert white.power.mean() == pytest.approx(1.0)
    red = increment_spectrum(np.cumsum(ar1(0.9, (4000, 6), seed=6), axis=0), seed=0)  # red increments
    assert red.low_freq_ratio > 3 and red.p_value < 0.01
    assert red.p_value == pytest.approx(1 / (1 + red.n_surrogates))


def test_low_frequency_test_calibrated_on_white_increments():
    rng = np.random.default_rng(8)
    p = np.array(
        [increment_spectrum(np.cumsum(rng.normal(size=(500, 4)), 0), n_surrogates=99, seed=i).p_value
         for i in range(100)]
    )
    assert 0.0 <= np.mean(p < 0.05) <= 0.12


def test_epoch_harmonics_masked():
    rng = np.random.default_rng(9)
    t = np.arange(4000)
    inc = rng.normal(size=(4000, 3)) + 3.0 * np.cos(2 * np.pi * t / 40)[:, None]  # an "epoch" line at 1/40
    res = increment_spectrum(np.cumsum(inc, 0), epoch_period=40, n_surrogates=19)
    assert not np.any(np.isclose(res.freqs, 1 / 40, atol=1.5 / 3999))
    assert res.power.max() < 10  # the line is gone; without masking it dominates
    assert increment_spectrum(np.cumsum(inc, 0), n_surrogates=19).power.max() > 100


def test_msd_exponent():
    rng = np.random.default_rng(10)
    walk = np.cumsum(rng.normal(size=(20000, 8)), axis=0)
    res = msd_exponent(walk, window=(1, 64))
    assert res.exponent == pytest.approx(1.0, abs=0.1) and res.window == (1, 64)
    confined = ar1(0.95, (20000, 8), seed=11)  # OU: MSD saturates beyond the 20-sample correlation time
    assert msd_exponent(confined, window=(64, 1024)).exponent < 0.2
    with pytest.raises(ValueError, match="exceeds T/4"):
        msd_exponent(walk[:100], window=(1, 64))


def test_long_lag_autocorrelation_band():
    rng = np.random.default_rng(12)
    white = long_lag_autocorrelation(rng.normal(size=(5000, 8)))
    assert white.band == pytest.approx(2.576 / np.sqrt(5000))
    assert white.lags[0] == 500 and white.fraction_outside < 0.02
    slow = long_lag_autocorrelation(ar1(0.999, (5000, 8), seed=13))  # correlation time 1000 = T/5
    assert slow.fraction_outside > 0.3
