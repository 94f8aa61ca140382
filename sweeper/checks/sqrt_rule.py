"""``sqrt-rule``: the square-root scaling rule for Adam / RMSprop (docs/theory.md §3). B → κB with η → √κ·η,
1 − β → κ(1 − β) (β1 and β2), ε → ε/√κ leaves the adaptive SDE unchanged, so the runs of a square-root path agree
at equal SDE time t = k·η² (``points.sde_time`` of adaptive runs).

Statistic, tolerance and decision: exactly those of ``lsr`` (``paths.compare_path``: K equal windows of SDE time,
seed-paired differences with autocorrelation-aware errors, tolerance r·|κ = 1 value| with r = 5% by default,
equivalence per window at level α, failures by Holm, diverged runs count as the rule failing), applied to the
square-root path. The 5% default sits inside the reference result (final accuracy within 3 points of ≈ 90% across
batch sizes) and well inside docs/theory.md §2's 20% failure line.

Control arm. When the study also holds linear-rule paths of the same optimizer (``[scaling] rule = ["sqrt",
"linear"]``), they are compared the same way on their own time axis — epochs, along which a linear path's runs sit
at equal k·η (at equal k·η² they would not line up: a κ run covers κ× more of it per epoch) — and reported beside
the verdict (docs/theory.md §3 expects the linear rule to do worse for Adam). The control arm never changes the verdict.
"""

from __future__ import annotations

from typing import Any

from sweeper.checks.base import StudyData, Verdict, inconclusive
from sweeper.checks.defaults import ADAPTIVE, ALPHA, METRIC, RELATIVE, SEEDS_HINT, WINDOWS, tolerance_why
from sweeper.checks.lsr import metric_or_none
from sweeper.checks.paths import PathResult, compare_path, describe, figure_paths, paths, verdict
from sweeper.checks.windows import Curves

NAME = "sqrt-rule"


def _control_clause(control: list[PathResult]) -> str:
    if not control:
        return "; no linear control arm in the study"
    parts = []
    for p in control:
        where = (f"fails from κ = {p.first_failing:g}" if p.first_failing is not None else
                 "fails" if p.status == "REFUTED" else "holds on every κ" if p.status == "CONFIRMED" else
                 f"undecided ({p.note})")
        parts.append(f"holds up to κ = {p.largest_holding:g}, {where}" if p.rows else p.note)
    return "; linear control arm (by epoch): " + " / ".join(parts)


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None,
          windows: int = WINDOWS, alpha: float = ALPHA) -> Verdict:
    """Does the square-root rule hold along the study's sqrt path(s) of Adam/RMSprop runs, at equal k·η²?

    ``metric``: point column compared (default ``test_loss``); ``tolerance``: relative tolerance r (default 0.05
    of the κ = 1 value per window); ``windows``: K equal windows of SDE time (default 5); ``alpha``: error rate
    per κ (default 0.05). The linear control arm, if present, is reported but does not decide.
    """
    relative = RELATIVE if tolerance is None else float(tolerance)
    tol = {"relative": relative, "alpha": alpha, "windows": windows,
           "why": tolerance_why(relative, alpha, windows)}
    points = data.point_columns(metric or METRIC, "sde_time", "epoch")
    name, bad = metric_or_none(points, metric)
    params = {"metric": name, "windows": windows, "alpha": alpha, "axis": "sde_time (k·η²)",
              "control_axis": "epoch"}
    runs = data.finished_runs()
    rules = runs.scaling_rule if "scaling_rule" in runs else runs.index.to_series().map(lambda _: None)
    adaptive = runs[runs.optimizer.isin(ADAPTIVE) & runs.kappa.notna()]
    sqrt = adaptive[adaptive.scaling_rule == "sqrt"] if len(adaptive) else adaptive
    if not (rules == "sqrt").any():
        return inconclusive(NAME, "The study has no square-root scaling path.",
                            ['[scaling] rule = ["sqrt", "linear"], factors = [1, 2, 4, 8] (the linear arm is the '
                             'control; κ = 1 is the baseline)', SEEDS_HINT], tolerance=tol, parameters=params)
    if sqrt.empty:
        opts = ", ".join(sorted(runs[rules == "sqrt"].optimizer.unique()))
        return inconclusive(NAME, f"The square-root path's runs use {opts}; the rule is for Adam/RMSprop "
                            "(docs/theory.md §3).", ['[optimizer] name = "adam" (or "rmsprop")'], tolerance=tol,
                            parameters=params)
    if bad:
        return inconclusive(NAME, f"Cannot compare: {bad}.", [f"--metric: a recorded point column ({bad})"],
                            tolerance=tol, parameters=params)
    common: dict[str, Any] = dict(relative=relative, windows=windows, alpha=alpha)
    by_time, by_epoch = Curves(points, name, "sde_time"), Curves(points, name, "epoch")
    results = [compare_path(by_time, g, base, arm="sqrt", rule="sqrt", **common) for base, g in paths(sqrt, "sqrt")]
    control = [compare_path(by_epoch, g, base, arm="linear", rule="linear", **common)
               for base, g in paths(adaptive, "linear")]
    clause = _control_clause(control)
    details = {"control": [p.as_json() for p in control],
               "control_summary": [describe(p) for p in control]}
    return verdict(NAME, results, headline=f"Square-root rule on {name} at equal k·η²", tolerance=tol,
                   parameters=params, extra_evidence=[r for p in control for r in p.rows], extra_details=details,
                   suffix=clause)


def figure(data: StudyData, verdict_: Verdict) -> Any:
    return figure_paths(data, verdict_, "square-root rule")
