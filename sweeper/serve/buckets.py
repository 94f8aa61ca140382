"""Downsampling in SQL: each run's (x, metric) points reduced to min/max per x bucket, so a plot of W pixels reads
at most a few values per pixel and run, never the raw trajectory.

The x range [x0, x1] of the chosen runs is cut into ``n`` equal buckets (equal in ln x for a log axis, where
x ≤ 0 is left out). One ``GROUP BY run_id, bucket`` query returns per run and bucket the point count, the x range,
and min, max and mean of the metric over the finite values (NaN, ±inf and NULL are not drawn); :func:`envelope`
turns a run's buckets into the drawn series: one point for a bucket of one point, else its min and max (in the
order the series runs), so every bucket's extremes — hence the series' global min and max — are kept, and the
series has at most 2·n points.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from db.models import Point, Run

FINITE = sys.float_info.max
"""|value| ≤ this is finite; ``BETWEEN -FINITE AND FINITE`` drops NaN (text on SQLite) and ±inf on both engines."""


EDGE = 1 - 1e-9
"""Bucket k holds ``k ≤ (x − x0)·n/(x1 − x0)·EDGE < k + 1``: the factor puts x = x1 in the last bucket."""


def _finite(column: sa.ColumnElement[float]) -> sa.ColumnElement[bool]:
    return column.between(-FINITE, FINITE)


@dataclass(frozen=True)
class Buckets:
    """Per (run, bucket) aggregates, one row each, sorted by run then bucket. Arrays of shape (rows,):
    ``run_id``, ``bucket`` (0 … n−1), ``count``, ``x_lo``, ``x_hi`` (x range of its points), ``y_min``, ``y_max``,
    ``y_mean``; ``n`` buckets over ``x_range`` (None when no point had a finite x and y)."""

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


def x_range(conn: Connection, run_ids: Sequence[int], axis: str, log_x: bool = False) -> tuple[float, float] | None:
    """min and max of the x column over the runs' points with a finite x (x > 0 on a log axis).

    Every time axis grows with the step, so these are each run's first and last such point: two index seeks per
    run instead of a scan of the trajectories."""
    x = getattr(Point, axis)
    cond = [Point.run_id == Run.id, _finite(x), *([x > 0] if log_x else [])]
    ends = [sa.select(x).where(*cond).order_by(order).limit(1).correlate(Run).scalar_subquery()
            for order in (Point.step.asc(), Point.step.desc())]
    stmt = sa.select(sa.func.min(ends[0]), sa.func.max(ends[1])).where(Run.id.in_([int(r) for r in run_ids]))
    lo, hi = conn.execute(stmt).one()
    return None if lo is None else (float(lo), float(hi))


def query(conn: Connection, run_ids: Sequence[int], axis: str, metric: str, n: int, *, log_x: bool = False,
          span: tuple[float, float] | None = None) -> Buckets:
    """Bucket aggregates of ``metric`` against ``axis`` (point columns) for ``run_ids``, ``n`` ≥ 1 buckets over
    ``span`` (default: :func:`x_range` of these runs)."""
    ids = [int(r) for r in run_ids]
    span = span if span is not None else (x_range(conn, ids, axis, log_x) if ids else None)
    if span is None:
        return Buckets.empty(n)
    x, y = getattr(Point, axis), getattr(Point, metric)
    lo, hi = (math.log(span[0]), math.log(span[1])) if log_x else span
    scale = n / (hi - lo) * EDGE if hi > lo else 0.0
    pos = (sa.func.ln(x) if log_x else x) - lo
    bucket = sa.func.floor(pos * scale).label("bucket")
    cond = [Point.run_id.in_(ids), _finite(x), _finite(y)]
    if log_x:
        cond.append(x > 0)
    aggregates = [sa.func.count(), sa.func.min(x), sa.func.max(x), sa.func.min(y), sa.func.max(y), sa.func.avg(y)]
    stmt = (sa.select(Point.run_id, bucket, *(sa.type_coerce(a, sa.Double()) for a in aggregates))
            .where(*cond).group_by(Point.run_id, bucket).order_by(Point.run_id, bucket))
    rows = conn.execute(stmt).all()
    cols = np.array([tuple(r) for r in rows], dtype=float).reshape(len(rows), len(_ARRAYS))
    return Buckets(run_id=cols[:, 0].astype(np.int64), bucket=np.clip(cols[:, 1], 0, n - 1).astype(np.int64),
                   count=cols[:, 2].astype(np.int64), x_lo=cols[:, 3], x_hi=cols[:, 4], y_min=cols[:, 5],
                   y_max=cols[:, 6], y_mean=cols[:, 7], n=n, x_range=span)


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
