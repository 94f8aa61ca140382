"""Statistics the checks share: a run's time average with an autocorrelation-aware error, replicates combined
across seeds with their between-seed spread, equivalence and difference decisions, Holm, and log–log fits.

The model (docs/theory.md §10). A run's metric over a window of time is a noisy curve; its time average m has a
*within-run* variance v estimated from the curve itself: residuals from a straight line through the window (the
deterministic drift is not noise) — the seeds' mean curve when there are several seeds, so that a transient's curvature
is not taken for noise — with their integrated autocorrelation time τ (an AR(1) spectral estimate at frequency zero), so
v = σ²·τ/n and the information is that of n/τ independent points. Seeds add a *between-seed* component that the
within-run estimate cannot see (initialisation, slow modes). It is measured as an overdispersion factor φ = Q/df,
Cochran's Q = Σ (m_s − m̄)²/v_s pooled over every window and comparison of a family, and applied as φ̂ = max(1, φ) to
every within-run variance (the multiplicative random-effects model of meta-analysis). With two seeds, five windows and
three κ that is 15 degrees of freedom for φ, where seed replicates alone give one per window; more seeds still help (φ's
df and 1/n); a single seed is judged on its within-run variance alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

MAX_RHO = 0.99  # lag-1 autocorrelation cap (τ ≤ 199 samples)


@dataclass(frozen=True)
class SeriesMean:
    """Mean of one evenly sampled series, its variance and degrees of freedom (``tau``: integrated
    autocorrelation time in samples; ``n``: samples)."""

    mean: float
    var: float
    df: float
    n: int
    tau: float


def ar1_time(r: np.ndarray) -> float:
    """Integrated autocorrelation time τ = (1 + ρ)/(1 − ρ) of an AR(1) fitted to ``r`` (shape (n,), mean and
    slope already removed), ρ its lag-1 autocorrelation corrected for the small-sample bias of a fitted mean and
    slope (+ (1 + 4ρ)/n), in [0, 0.99]; in samples, at most n/4 (a window that looks more correlated than that
    is one slow excursion: it counts as four independent samples, never fewer)."""
    n = len(r)
    c0 = float(r @ r)
    if n < 4 or c0 <= 0.0:
        return 1.0
    rho = float(r[:-1] @ r[1:]) / c0
    rho = min(max(rho + (1.0 + 4.0 * max(rho, 0.0)) / n, 0.0), MAX_RHO)
    return float(min((1.0 + rho) / (1.0 - rho), n / 4.0))


def series_mean(y: np.ndarray) -> SeriesMean:
    """Mean of ``y`` (evenly spaced samples of a curve over one window) with an autocorrelation-aware variance.

    Residuals r from the least-squares line through the samples carry the noise (the line is the curve's drift).
    The variance of the mean is the spectral density at frequency zero over n, from an AR(1) fit: var = σ̂²·τ/n
    with τ = ``ar1_time(r)`` and σ̂² = Σr²/(n − 2τ) (a fitted mean and slope each absorb about τ samples' worth
    of variance); df = n/τ − 2 (at least 1). Measured coverage of the t interval (tests/checks/test_stats.py):
    nominal for AR(1) noise with n/τ ≥ 3; for noise with slow components the window alone underestimates the
    error — across seeds the overdispersion φ corrects that. Fewer than 3 finite samples: NaN variance.
    """
    y = np.asarray(y, float)
    n = len(y)
    if n < 3 or not np.all(np.isfinite(y)):
        return SeriesMean(float(np.mean(y)) if n else math.nan, math.nan, math.nan, n, math.nan)
    t = np.arange(n, dtype=float)
    fit = sps.linregress(t, y) if np.ptp(y) > 0 else None
    resid = y - (fit.intercept + fit.slope * t) if fit is not None else np.zeros(n)
    tau = ar1_time(resid)
    s2 = float(resid @ resid) / (n - 2.0 * tau)
    return SeriesMean(float(np.mean(y)), s2 * tau / n, max(n / tau - 2.0, 1.0), n, tau)


def replicate_means(y: np.ndarray) -> list[SeriesMean]:
    """Each seed's window mean with its within-run variance, from the seeds' curves on one grid (shape (n, m)).

    With several seeds the curve's drift is their mean curve ȳ(t), whatever its shape: the residuals
    r_s(t) = (y_s(t) − ȳ(t))·√(n/(n − 1)) carry each seed's noise (variance σ² for exchangeable seeds) without the
    curvature a straight line leaves in a transient. Their AR(1) time τ_s gives var_s = σ̂_s²·τ_s/m with
    σ̂_s² = Σr²/(m − τ_s), df = m/τ_s − 1. One seed: ``series_mean`` (a straight line as the drift).
    """
    y = np.asarray(y, float)
    n, m = y.shape
    if n == 1 or m < 3 or not np.all(np.isfinite(y)):
        return [series_mean(row) for row in y]
    resid = (y - y.mean(axis=0)) * math.sqrt(n / (n - 1))
    out = []
    for row, res in zip(y, resid, strict=True):
        r = res - res.mean()
        tau = ar1_time(r)
        s2 = float(r @ r) / (m - tau)
        out.append(SeriesMean(float(row.mean()), s2 * tau / m, max(m / tau - 1.0, 1.0), m, tau))
    return out


@dataclass(frozen=True)
class Replicates:
    """One quantity measured once per seed: per-seed means, within-run variances and their dof (shape (n,))."""

    means: np.ndarray
    vars: np.ndarray
    dfs: np.ndarray

    @classmethod
    def of(cls, items: Sequence[SeriesMean]) -> Replicates:
        ok = [s for s in items if math.isfinite(s.mean) and math.isfinite(s.var)]
        return cls(np.array([s.mean for s in ok]), np.array([max(s.var, 0.0) for s in ok]),
                   np.array([s.df for s in ok]))

    @property
    def n(self) -> int:
        return len(self.means)

    def cochran_q(self) -> tuple[float, int]:
        """Cochran's Q = Σ (m_s − m̄_w)²/v_s (inverse-variance weighted mean m̄_w) and its df n − 1 (0, 0 if n < 2)."""
        if self.n < 2 or np.any(self.vars <= 0):
            return 0.0, 0
        w = 1.0 / self.vars
        centre = float(w @ self.means / w.sum())
        return float(w @ (self.means - centre) ** 2), self.n - 1


@dataclass(frozen=True)
class Overdispersion:
    """φ = Q/df pooled over a family of replicate sets (how far seeds disagree beyond their within-run errors)."""

    phi: float
    df: int

    @property
    def factor(self) -> float:
        """The variance multiplier applied: max(1, φ) (never below the within-run estimate)."""
        return max(1.0, self.phi) if self.df > 0 else 1.0

    @classmethod
    def pooled(cls, sets: Iterable[Replicates]) -> Overdispersion:
        q, df = 0.0, 0
        for r in sets:
            qi, di = r.cochran_q()
            q, df = q + qi, df + di
        return cls(q / df if df else math.nan, df)


NO_OVERDISPERSION = Overdispersion(math.nan, 0)


@dataclass(frozen=True)
class Estimate:
    """A value with its standard error and (Satterthwaite) degrees of freedom."""

    value: float
    se: float
    df: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value) and math.isfinite(self.se) and self.df > 0

    def quantile(self, p: float) -> float:
        """Student-t quantile t_p(df) (normal when df is infinite); ``special.stdtrit`` is what ``stats.t.ppf``
        computes, without its argument handling (a check calls it thousands of times)."""
        return float(special.stdtrit(self.df, p)) if math.isfinite(self.df) else float(sps.norm.ppf(p))

    def minus(self, other: Estimate) -> Estimate:
        """self − other for independent estimates (Welch–Satterthwaite df)."""
        va, vb = self.se**2, other.se**2
        den = (va**2 / self.df if va else 0.0) + (vb**2 / other.df if vb else 0.0)
        df = (va + vb) ** 2 / den if den > 0 else math.inf
        return Estimate(self.value - other.value, math.sqrt(va + vb), df)


def combine(rep: Replicates, od: Overdispersion = NO_OVERDISPERSION) -> Estimate:
    """Mean over seeds (equal weights: seeds are exchangeable) with its standard error, from whichever of two
    estimates carries more degrees of freedom:

    - trajectories: variance φ̂·Σv_s/n², df Satterthwaite over the within-run variances (Σv)²/Σ(v²/df), combined
      with φ's df when φ̂ > 1 (1/df = 1/df_within + 1/df_φ: the product of two independent variance estimates);
    - seed replicates: S²/n with df n − 1 (model-free; wins with many seeds, or where a window's curve is not a
      line plus noise — a transient bump inflates the residuals, not the spread of the seeds' means).
    """
    if rep.n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    mean = float(rep.means.mean())
    total = float(rep.vars.sum())
    den = float(np.sum(rep.vars**2 / rep.dfs))
    df = total**2 / den if den > 0 else math.inf
    if od.factor > 1.0:
        df = 1.0 / (1.0 / df + 1.0 / od.df)
    if rep.n - 1 > df:
        return Estimate(mean, float(rep.means.std(ddof=1)) / math.sqrt(rep.n), rep.n - 1.0)
    return Estimate(mean, math.sqrt(od.factor * total) / rep.n, df)


@dataclass(frozen=True)
class Decision:
    """An estimate judged against a tolerance ±tol: ``holds`` (equivalence shown at level α: the one-sided
    (1 − α) bounds lie inside ±tol), ``p_fail`` (p-value of H0 |Δ| ≤ tol, to be Holm-adjusted in its family)."""

    holds: bool
    p_fail: float
    halfwidth: float


def judge(est: Estimate, tol: float, alpha: float) -> Decision:
    """Two one-sided tests for equivalence (level α, no multiplicity needed for an all-windows claim: an
    intersection–union test) and a one-sided p-value for |Δ| > tol."""
    if not est.finite or not math.isfinite(tol):
        return Decision(False, math.nan, math.nan)
    h = est.quantile(1.0 - alpha) * est.se
    z = (abs(est.value) - tol) / est.se if est.se > 0 else (math.inf if abs(est.value) > tol else -math.inf)
    p = float(special.stdtr(est.df, -z)) if math.isfinite(est.df) else float(sps.norm.sf(z))
    return Decision(abs(est.value) + h <= tol, p, h)


def holm(pvalues: Sequence[float], alpha: float) -> np.ndarray:
    """Holm's step-down rejections at family-wise level α (NaN p-values never reject); bool array."""
    p = np.asarray(pvalues, float)
    reject = np.zeros(len(p), bool)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        if p[i] > alpha / (m - rank):
            break
        reject[i] = True
    return reject


def seeds_to_decide(est: Estimate, tol: float, n: int, alpha: float) -> float:
    """Seeds a power analysis asks for, so that this estimate's interval clears ±tol (SE ∝ 1/√n): toward
    *holds* when |Δ| < tol, toward *fails* otherwise. inf when |Δ| is at the tolerance."""
    gap = abs(tol - abs(est.value))
    if not est.finite or gap == 0 or n < 1:
        return math.inf
    z = float(sps.norm.ppf(1.0 - alpha)) + float(sps.norm.ppf(0.8))  # level α with 80% power
    return float(math.ceil(n * (z * est.se / gap) ** 2))


@dataclass(frozen=True)
class Slope:
    """Least-squares slope of log y on log x: ``se`` combines the fit's residual SE (≥ 3 points) and the
    propagated measurement error of log y (when given) in quadrature."""

    slope: float
    se: float
    se_fit: float
    se_measured: float
    points: int


def loglog_slope(x: np.ndarray, y: np.ndarray, se_log_y: np.ndarray | None = None) -> Slope:
    """Slope of log y on log x (points with x, y > 0 and finite); NaN with fewer than 2 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    if len(lx) < 2 or np.ptp(lx) == 0:
        return Slope(math.nan, math.nan, math.nan, math.nan, len(lx))
    fit = sps.linregress(lx, ly)
    se_fit = float(fit.stderr) if len(lx) >= 3 else math.nan
    se_meas = math.nan
    if se_log_y is not None:
        c = (lx - lx.mean()) / float((lx - lx.mean()) @ (lx - lx.mean()))
        se_meas = float(math.sqrt(np.sum(c**2 * np.asarray(se_log_y, float)[ok] ** 2)))
    parts = [s for s in (se_fit, se_meas) if math.isfinite(s)]
    se = math.sqrt(sum(s * s for s in parts)) if parts else math.nan
    return Slope(float(fit.slope), se, se_fit, se_meas, len(lx))
