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


def final_value(points: pd.DataFrame, run_id: int, metric: str) -> float:
    """The metric at the run's last step where it is finite (NaN if none)."""
    run = points[(points.run_id == run_id) & np.isfinite(points[metric].astype(float))]
    return float(run.sort_values("step")[metric].iloc[-1]) if len(run) else math.nan


@dataclass
class Comparison:
    """Mean difference b − a between two groups of seed replicates, its standard error and the pooled seed SD."""

    diff: float
    se: float
    seed_sd: float
    n_a: int
    n_b: int

    def within(self, tolerance: float, z: float = 2.0) -> bool:
        """Is |diff| explainable by the tolerance plus z standard errors of seed noise?"""
        return abs(self.diff) <= tolerance + z * self.se


def compare(a: np.ndarray, b: np.ndarray) -> Comparison:
    """Welch-style comparison of two replicate samples (NaNs dropped); se is NaN with fewer than 2 per group."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return Comparison(float(np.mean(b) - np.mean(a)) if len(a) and len(b) else math.nan, math.nan, math.nan,
                          len(a), len(b))
    var_a, var_b = a.var(ddof=1), b.var(ddof=1)
    pooled = math.sqrt(((len(a) - 1) * var_a + (len(b) - 1) * var_b) / (len(a) + len(b) - 2))
    return Comparison(float(b.mean() - a.mean()), math.sqrt(var_a / len(a) + var_b / len(b)), pooled, len(a), len(b))


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
