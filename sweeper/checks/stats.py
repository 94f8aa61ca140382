"""Statistics the checks share: values at equal SDE time, seed replicates, and noise-sized comparisons."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


def value_at(points: pd.DataFrame, run_id: int, metric: str, times: np.ndarray, axis: str = "sde_time") -> np.ndarray:
    """``metric`` of one run linearly interpolated at ``times`` on ``axis`` (NaN outside the run's range)."""
    run = points[points.run_id == run_id].sort_values(axis)
    x, y = run[axis].to_numpy(float), run[metric].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return np.full(len(times), np.nan)
    return np.interp(times, x[ok], y[ok], left=np.nan, right=np.nan)


def loglog_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of log y on log x and its standard error (NaN with fewer than 3 points)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    if len(lx) < 3:
        return math.nan, math.nan
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + intercept)
    se = math.sqrt(resid @ resid / (len(lx) - 2) / ((lx - lx.mean()) @ (lx - lx.mean())))
    return float(slope), se


# ------------------------------------------------------------------------------------------ equal-time windows
# Shared by lsr, sqrt-rule and svag: window means at equal SDE time, a seed-paired contrast, and a two-sided
# equivalence decision whose noise allowance is a Student-t quantile (no scipy at run time).


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with ``df`` degrees of freedom (normal for df = inf), by bisection on its CDF."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if not math.isfinite(df) or df > 1e7:
        from statistics import NormalDist

        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betai(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def _betai(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) (continued fraction, Lentz's method)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betai(b, a, 1.0 - x)
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f / a


def window_means(points: pd.DataFrame, run_id: int, metric: str, edges: np.ndarray,
                 axis: str = "sde_time") -> np.ndarray:
    """Time average of the run's metric over each window ``[edges[i], edges[i+1]]`` of ``axis``.

    The metric is taken as the piecewise-linear curve through the run's logged (finite) points, integrated exactly
    over each window, so every logged point inside the window counts (not a few interpolated samples). A window
    the run does not cover from end to end (it stopped or diverged before) is NaN. Shape ``(len(edges) − 1,)``.
    """
    run = points[points.run_id == run_id].sort_values(axis)
    x, y = run[axis].to_numpy(float), run[metric].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = np.full(len(edges) - 1, np.nan)
    if len(x) < 2:
        return out
    slack = 1e-9 * max(1.0, abs(float(edges[-1])))
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        if x[0] > a + slack or x[-1] < b - slack or b <= a:
            continue
        inside = x[(x > a) & (x < b)]
        xs = np.concatenate([[a], inside, [b]])
        ys = np.interp(xs, x, y)
        out[i] = float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0 / (b - a))
    return out


@dataclass
class Contrast:
    """Mean difference b − a of a metric between two seed groups, its SE and degrees of freedom.

    ``paired``: both groups hold the same seeds (same initialisation), so the SE comes from per-seed differences
    (df = n − 1); otherwise Welch (unequal variances, Welch–Satterthwaite df).
    """

    diff: float
    se: float
    df: float
    n_a: int
    n_b: int
    paired: bool

    def halfwidth(self, alpha: float = 0.05, m: int = 1) -> float:
        """Two-sided (1 − α) interval half-width, Bonferroni over ``m`` comparisons: t_{1−α/(2m), df}·SE."""
        if not math.isfinite(self.se) or not self.df > 0:
            return math.nan
        return t_quantile(1.0 - alpha / (2 * m), self.df) * self.se

    def decide(self, tolerance: float, alpha: float = 0.05, m: int = 1) -> str:
        """``holds`` if the whole interval lies within ±tolerance, ``fails`` if it lies wholly outside,
        else ``unresolved`` (an equivalence test and a difference test with one interval)."""
        h = self.halfwidth(alpha, m)
        if not math.isfinite(h) or not math.isfinite(self.diff):
            return "unresolved"
        if abs(self.diff) - h > tolerance:
            return "fails"
        return "holds" if abs(self.diff) + h <= tolerance else "unresolved"


def contrast(a: np.ndarray, b: np.ndarray, seeds_a: np.ndarray | None = None,
             seeds_b: np.ndarray | None = None) -> Contrast:
    """b − a, paired by seed when both groups have the same (distinct) seeds, else Welch; NaN entries dropped."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if seeds_a is not None and seeds_b is not None:
        sa, sb = np.asarray(seeds_a), np.asarray(seeds_b)
        ok_a, ok_b = np.isfinite(a), np.isfinite(b)
        common = sorted(set(sa[ok_a].tolist()) & set(sb[ok_b].tolist()))
        same = (set(sa[ok_a].tolist()) == set(sb[ok_b].tolist()) and len(set(sa.tolist())) == len(sa)
                and len(set(sb.tolist())) == len(sb))
        if same and len(common) >= 2:
            ia = {s: v for s, v in zip(sa.tolist(), a)}
            ib = {s: v for s, v in zip(sb.tolist(), b)}
            d = np.array([ib[s] - ia[s] for s in common])
            return Contrast(float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), len(d) - 1.0,
                            len(d), len(d), True)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    diff = float(b.mean() - a.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return Contrast(diff, math.nan, math.nan, len(a), len(b), False)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if va + vb > 0 else len(a) + len(b) - 2.0
    return Contrast(diff, se, float(df), len(a), len(b), False)
