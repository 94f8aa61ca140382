"""Comparing groups of runs at equal time, window by window, with every logged point counted.

Used by ``lsr``, ``sqrt-rule`` (a scaling path: each κ against κ = 1) and ``svag`` (each l against another).
The common time range [0, T] is cut into K equal windows. In each window the runs' metric is read on an even grid
(as many samples as the sparsest run logged there, from their piecewise-linear curves) and averaged
(``stats.replicate_means``: time averages with autocorrelation-aware within-run variances, the seeds' mean curve
taken as the drift). Two groups holding the same seeds are
compared seed by seed — the difference curve of each seed's pair of runs, which shares the seed's initialisation
and, with sampling with replacement, much of its batch noise (common random numbers) — else group means are
compared (Welch). Seeds are combined with the family's overdispersion φ (``stats.combine``), decisions are
``stats.judge`` (equivalence at level α per window) and Holm over the family's failure p-values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sweeper.checks.stats import (
    Decision,
    Estimate,
    Overdispersion,
    Replicates,
    SeriesMean,
    combine,
    holm,
    judge,
    replicate_means,
    seeds_to_decide,
)


class Curves:
    """Each run's (time, metric) curve for one metric on one time axis, finite points only, sorted by time.

    Built in O(rows) array operations; a run's curve is cut out of the columns when first asked for, so one
    ``Curves`` over a whole study serves each of its comparisons."""

    def __init__(self, points: pd.DataFrame, metric: str, axis: str = "sde_time"):
        self.metric, self.axis = metric, axis
        ids = points["run_id"].to_numpy()
        x, y = points[axis].to_numpy(float), points[metric].to_numpy(float)
        if np.any(ids[1:] < ids[:-1]):  # db.queries reads points sorted by run
            order = np.argsort(ids, kind="stable")
            ids, x, y = ids[order], x[order], y[order]
        self._ids, self._x, self._y = ids, x, y
        self._xy: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _curve(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        run_id = int(run_id)
        if run_id not in self._xy:
            lo, hi = np.searchsorted(self._ids, run_id, "left"), np.searchsorted(self._ids, run_id, "right")
            x, y = self._x[lo:hi], self._y[lo:hi]
            ok = np.isfinite(x) & np.isfinite(y)
            order = np.argsort(x[ok], kind="stable")
            self._xy[run_id] = (x[ok][order], y[ok][order])
        return self._xy[run_id]

    def end(self, run_id: int) -> float:
        x = self._curve(run_id)[0]
        return float(x[-1]) if len(x) else math.nan

    def at(self, run_id: int, times: np.ndarray) -> np.ndarray:
        """The metric interpolated at ``times`` (NaN outside the run's range)."""
        x, y = self._curve(run_id)
        if len(x) < 2:
            return np.full(len(times), np.nan)
        return np.interp(times, x, y, left=np.nan, right=np.nan)

    def seed_mean(self, run_ids: Sequence[int], samples: int = 200) -> tuple[np.ndarray, np.ndarray] | None:
        """The runs' mean curve on an even grid from 0 to the longest run's end (for figures); None if no run has
        points."""
        ends = [self.end(r) for r in run_ids]
        if not np.isfinite(ends).any():
            return None
        grid = np.linspace(0.0, float(np.nanmax(ends)), samples)
        rows = np.array([self.at(r, grid) for r in run_ids])
        with np.errstate(all="ignore"):
            return grid, np.nanmean(rows, axis=0) if np.isfinite(rows).any() else grid * np.nan

    def grid(self, run_ids: Sequence[int], a: float, b: float) -> np.ndarray:
        """An even grid over [a, b] (cell midpoints) with as many samples as the sparsest of ``run_ids`` logged
        inside (at least 3), or an empty grid if one of them does not cover the window."""
        slack = 1e-9 * max(1.0, abs(b))
        counts = []
        for r in run_ids:
            x = self._curve(r)[0]
            if len(x) < 2 or x[0] > a + slack or x[-1] < b - slack:
                return np.empty(0)
            counts.append(int(np.searchsorted(x, b, "right") - np.searchsorted(x, a, "left")))  # x is sorted
        n = max(min(counts), 3)
        return a + (np.arange(n) + 0.5) * (b - a) / n

    def window_mean(self, run_id: int, a: float, b: float) -> float:
        """The run's time average over [a, b] on its own grid (NaN when it does not cover the window)."""
        y = self.at(run_id, self.grid([run_id], a, b))
        return float(np.mean(y)) if len(y) else math.nan

    def group_window(self, run_ids: Sequence[int], a: float, b: float) -> list[SeriesMean]:
        """Each run's time average over [a, b] on the group's shared grid (``stats.replicate_means``)."""
        g = self.grid(run_ids, a, b)
        if not len(g):
            return []
        return replicate_means(np.array([self.at(r, g) for r in run_ids]))

    def paired_window(self, pairs: Sequence[tuple[int, int]], a: float, b: float) -> list[SeriesMean]:
        """Time average of other − base over [a, b] for each (base, other) pair, on one shared grid."""
        g = self.grid([r for pair in pairs for r in pair], a, b)
        if not len(g):
            return []
        return replicate_means(np.array([self.at(o, g) - self.at(b_, g) for b_, o in pairs]))


@dataclass(frozen=True)
class Group:
    """Runs of one setting: their ids and seeds (shape (n,))."""

    run_ids: tuple[int, ...]
    seeds: tuple[int, ...]

    @classmethod
    def of(cls, runs: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Group:
        """The runs' ids and seeds, in order (rows of ``runs``: a frame, or its rows as dicts)."""
        rows = runs[["run_id", "seed"]].to_dict("records") if isinstance(runs, pd.DataFrame) else runs
        return cls(tuple(int(r["run_id"]) for r in rows), tuple(int(r["seed"]) for r in rows))

    def paired_with(self, other: Group) -> bool:
        """Same distinct seeds on both sides: compare seed by seed."""
        return (len(set(self.seeds)) == len(self.seeds) and len(set(other.seeds)) == len(other.seeds)
                and set(self.seeds) == set(other.seeds) and len(self.seeds) >= 1)


@dataclass
class WindowStat:
    """One window of one comparison: the difference other − base, the tolerance and the calls."""

    window: int
    t_from: float
    t_to: float
    base_level: float
    diff: Estimate
    tolerance: float
    decision: Decision = field(default_factory=lambda: Decision(False, math.nan, math.nan))
    fails: bool = False

    @property
    def call(self) -> str:
        return "fails" if self.fails else "holds" if self.decision.holds else "unresolved"

    def row(self) -> dict[str, float | int | str | bool]:
        return {"window": self.window, "t_from": self.t_from, "t_to": self.t_to, "base": self.base_level,
                "diff": self.diff.value, "se": self.diff.se, "df": self.diff.df,
                "halfwidth": self.decision.halfwidth, "tolerance": self.tolerance, "p_fail": self.decision.p_fail,
                "call": self.call}


@dataclass
class Comparison:
    """``other`` against ``base`` over the windows; ``paired`` when seed by seed."""

    base: Group
    other: Group
    paired: bool
    replicates: list[tuple[Replicates, ...]]  # per window: (differences,) or (base, other)
    base_levels: np.ndarray
    windows: list[WindowStat] = field(default_factory=list)
    joint: Estimate | None = None  # mean over windows of Δ_k/τ_k
    joint_p: float = math.nan  # p-value of |mean Δ_k/τ_k| ≤ 1
    joint_fails: bool = False

    @property
    def status(self) -> str:
        """``fails`` if a window or the joint statistic fails (after Holm), ``holds`` if every window holds, else
        ``unresolved``."""
        if self.joint_fails or any(w.fails for w in self.windows):
            return "fails"
        return "holds" if self.windows and all(w.decision.holds for w in self.windows) else "unresolved"

    def worst(self) -> WindowStat:
        """The window furthest from holding: largest (|Δ| + h)/τ."""
        def excess(w: WindowStat) -> float:
            h = w.decision.halfwidth
            return (abs(w.diff.value) + h) / w.tolerance if w.tolerance > 0 and math.isfinite(h) else math.inf
        return max(self.windows, key=excess)

    def seeds_needed(self, alpha: float) -> float:
        """Seeds per setting that a power analysis asks for to decide every undecided window (inf if one sits
        at its tolerance)."""
        n = len(self.base.seeds)
        need = [seeds_to_decide(w.diff, w.tolerance, n, alpha) for w in self.windows if w.call == "unresolved"]
        return max(need) if need else float(n)


def compare(curves: Curves, base: Group, other: Group, edges: np.ndarray) -> Comparison:
    """Replicate window averages of ``other`` against ``base`` (decide later, with the family's φ)."""
    paired = base.paired_with(other)
    reps: list[tuple[Replicates, ...]] = []
    levels = []
    by_seed = dict(zip(other.seeds, other.run_ids, strict=True))
    for a, b in itertools.pairwise(edges):
        base_means = curves.group_window(base.run_ids, a, b)
        levels.append(float(np.mean([s.mean for s in base_means])) if base_means else math.nan)
        if paired:
            pairs = [(r, by_seed[s]) for r, s in zip(base.run_ids, base.seeds, strict=True)]
            reps.append((Replicates.of(curves.paired_window(pairs, a, b)),))
        else:
            reps.append((Replicates.of(base_means), Replicates.of(curves.group_window(other.run_ids, a, b))))
    return Comparison(base, other, paired, reps, np.array(levels))


def estimates(c: Comparison, od: Overdispersion) -> list[Estimate]:
    """Per window: the difference other − base with seeds combined under overdispersion ``od``."""
    return [combine(rep[0], od) if c.paired else combine(rep[1], od).minus(combine(rep[0], od))
            for rep in c.replicates]


def overdispersion(comparisons: Sequence[Comparison]) -> Overdispersion:
    """φ pooled over every window of every comparison of a family."""
    return Overdispersion.pooled(r for c in comparisons for w in c.replicates for r in w)


def decide(comparisons: Sequence[Comparison], edges: np.ndarray, relative: float, alpha: float,
           od: Overdispersion | None = None) -> Overdispersion:
    """Estimate, judge and Holm-adjust a family of comparisons in place; returns the φ used (pooled over the
    family unless ``od`` is given).

    Tolerance per window: τ_k = relative·|base level_k|. A comparison *holds* if every window's equivalence test
    passes at level α (intersection–union: no correction). It *fails* if Holm over the family rejects one of its
    windows' p-values for |Δ_k| > τ_k, or its joint p-value for |mean_k Δ_k/τ_k| > 1 (a difference beyond the
    tolerance on average is beyond it somewhere; the average sees an effect spread over every window that no single
    window resolves; windows taken as independent — each is long against the noise's correlation time).
    """
    od = od if od is not None else overdispersion(comparisons)
    for c in comparisons:
        tol = relative * np.abs(c.base_levels)
        c.windows = [WindowStat(k + 1, float(edges[k]), float(edges[k + 1]), float(c.base_levels[k]), est,
                                float(tol[k]), judge(est, float(tol[k]), alpha))
                     for k, est in enumerate(estimates(c, od))]
        c.joint = _joint([w.diff for w in c.windows], tol)
        c.joint_p = judge(c.joint, 1.0, alpha).p_fail if c.joint.finite else math.nan
    flat = [w for c in comparisons for w in c.windows]
    rejected = holm([w.decision.p_fail for w in flat] + [c.joint_p for c in comparisons], alpha)
    for w, r in zip(flat, rejected[:len(flat)], strict=True):
        w.fails = bool(r)
    for c, r in zip(comparisons, rejected[len(flat):], strict=True):
        c.joint_fails = bool(r)
    return od


def _joint(diffs: Sequence[Estimate], tol: np.ndarray) -> Estimate:
    """mean_k Δ_k/τ_k with its SE (independent windows) and Satterthwaite df."""
    ok = [(d, t) for d, t in zip(diffs, tol, strict=True) if d.finite and t > 0]
    if not ok:
        return Estimate(math.nan, math.nan, math.nan)
    v = np.array([(d.se / t) ** 2 for d, t in ok])
    dfs = np.array([d.df for d, _ in ok])
    den = float(np.sum(v**2 / dfs))
    return Estimate(float(np.mean([d.value / t for d, t in ok])), math.sqrt(v.sum()) / len(ok),
                    float(v.sum() ** 2 / den) if den > 0 else math.inf)
