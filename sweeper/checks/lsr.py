"""``lsr``: the linear scaling rule for SGD (docs/theory.md §1): B → κB, η → κη leaves the SDE, hence the
trajectory at equal SDE time t = Σ η_t/l, unchanged.

Runs are grouped into scaling paths by their base settings (B0 = B/κ, η0, λ, l); each κ is compared with κ = 1 at
equal SDE time, window by window over the whole trajectory (``paths.compare_path``; statistics in
``windows`` and ``stats``). Tolerance: r = 5% of the κ = 1 metric per window (``defaults``). A κ holds when every
window is within tolerance (equivalence at level α), fails when a window is beyond it (Holm over the path's windows
at family-wise α) or a run diverged. Verdict: CONFIRMED if every κ of every path holds, REFUTED if a κ fails, else
INCONCLUSIVE with the seeds a power analysis asks for. Statistic: the largest κ that holds with no failing κ below.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from sweeper.checks.base import StudyData, Verdict, inconclusive
from sweeper.checks.defaults import ALPHA, METRIC, RELATIVE, SEEDS_HINT, WINDOWS, tolerance_why
from sweeper.checks.paths import compare_path, figure_paths, paths, verdict
from sweeper.checks.windows import Curves

NAME = "lsr"


def metric_or_none(points: pd.DataFrame, metric: str | None) -> tuple[str, str | None]:
    """The metric to compare and, if it cannot be used, why."""
    name = metric or METRIC
    if name not in points.columns:
        return name, f"unknown metric {name!r}"
    if not points[name].astype(float).notna().any():
        return name, f"metric {name!r} is not recorded in this study"
    return name, None


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None,
          windows: int = WINDOWS, alpha: float = ALPHA) -> Verdict:
    """Does the linear scaling rule hold along the study's linear path(s) of SGD runs?

    ``metric``: point column compared (default ``test_loss``); ``tolerance``: relative tolerance r (default 0.05
    = 5% of the κ = 1 value per window); ``windows``: K equal windows of SDE time (default 5); ``alpha``: level of
    the equivalence tests and family-wise level of the failure calls (default 0.05).
    """
    relative = RELATIVE if tolerance is None else float(tolerance)
    tol = {"relative": relative, "alpha": alpha, "windows": windows, "why": tolerance_why(relative, alpha, windows)}
    points = data.point_columns(metric or METRIC, "sde_time")
    name, bad = metric_or_none(points, metric)
    params = {"metric": name, "windows": windows, "alpha": alpha, "axis": "sde_time"}
    runs = data.finished_runs()
    linear = runs[(runs.scaling_rule == "linear") & runs.kappa.notna()] if "scaling_rule" in runs else runs[:0]
    sgd = linear[linear.optimizer.fillna("sgd") == "sgd"]
    if linear.empty:
        return inconclusive(NAME, "The study has no linear-scaling path to compare.",
                            ['[scaling] rule = "linear", factors = [1, 2, 4, 8] (κ = 1 is the baseline)', SEEDS_HINT],
                            tolerance=tol, parameters=params)
    if sgd.empty:
        opts = ", ".join(sorted(linear.optimizer.unique()))
        return inconclusive(NAME, f"The linear path's runs use {opts}; the linear scaling rule is SGD's "
                            "(docs/theory.md §1) — for Adam/RMSprop the sqrt-rule check reports it as its control arm.",
                            ['[optimizer] name = "sgd" for an LSR study (or run the sqrt-rule check)'],
                            tolerance=tol, parameters=params)
    if bad:
        return inconclusive(NAME, f"Cannot compare: {bad}.", [f"--metric: a recorded point column ({bad})"],
                            tolerance=tol, parameters=params)
    curves = Curves(points, name, "sde_time")
    results = [compare_path(curves, g, base, arm="linear", rule="linear", relative=relative, windows=windows,
                            alpha=alpha) for base, g in paths(sgd, "linear")]
    return verdict(NAME, results, headline=f"Linear scaling rule on {name} at equal SDE time", tolerance=tol,
                   parameters=params)


def figure(data: StudyData, verdict_: Verdict) -> Any:
    return figure_paths(data, verdict_, "linear scaling rule")
