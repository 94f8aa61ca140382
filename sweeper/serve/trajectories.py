"""Trajectory plots as JSON traces: a point metric against a time axis for the chosen runs, downsampled
(:mod:`sweeper.serve.buckets`) to the plot's width, coloured by a run column, seeds as lines or mean ± band.

The bucket count is the plot width in pixels, lowered so that at most ``ROW_BUDGET`` (run, bucket) rows are read
(1,000 runs on an 800 px plot: 40 buckets per run: the JSON and the browser's work stay small), and never below
``MIN_BUCKETS``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from db.models import RUN_HPARAMS
from sweeper.serve import buckets
from sweeper.serve.colours import palette
from sweeper.serve.params import PlotQuery

ROW_BUDGET = 40_000
MIN_BUCKETS = 16
PREFERRED_COLOURS = ("kappa", "lr", "batch_size", "svag_l", "weight_decay", "momentum", "optimizer")


def bucket_count(width: int, n_runs: int) -> int:
    """Buckets per run for a plot ``width`` pixels wide drawing ``n_runs`` runs."""
    return int(max(MIN_BUCKETS, min(width, ROW_BUDGET // max(n_runs, 1))))


def value(v: Any) -> Any:
    """A run column's value as a JSON/dict key: NaN → None, numpy → Python."""
    if isinstance(v, (float, np.floating)) and math.isnan(v):
        return None
    return v.item() if isinstance(v, np.generic) else v


def varying(runs: pd.DataFrame, exclude: Sequence[str] = ("seed",)) -> list[str]:
    """Hyperparameter columns that take more than one value over ``runs``."""
    return [c for c in RUN_HPARAMS if c in runs and c not in exclude and runs[c].nunique(dropna=False) > 1]


def default_colour(runs: pd.DataFrame) -> str:
    """The column to colour by when none is asked for: the first varying one of PREFERRED_COLOURS, else lr."""
    moving = varying(runs)
    return next((c for c in PREFERRED_COLOURS if c in moving), moving[0] if moving else "lr")


def label(row: pd.Series, columns: Sequence[str]) -> str:
    return ", ".join(f"{c}={number_text(row[c])}" for c in columns) if columns else "all runs"


def number_text(v: Any) -> str:
    v = value(v)
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _finite_list(a: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in a]


def line_traces(data: buckets.Buckets, runs: pd.DataFrame, colour: str,
                colours: dict[Hashable, str]) -> list[dict[str, Any]]:
    """One trace per run (its min/max envelope)."""
    out = []
    per_run = data.by_run()
    for row in runs.itertuples(index=False):
        x, y = buckets.envelope(per_run.get(int(row.run_id), buckets.Buckets.empty(data.n)))
        if not len(x):
            continue
        c = value(getattr(row, colour))
        out.append({"name": str(row.trial_id), "run_ids": [int(row.run_id)], "group": number_text(c), "value": c,
                    "colour": colours[c], "x": _finite_list(x), "y": _finite_list(y)})
    return out


def band_traces(data: buckets.Buckets, runs: pd.DataFrame, colour: str,
                colours: dict[Hashable, str]) -> list[dict[str, Any]]:
    """One trace per setting (runs equal in every hyperparameter but the seed): the seeds' mean of each bucket's
    mean, with ``lo``/``hi`` = mean ∓ one standard deviation over the seeds (equal to the mean for one seed)."""
    moving = varying(runs)
    keys = [c for c in RUN_HPARAMS if c != "seed" and c in runs]
    out = []
    n = data.n
    per_run = data.by_run()
    for _, group in runs.groupby(keys, dropna=False, sort=True):
        means = np.full((len(group), n), np.nan)
        mids = np.full((len(group), n), np.nan)
        for i, rid in enumerate(group.run_id):
            b = per_run.get(int(rid), buckets.Buckets.empty(n))
            means[i, b.bucket] = b.y_mean
            mids[i, b.bucket] = (b.x_lo + b.x_hi) / 2
        seeds = np.isfinite(means).sum(axis=0)
        present = seeds > 0
        if not present.any():
            continue
        means, mids, seeds = means[:, present], mids[:, present], seeds[present]
        mean = np.nansum(means, axis=0) / seeds
        squares = np.nansum((means - mean) ** 2, axis=0)
        spread = np.sqrt(np.divide(squares, seeds - 1, out=np.zeros_like(squares), where=seeds > 1))
        x = np.nanmean(mids, axis=0)
        first = group.iloc[0]
        c = value(first[colour])
        out.append({"name": label(first, moving), "run_ids": [int(r) for r in group.run_id], "group": number_text(c),
                    "value": c, "colour": colours[c], "seeds": len(group), "x": _finite_list(x),
                    "y": _finite_list(mean), "lo": _finite_list(mean - spread), "hi": _finite_list(mean + spread)})
    return out


def plot(series: buckets.Series, runs: pd.DataFrame, q: PlotQuery) -> dict[str, Any]:
    """The plot's traces and legend for ``runs`` (rows of the runs table: ``run_id``, ``trial_id`` and the
    hyperparameter columns) from ``series``, the points of ``q.metric`` against ``q.axis`` of these runs (points of
    other runs are not drawn but count in the x range: pass only these runs' points)."""
    ids = [int(r) for r in runs.run_id]
    n = bucket_count(q.width, len(ids))
    data = buckets.reduce(series, n, log_x=q.log_x)
    colours = palette(value(v) for v in runs[q.colour])
    traces = (line_traces if q.seeds == "lines" else band_traces)(data, runs, q.colour, colours)
    return {"metric": q.metric, "x": q.axis, "colour": q.colour, "seeds": q.seeds, "log_x": q.log_x,
            "buckets": n, "n_runs": len(ids), "x_range": data.x_range,
            "points_drawn": int(sum(len(t["x"]) for t in traces)),
            "legend": [{"value": number_text(v), "colour": c} for v, c in colours.items()], "traces": traces}
