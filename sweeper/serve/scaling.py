"""The scaling-path view: on each scaling path (``sweeper.checks.paths``: runs with equal base settings), the
seed-mean metric of every κ at equal time, with the tolerance band ±r·|baseline| around the baseline κ (κ = 1,
else the smallest) — the comparison the ``lsr`` and ``sqrt-rule`` checks decide window by window.

Time axis: SDE time (Σ η for SGD, Σ η² for Adam/RMSprop on the square-root rule), but epochs for a linear path of
Adam/RMSprop (the sqrt-rule check's control arm). Curves are bucket means (:mod:`sweeper.serve.buckets`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from sweeper.checks.defaults import ADAPTIVE, RELATIVE
from sweeper.checks.paths import paths
from sweeper.serve import buckets
from sweeper.serve.colours import palette
from sweeper.serve.params import BadRequest
from sweeper.serve.trajectories import band_traces, bucket_count, value


def axis_of(rule: str, optimizer: str) -> str:
    return "epoch" if rule == "linear" and optimizer in ADAPTIVE else "sde_time"


def path_label(base: dict[str, Any]) -> str:
    shown = {k: v for k, v in base.items() if v is not None}
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


def view(runs: pd.DataFrame, points: Callable[[str], buckets.Series], metric: str, width: int,
         relative: float | None = None, index: int = 0) -> dict[str, Any]:
    """``paths``: every scaling path among ``runs`` (the study's runs: rule, axis, label, runs); ``path``: the one
    at ``index`` with its κ curves (``band_traces`` by κ: seed mean ± one standard deviation) and the baseline's
    tolerance band ``band`` (x, lo, hi). ``points(axis)``: the study's points of ``metric`` against ``axis``, of
    which only the path's runs are drawn. ``path`` is None when no run is on a path; an index past the last path
    raises BadRequest."""
    r = RELATIVE if relative is None else relative
    found = [(rule, base, group) for rule in ("linear", "sqrt") for base, group in paths(runs, rule)]
    listed = [{"index": i, "rule": rule, "axis": axis_of(rule, base["optimizer"]), "label": path_label(base),
               "n_runs": len(group)} for i, (rule, base, group) in enumerate(found)]
    out: dict[str, Any] = {"metric": metric, "relative": r, "paths": listed, "path": None}
    if not found:
        return out
    if index >= len(found):
        raise BadRequest(f"path: {index} is past the last scaling path ({len(found) - 1})")
    rule, base, group = found[index]
    axis = axis_of(rule, base["optimizer"])
    ids = [int(i) for i in group.run_id]
    data = buckets.reduce(points(axis).of(ids), bucket_count(width, len(ids)))
    traces = band_traces(data, group, "kappa", palette(value(k) for k in group.kappa))
    for t in traces:
        t["name"] = f"κ = {t['group']}"
    kappas = group.kappa.astype(float)
    baseline = 1.0 if (kappas == 1.0).any() else float(kappas.min())
    base_trace = next((t for t in traces if t["value"] == baseline), None)
    band = None
    if base_trace is not None:
        ys = base_trace["y"]
        band = {"x": base_trace["x"], "lo": [None if y is None else y - r * abs(y) for y in ys],
                "hi": [None if y is None else y + r * abs(y) for y in ys]}
    out["path"] = {**listed[index], "baseline_kappa": baseline, "traces": traces, "band": band}
    return out
