"""Statistics of a weight trajectory seen through K fixed random projections (docs/theory.md §5, §9).

A trajectory is an array (T, K): T samples in time (e.g. one per epoch after burn-in), K projections
p_k(t) = u_kᵀ w(t) on fixed random unit directions u_k (``random_directions`` + ``project``). Units: the
weights' units for positions, samples (not epochs or SDE time) for lags and frequencies (cycles per sample).
All functions are pure numpy (float64); surrogate-based p-values use ``numpy.random.default_rng(seed)`` and are
(1 + #{surrogate ≥ observed})/(1 + n_surrogates), so the smallest attainable p is 1/(1 + n_surrogates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "random_directions",
    "project",
    "IncrementSpectrum",
    "increment_spectrum",
    "LongLagAutocorrelation",
    "long_lag_autocorrelation",
    "MSDExponent",
    "msd_exponent",
    "LevyArea",
    "levy_area_test",
]


def random_directions(d: int, k: int, seed: int = 0, device: torch.device | str = "cpu") -> Tensor:
    """K fixed random unit directions in R^d, shape (k, d), float32: rows N(0, I) from a CPU generator seeded
    with ``seed``, normalised to unit length (so nearly orthogonal for d ≫ k). Memory 4·k·d bytes."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(k, d, generator=gen, dtype=torch.float32)
    u /= u.norm(dim=1, keepdim=True)
    return u.to(device)


def project(directions: Tensor, w: Tensor) -> Tensor:
    """Projections u_kᵀw of a flat weight vector w (d,) on ``directions`` (k, d): shape (k,), float32, on the
    directions' device. Cost O(k·d)."""
    return directions @ w.detach().reshape(-1).to(device=directions.device, dtype=directions.dtype)


def _as_traj(traj: np.ndarray | Tensor, min_len: int) -> np.ndarray:
    x = traj.detach().cpu().numpy() if isinstance(traj, Tensor) else np.asarray(traj)
    x = x.astype(np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"trajectory must be (T, K), got shape {x.shape}")
    if x.shape[0] < min_len:
        raise ValueError(f"trajectory too short: T={x.shape[0]} < {min_len}")
    return x


def _p_value(null: np.ndarray, observed: float) -> float:
    return float((1 + np.sum(null >= observed)) / (1 + len(null)))


# ----------------------------------------------------------------------------------------------- spectrum


@dataclass(frozen=True)
class IncrementSpectrum:
    """freqs: kept positive frequencies of the increment periodogram (cycles/sample), shape (F,).
    power: periodogram of each projection's increments normalised to mean 1 over the kept frequencies, averaged
        over projections, shape (F,) (white increments: flat ≈ 1).
    low_freq_ratio: mean power in the lowest ``low_frac`` of the kept frequencies / mean power overall (≈ 1 for
        white noise, > 1 for excess low-frequency power).
    p_value: one-sided, from shuffled-increment surrogates (null: increments exchangeable in time, i.e. white).
    n_low: frequencies in the low band.
    """

    freqs: np.ndarray
    power: np.ndarray
    low_freq_ratio: float
    p_value: float
    n_low: int
    n_surrogates: int


def _normalised_power(inc: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(..., F) mean over projections of |rfft|² normalised to mean 1; inc (..., n, K) demeaned."""
    p = np.abs(np.fft.rfft(inc, axis=-2)) ** 2
    p = p[..., 1:, :][..., keep, :]
    p = p / np.maximum(p.mean(axis=-2, keepdims=True), np.finfo(float).tiny)
    return p.mean(axis=-1)


def increment_spectrum(
    traj: np.ndarray | Tensor,
    low_frac: float = 0.1,
    n_surrogates: int = 199,
    seed: int = 0,
    epoch_period: float | None = None,
) -> IncrementSpectrum:
    """Power spectrum of the increments Δp(t) = p(t+1) − p(t) and its low-frequency excess (docs/theory.md §5).

    Periodogram of each demeaned increment series (T − 1 samples), zero frequency dropped, normalised per
    projection and averaged over the K projections. Null: shuffling the increments in time (one permutation for
    all projections) keeps their marginal and cross-sectional distribution but makes them white; phase
    randomisation would keep the spectrum itself and is therefore no null for whiteness. ``epoch_period`` (samples
    per epoch) masks that frequency and its harmonics (±1 bin), which reshuffling makes spiky (docs/theory.md §9).
    Cost O(n_surrogates·T log T·K).
    """
    x = _as_traj(traj, 16)
    inc = np.diff(x, axis=0)
    inc -= inc.mean(axis=0)
    n = inc.shape[0]
    freqs = np.fft.rfftfreq(n)[1:]
    keep = np.ones(len(freqs), dtype=bool)
    if epoch_period is not None:
        df = 1.0 / n
        for h in np.arange(1.0 / epoch_period, 0.5 + df, 1.0 / epoch_period):
            keep &= np.abs(freqs - h) > 1.5 * df
    freqs = freqs[keep]
    if len(freqs) < 2:
        raise ValueError("too few frequencies left")
    n_low = max(1, math.ceil(low_frac * len(freqs)))
    power = _normalised_power(inc, keep)
    ratio = float(power[:n_low].mean())  # the overall mean is 1 by normalisation
    rng = np.random.default_rng(seed)
    null = np.empty(n_surrogates)
    batch = max(1, 2_000_000 // inc.size)
    for start in range(0, n_surrogates, batch):
        m = min(batch, n_surrogates - start)
        perms = np.argsort(rng.random((m, n)), axis=1)
        null[start : start + m] = _normalised_power(inc[perms], keep)[:, :n_low].mean(axis=-1)
    return IncrementSpectrum(freqs, power, ratio, _p_value(null, ratio), n_low, n_surrogates)


# ------------------------------------------------------------------------------------------ autocorrelation


@dataclass(frozen=True)
class LongLagAutocorrelation:
    """lags: the long lags tested (samples), shape (L,); acf: sample autocorrelation, shape (L, K).
    band: z/√T (z = 2.576: the 99% band for white noise). fraction_outside: share of (lag, projection) cells
    with |acf| > band; fraction_outside_per_projection: shape (K,)."""

    lags: np.ndarray
    acf: np.ndarray
    band: float
    fraction_outside: float
    fraction_outside_per_projection: np.ndarray


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """Sample autocorrelation r(τ) = Σ_t (x_t − x̄)(x_{t+τ} − x̄) / Σ_t (x_t − x̄)², τ = 0…T−1, per column of
    x (T, K) (the usual biased estimator, via FFT, O(T log T·K))."""
    x = x - x.mean(axis=0)
    t = x.shape[0]
    f = np.fft.rfft(x, n=2 * t, axis=0)
    c = np.fft.irfft(np.abs(f) ** 2, n=2 * t, axis=0)[:t]
    return c / np.maximum(c[:1], np.finfo(float).tiny)


def long_lag_autocorrelation(
    traj: np.ndarray | Tensor, min_lag_frac: float = 0.1, max_lag_frac: float = 0.5, z: float = 2.576
) -> LongLagAutocorrelation:
    """Autocorrelation of each projection at long lags τ ∈ [min_lag_frac·T, max_lag_frac·T] against the white-
    noise band ±z/√T (docs/theory.md §5: limit cycles keep weights correlated beyond 10% of the trajectory; white noise
    leaves about 1% of cells outside the 99% band, fewer at lags near T/2 because the biased estimator shrinks)."""
    x = _as_traj(traj, 20)
    t = x.shape[0]
    lo, hi = max(1, math.ceil(min_lag_frac * t)), min(t - 1, math.floor(max_lag_frac * t))
    if hi < lo:
        raise ValueError("empty lag range")
    acf = autocorrelation(x)[lo : hi + 1]
    band = z / math.sqrt(t)
    outside = np.abs(acf) > band
    return LongLagAutocorrelation(np.arange(lo, hi + 1), acf, band, float(outside.mean()), outside.mean(axis=0))


# ------------------------------------------------------------------------------------------------------ MSD


@dataclass(frozen=True)
class MSDExponent:
    """exponent: least-squares slope of log MSD against log τ over ``window`` (1: diffusion, 0: confined,
    2: ballistic); intercept: of that fit (natural log); lags (L,) and msd (L,): the points fitted (MSD in
    squared weight units, averaged over time origins and projections)."""

    exponent: float
    intercept: float
    lags: np.ndarray
    msd: np.ndarray
    window: tuple[int, int]


def msd_exponent(traj: np.ndarray | Tensor, window: tuple[int, int] = (1, 64), n_lags: int = 16) -> MSDExponent:
    """Mean-squared-displacement exponent on the fixed lag window [window[0], window[1]] (samples), from
    ≈ n_lags log-spaced integer lags. Compare exponents only over the same window (docs/theory.md §9: a
    multi-timescale OU process drifts from ≈ 1 to ≈ 0 as the lag grows). Requires window[1] ≤ T/4.
    Cost O(n_lags·T·K)."""
    x = _as_traj(traj, 8)
    lo, hi = int(window[0]), int(window[1])
    if not 1 <= lo < hi:
        raise ValueError(f"need 1 <= window[0] < window[1], got {window}")
    if hi > x.shape[0] // 4:
        raise ValueError(f"window[1]={hi} exceeds T/4={x.shape[0] // 4}")
    lags = np.unique(np.round(np.geomspace(lo, hi, n_lags)).astype(int))
    msd = np.array([np.mean((x[lag:] - x[:-lag]) ** 2) for lag in lags])
    slope, intercept = np.polyfit(np.log(lags), np.log(msd), 1)
    return MSDExponent(float(slope), float(intercept), lags, msd, (lo, hi))


# -------------------------------------------------------------------------------------------------- Lévy area


@dataclass(frozen=True)
class LevyArea:
    """area: antisymmetric (K, K) matrix A_ij = C_ij(τ) − C_ji(τ), C_ij(τ) = mean_t z_i(t) z_j(t+τ) of the
    standardised projections z (so entries are in correlation units; for τ = 1 this is the Lévy-area rate).
    statistic: √(mean over pairs i<j of A_ij²). z_score: (statistic − null mean)/null sd.
    p_value: from the block sign-flip null (see ``levy_area_test``)."""

    area: np.ndarray
    statistic: float
    z_score: float
    p_value: float
    lag: int
    n_blocks: int
    block_len: int
    n_surrogates: int


def levy_area_test(
    traj: np.ndarray | Tensor, lag: int = 1, n_blocks: int = 40, n_surrogates: int = 999, seed: int = 0
) -> LevyArea:
    """Time-reversal asymmetry of a (T, K) trajectory: is the lag-τ cross-covariance antisymmetric part (a
    probability current, docs/theory.md §5/§9) larger than a reversible process would give?

    Null by block sign flips. The lag products are cut into ``n_blocks`` contiguous blocks in time and each
    block's antisymmetric contribution a_b = Σ_{t∈b} [z(t) z(t+τ)ᵀ − z(t+τ) z(t)ᵀ] is formed; A = Σ_b a_b/(T − τ).
    For a reversible stationary process a path segment and its time reversal have the same law, and reversing a
    segment negates its contribution, so each a_b is symmetric about 0; blocks much longer than the correlation
    time are nearly independent. The null distribution of ‖A‖ is therefore generated by Σ_b s_b a_b with i.i.d.
    random signs s_b = ±1 — equivalent to reversing a random subset of blocks, keeping every block's magnitude
    (so heavy tails and uneven variance over time are respected). Under a current the a_b share a sign: A grows
    ∝ T, the flipped sums only ∝ √T. Blocks must be long compared with the correlation time (else the test is
    liberal): choose n_blocks accordingly (default 40). Cost O(T·K² + n_surrogates·n_blocks·K²).
    """
    x = _as_traj(traj, 4)
    t, k = x.shape
    if k < 2:
        raise ValueError("need at least 2 projections")
    if not 1 <= lag < t:
        raise ValueError(f"lag must be in [1, T), got {lag}")
    z = x - x.mean(axis=0)
    z /= np.maximum(z.std(axis=0), np.finfo(float).tiny)
    a, b = z[:-lag], z[lag:]
    m = a.shape[0]
    if not 2 <= n_blocks <= m:
        raise ValueError(f"n_blocks must be in [2, {m}], got {n_blocks}")
    edges = np.linspace(0, m, n_blocks + 1).astype(int)
    iu = np.triu_indices(k, 1)
    contrib = np.empty((n_blocks, len(iu[0])))
    for i in range(n_blocks):
        c = a[edges[i] : edges[i + 1]].T @ b[edges[i] : edges[i + 1]]
        contrib[i] = (c - c.T)[iu] / m
    total = contrib.sum(axis=0)
    stat = float(np.sqrt(np.mean(total**2)))
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_surrogates, n_blocks))
    null = np.sqrt(np.mean((signs @ contrib) ** 2, axis=1))
    area = np.zeros((k, k))
    area[iu] = total
    area -= area.T
    sd = float(null.std())
    z_score = (stat - float(null.mean())) / sd if sd > 0 else math.nan
    return LevyArea(area, stat, z_score, _p_value(null, stat), lag, n_blocks, int(np.diff(edges).max()), n_surrogates)
