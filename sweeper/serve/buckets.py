"""Downsampling: each run's (x, metric) points reduced to min/max per x bucket, so a plot of W pixels draws at most
a few values per pixel and run, never the raw trajectory.

:func:`read` fetches the points' x and metric columns column-wise through ``db.queries.point_columns`` (which
reads a run's columnar blocks and only its rows after them), as a :class:`Series`; :func:`reduce` buckets them in numpy.
The x range [x0, x1] of the chosen runs' points with a finite x is cut into ``n`` equal buckets (equal in ln x for
a log axis, where x ≤ 0 is left out); per run and bucket it keeps the point count, the x range, and min, max and
mean of the metric over the finite values (NaN, ±inf and NULL are not drawn). :func:`envelope` turns a run's
buckets into the drawn series: one point for a bucket of one point, else its min and max (in the order the series
runs), so every bucket's extremes — hence the series' global min and max — are kept, and the series has at most
2·n points.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from db.queries import RENAMED_POINT_COLUMNS, point_columns
from db.rows import Bind, StudyRef

EDGE = 1 - 1e-9
"""Bucket k holds ``k ≤ (x − x0)·n/(x1 − x0)·EDGE < k + 1``: the factor puts x = x1 in the last bucket."""


@dataclass(frozen=True)
class Series:
    """Points of some runs, sorted by run then step (so each run's points are one slice). Arrays of shape
    (points,): ``run_id`` (int64), ``x`` and ``y`` (float64; NULL and NaN both NaN)."""

    run_id: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def of(self, run_ids: Sequence[int]) -> Series:
        """The points of ``run_ids`` only."""
        ids = np.unique(np.asarray(run_ids, dtype=np.int64))
        keep = np.zeros(len(self.run_id), dtype=bool)
        for start, end in zip(np.searchsorted(self.run_id, ids, "left"), np.searchsorted(self.run_id, ids, "right"),
                              strict=True):
            keep[start:end] = True
        return Series(self.run_id[keep], self.x[keep], self.y[keep])

    def merge(self, other: Series) -> Series:
        """This series and ``other`` (points of other runs) as one, sorted by run (each run's points in order)."""
        run_id = np.concatenate([self.run_id, other.run_id])
        order = np.argsort(run_id, kind="stable")
        return Series(run_id[order], np.concatenate([self.x, other.x])[order],
                      np.concatenate([self.y, other.y])[order])


def read(bind: Bind, study: StudyRef, axis: str, metric: str, run_ids: Sequence[int] | None = None) -> Series:
    """``metric`` against ``axis`` (point columns) for the study's runs (only ``run_ids`` when given)."""
    wanted = [RENAMED_POINT_COLUMNS.get(c, c) for c in (axis, metric) if c != "step"]
    frame = point_columns(bind, study, wanted, run_ids)

    def column(name: str) -> np.ndarray:
        return frame[RENAMED_POINT_COLUMNS.get(name, name)].to_numpy(dtype=float)

    return Series(frame["run_id"].to_numpy(dtype=np.int64), column(axis), column(metric))


@dataclass(frozen=True)
class Buckets:
    """Per (run, bucket) aggregates, one row each, sorted by run then bucket. Arrays of shape (rows,):
    ``run_id``, ``bucket`` (0 … n−1), ``count``, ``x_lo``, ``x_hi`` (x range of its points), ``y_min``, ``y_max``,
    ``y_mean``; ``n`` buckets over ``x_range`` (None when no point had a finite x)."""

    run_id: np.ndarray
    bucket: np.ndarray
    count: np.ndarray
    x_lo: np.ndarray
    x_hi: np.ndarray
    y_min: np.ndarray
    y_max: np.ndarray
    y_mean: np.ndarray
    n: int
    x_range: tuple[float, float] | None

    def by_run(self) -> dict[int, Buckets]:
        """The rows of each run (rows are sorted by run, so each run's are one slice)."""
        if not len(self.run_id):
            return {}
        starts = np.flatnonzero(np.r_[True, self.run_id[1:] != self.run_id[:-1]])
        ends = [*starts[1:], len(self.run_id)]
        return {int(self.run_id[a]): dataclasses.replace(self, **{f: getattr(self, f)[a:b] for f in _ARRAYS})
                for a, b in zip(starts, ends, strict=True)}

    @classmethod
    def empty(cls, n: int) -> Buckets:
        ints, floats = np.empty(0, dtype=np.int64), np.empty(0)
        return cls(run_id=ints, bucket=ints, count=ints, x_lo=floats, x_hi=floats, y_min=floats, y_max=floats,
                   y_mean=floats, n=n, x_range=None)


_ARRAYS = ("run_id", "bucket", "count", "x_lo", "x_hi", "y_min", "y_max", "y_mean")


def x_range(series: Series, log_x: bool = False) -> tuple[float, float] | None:
    """min and max of x over the points with a finite x (x > 0 on a log axis), whatever their metric."""
    ok = np.isfinite(series.x)
    if log_x:
        ok &= series.x > 0
    if not ok.any():
        return None
    x = series.x[ok]
    return float(x.min()), float(x.max())


def reduce(series: Series, n: int, *, log_x: bool = False, span: tuple[float, float] | None = None) -> Buckets:
    """Bucket aggregates of ``series``, ``n`` ≥ 1 buckets over ``span`` (default: :func:`x_range` of the
    series; a point outside it goes to the first or last bucket)."""
    span = span if span is not None else x_range(series, log_x)
    if span is None:
        return Buckets.empty(n)
    ok = np.isfinite(series.x) & np.isfinite(series.y)
    if log_x:
        ok &= series.x > 0
    run, x, y = series.run_id[ok], series.x[ok], series.y[ok]
    if not len(run):
        return dataclasses.replace(Buckets.empty(n), x_range=span)
    lo, hi = (math.log(span[0]), math.log(span[1])) if log_x else span
    scale = n / (hi - lo) * EDGE if hi > lo else 0.0
    bucket = np.clip(np.floor(((np.log(x) if log_x else x) - lo) * scale), 0, n - 1).astype(np.int64)
    key = run * n + bucket
    if (np.diff(key) < 0).any():  # x not growing with the step somewhere: group by sorting
        order = np.argsort(key, kind="stable")
        run, x, y, bucket, key = run[order], x[order], y[order], bucket[order], key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    count = np.diff(np.r_[starts, len(key)])
    return Buckets(run_id=run[starts], bucket=bucket[starts], count=count, x_lo=np.minimum.reduceat(x, starts),
                   x_hi=np.maximum.reduceat(x, starts), y_min=np.minimum.reduceat(y, starts),
                   y_max=np.maximum.reduceat(y, starts), y_mean=np.add.reduceat(y, starts) / count, n=n,
                   x_range=span)


def envelope(b: Buckets) -> tuple[np.ndarray, np.ndarray]:
    """One run's drawn series (x, y) from its buckets: a lone point as is; else the bucket's min and max, the one
    the series comes from first (the extreme nearer the previous bucket's mean) at the bucket's first x, the other
    at its last x. At most 2·(buckets) points; every bucket's min and max are in it."""
    order = np.argsort(b.bucket, kind="stable")
    lo_x, hi_x, y_min, y_max, mean = b.x_lo[order], b.x_hi[order], b.y_min[order], b.y_max[order], b.y_mean[order]
    previous = np.concatenate([mean[:1], mean[:-1]])
    falling = np.abs(y_max - previous) <= np.abs(y_min - previous)  # comes down from near the max
    single = b.count[order] <= 1
    first = np.where(falling, y_max, y_min)
    second = np.where(falling, y_min, y_max)
    xs = np.column_stack([lo_x, hi_x]).ravel()
    ys = np.column_stack([first, second]).ravel()
    keep = np.column_stack([np.ones(len(order), bool), ~single]).ravel()
    return xs[keep], ys[keep]
