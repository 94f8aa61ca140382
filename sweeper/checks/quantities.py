"""Quantities that a check's verdict rests on and a report figure draws, each defined once so that the two agree.

* B*, the largest batch for which the linear scaling rule is predicted to hold (the ``nsr`` check, docs/theory.md §2):
  B* = τ·B0·N̄_t/Ḡ_t on the base runs of each linear-scaling SGD path, with Ḡ_t and N̄_t averaged *separately* over
  the late window of the runs' ``noise`` measurements (the ratio of averages, never the average of ratios).
* A run's final sharpness λ_max (the ``sharpness`` check, docs/theory.md §6): its last measured ``sharpness``
  diagnostic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sweeper.checks.base import StudyData
from sweeper.checks.paths import paths as scaling_paths

THRESHOLD = 2.0
"""τ: the G_t/N_t at which LSR fails (docs/theory.md §2)."""
WINDOW = 0.5
"""Late fraction of a run's base-LR stretch over which G_t and N_t are averaged."""


# ----------------------------------------------------------------------------------------------------------- B*


def linear_paths(data: StudyData) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """The linear-scaling paths (``paths.paths``) of finished SGD runs at l = 1 with at least two κ: each path's
    base settings and its runs."""
    runs = data.finished_runs()
    if "scaling_rule" not in runs or runs.empty:
        return []
    runs = runs[(runs.scaling_rule == "linear") & runs.kappa.notna() & (runs.optimizer.fillna("sgd") == "sgd")]
    return [(b, g) for b, g in scaling_paths(runs, "linear") if b["svag_l"] == 1.0 and g.kappa.nunique() >= 2]


def base_runs(path_runs: pd.DataFrame) -> pd.DataFrame:
    """A path's base runs: those at κ = 1, else at its smallest κ (the baseline ``paths.compare_path`` uses)."""
    kappas = path_runs.kappa.astype(float)
    base = 1.0 if any(math.isclose(k, 1.0) for k in kappas) else float(kappas.min())
    return path_runs[np.isclose(kappas, base)]


def late_noise(data: StudyData, run_id: int, window: float = WINDOW) -> pd.DataFrame:
    """The run's ``noise`` rows in the last ``window`` (fraction of steps) of its stretch at its base learning rate
    (points ``lr_t`` equal to the run's ``lr``: before any decay); step 0 is never in it."""
    diag = data.diagnostics
    if diag.empty or "kind" not in diag or "summary.g_t" not in diag:
        return diag.iloc[0:0]
    rows = diag[(diag.run_id == run_id) & (diag.kind == "noise")].sort_values("step")
    points = data.point_columns("lr_t")
    pts = points[points.run_id == run_id].sort_values("step")
    if len(pts) and "lr_t" in pts and pts.lr_t.notna().any():
        base_lr = float(data.runs.loc[data.runs.run_id == run_id, "lr"].iloc[0])
        idx = np.searchsorted(pts.step.to_numpy(), rows.step.to_numpy(), side="right") - 1
        lr_t = pts.lr_t.to_numpy(float)[np.clip(idx, 0, len(pts) - 1)]
        at_base = np.isclose(lr_t, base_lr, rtol=1e-6)
        if at_base.any():
            rows = rows[at_base]
    rows = rows[rows.step > 0]
    if rows.empty:
        return rows
    last = float(rows.step.max())
    return rows[rows.step >= (1 - window) * last]


@dataclass(frozen=True)
class BatchPrediction:
    """B* from base runs' noise. ``b0``: their batch size (samples); ``g_t``, ``n_t``: Ḡ_t and N̄_t, each the mean
    over all window measurements (squared-gradient units); ``b_star``: τ·B0·N̄_t/Ḡ_t (samples; inf when Ḡ_t ≤ 0);
    ``run_ids``: the runs with window measurements; ``steps``: the steps of those measurements, sorted."""

    b0: float
    g_t: float
    n_t: float
    b_star: float
    run_ids: tuple[int, ...]
    steps: tuple[int, ...]

    @property
    def g_over_n(self) -> float:
        """Ḡ_t/N̄_t at B0 (NaN when N̄_t ≤ 0)."""
        return self.g_t / self.n_t if self.n_t > 0 else math.nan


def predict_batch(data: StudyData, base: pd.DataFrame, threshold: float = THRESHOLD,
                  window: float = WINDOW) -> BatchPrediction | None:
    """B* = τ·B0·N̄_t/Ḡ_t (τ = ``threshold``) pooled over the late-window noise measurements (``late_noise``) of
    the runs in ``base`` (rows of ``data.runs`` at one batch size B0); None when none of them has any."""
    windows = [(int(r), late_noise(data, int(r), window)) for r in base.run_id]
    windows = [(r, w) for r, w in windows if len(w) and w["summary.g_t"].notna().any()]
    if not windows:
        return None
    rows = pd.concat([w for _, w in windows])
    g, n = float(rows["summary.g_t"].mean()), float(rows["summary.n_t"].mean())
    b0 = float(base.batch_size.iloc[0])
    return BatchPrediction(b0, g, n, threshold * b0 * n / g if g > 0 else math.inf, tuple(r for r, _ in windows),
                           tuple(sorted(int(s) for s in rows.step)))


def path_predictions(data: StudyData, threshold: float = THRESHOLD,
                     window: float = WINDOW) -> list[BatchPrediction]:
    """The pooled B* of every linear path (``linear_paths``, in order) whose base runs have noise measurements: the
    predictions the ``nsr`` check judges."""
    predictions = (predict_batch(data, base_runs(runs), threshold, window) for _, runs in linear_paths(data))
    return [p for p in predictions if p is not None]


# ---------------------------------------------------------------------------------------------------- sharpness


def final_sharpness(data: StudyData) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Each completed run's final sharpness: the value of its last ``sharpness`` diagnostic with a value.

    Returns one row per completed run whose final λ_max is > 0 — ``run_id, seed, optimizer, svag_l, lr,
    batch_size`` (the run's), ``temperature`` (η/B, learning rate per sample), ``lambda_max`` (top Hessian
    eigenvalue, loss per squared parameter unit), ``step`` (where it was measured), ``edge_ratio`` (λ_max·η/2: 1 at
    the stability edge) — and the runs left out with why: diverged, or final λ_max ≤ 0 (the top eigenvalue came
    out negative)."""
    diag = data.diagnostics
    runs = data.finished_runs()
    left_out = [{"run_id": int(r.run_id), "why": "diverged"} for r in runs.itertuples() if r.status == "diverged"]
    runs = runs[runs.status == "completed"]
    if diag.empty or "kind" not in diag:
        return pd.DataFrame(), left_out
    rows = diag[(diag.kind == "sharpness") & diag.run_id.isin(runs.run_id) & diag.value.notna()]
    if rows.empty:
        return pd.DataFrame(), left_out
    last = rows.sort_values("step").groupby("run_id").tail(1)
    by_id = runs.set_index("run_id")
    out = []
    for r in last.itertuples():
        value = float(r.value)
        if not value > 0:
            left_out.append({"run_id": int(r.run_id), "why": f"last λ_max = {value:.3g} ≤ 0"})
            continue
        run = by_id.loc[r.run_id]
        lr, b = float(run.lr), float(run.batch_size)
        out.append({"run_id": int(r.run_id), "seed": int(run.seed), "optimizer": run.optimizer,
                    "svag_l": float(run.svag_l), "lr": lr, "batch_size": b, "temperature": lr / b,
                    "lambda_max": value, "step": int(r.step), "edge_ratio": value * lr / 2})
    return pd.DataFrame(out), left_out
