"""``noise-rank``: is the gradient-noise covariance D low-rank (THEORY.md §5, §9)?

Statistic. From each ``covariance`` diagnostic (centred per-example covariance of n gradients, d parameters):
the fraction of d needed for 99% of the trace, f = n_eig_99/d — a measure that, unlike the numerical rank, does
not hinge on an ε cut-off (THEORY §5 prefers it). The study's statistic is the median over runs of each run's
*late* value (its last measurement). Threshold τ (``tolerance``, default 0.02 = 2% of d, THEORY §5: reported
ranks are 0.3–1.8% of d).

Which bound applies: rank(D) ≤ min(n − 1, d) (THEORY §5); the diagnostic's ``bound_kind`` says which. When the
sample bound applies, f cannot exceed (n − 1)/d, and the 99% count of a sample covariance underestimates the
population's once it uses a sizeable share of the n − 1 sample directions (heavy-tailed spectra: ×1.7 low at
34% of n − 1, ×3.9 at 61%, in a power-law test). A measurement is *sample-limited* when the sample bound applies
and (n − 1 ≤ τ·d — f could never exceed τ — or n_eig_99 > ¼·(n − 1)). A sample-limited value is never called
low-rank; it can still refute, because the sample bias is downward.

Decision: REFUTED if the median late f > τ; CONFIRMED if every run's late f ≤ τ and none is sample-limited;
otherwise INCONCLUSIVE — naming the runs above τ (replicates disagree) and/or ``diagnostics.covariance.samples``
for runs below τ that the sample count limits. With d < 1/τ no covariance can reach f ≤ τ (one eigenvalue is
already more than τ·d): INCONCLUSIVE.

Time: each run's early value (first measurement at ≥ 20% of training, THEORY §5 compares 20%, 40%, 100%; else
the first after step 0) against its late value, as the ratio late/early of f and of the participation ratio —
reported, not part of the decision.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sweeper.checks.base import StudyData, Verdict, inconclusive

NAME = "noise-rank"
THRESHOLD = 0.02  # n_eig_99/d at or below this is "low rank" (THEORY §5)
SATURATION = 0.25  # n_eig_99 above this share of n − 1 is limited by the sample count
EARLY = 0.2  # the early measurement: first at ≥ 20% of training (THEORY §5)

_S = "summary."


def _rows(data: StudyData) -> pd.DataFrame:
    """Covariance rows of finished runs with f, the training fraction and the sample-limit flags."""
    diag = data.diagnostics
    if diag.empty or "kind" not in diag:
        return pd.DataFrame()
    done = data.finished_runs().run_id
    rows = diag[(diag.kind == "covariance") & diag.run_id.isin(done)].copy()
    if rows.empty or _S + "n_eig_99" not in rows:
        return pd.DataFrame()
    rows = rows[rows[_S + "n_eig_99"].notna()]
    last = data.points.groupby("run_id").step.max() if len(data.points) else pd.Series(dtype=float)
    total = np.maximum(rows.run_id.map(last).fillna(0).to_numpy(float), rows.groupby("run_id").step.transform("max"))
    rows["progress"] = rows.step / np.where(total > 0, total, 1.0)
    n, d = rows[_S + "n"].astype(float), rows[_S + "d"].astype(float)
    rows["f99"] = rows[_S + "n_eig_99"].astype(float) / d
    rows["capacity"] = np.minimum(n - 1, d) / d
    return rows


def _sample_limited(row: pd.Series, threshold: float) -> bool:
    n, d, k = float(row[_S + "n"]), float(row[_S + "d"]), float(row[_S + "n_eig_99"])
    return bool(n - 1 < d and (n - 1 <= threshold * d or k > SATURATION * (n - 1)))


def _pr(row: pd.Series) -> float:
    """The participation ratio, U-statistic estimate where available (THEORY §9: the plug-in is biased low)."""
    for key in ("participation_ratio_unbiased", "participation_ratio"):
        v = row.get(_S + key, math.nan)
        if v is not None and np.isfinite(float(v)):
            return float(v)
    return math.nan


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None) -> Verdict:
    """Median over runs of the late n_eig_99/d against τ (``tolerance``, default 0.02 = 2% of d, THEORY §5).

    ``metric`` is not used (the statistic is fixed: 99% of the trace); sample-limited measurements cannot confirm.
    """
    threshold = THRESHOLD if tolerance is None else float(tolerance)
    tol = {"threshold_f99": threshold, "saturation_share": SATURATION, "early_progress": EARLY,
           "why": f"low rank = 99% of tr D within {threshold:.3g}·d eigenvalues (THEORY §5: reported ranks 0.3–1.8% "
                  f"of d); a count using > {SATURATION:g} of the n − 1 sample directions, or a sample bound "
                  f"(n − 1)/d ≤ {threshold:.3g}, is limited by the sample count (THEORY §9) and cannot confirm"}
    rows = _rows(data)
    if rows.empty:
        return inconclusive(NAME, "No covariance diagnostic was recorded.",
                            ["[diagnostics.covariance] with samples = n where n − 1 ≥ 4·τ·d (or full_dataset = "
                             "true), and every_epochs for measurements at ≥ 2 times"], tolerance=tol)
    rows["sample_limited"] = [_sample_limited(r, threshold) for _, r in rows.iterrows()]
    evidence, late_f, per_run = [], [], []
    runs = data.runs.set_index("run_id")
    for run_id, g in rows.groupby("run_id"):
        g = g.sort_values("step")
        late = g.iloc[-1]
        cand = g[(g.progress >= EARLY) & (g.step < late.step)]
        cand = cand if len(cand) else g[(g.step > 0) & (g.step < late.step)]
        early = cand.iloc[0] if len(cand) else None
        info = runs.loc[run_id]
        row = {"run_id": int(run_id), "lr": float(info.lr), "batch_size": float(info.batch_size),
               "seed": int(info.seed), "n": int(late[_S + "n"]), "d": int(late[_S + "d"]),
               "bound_kind": str(late.get(_S + "bound_kind")), "rank": int(late.get(_S + "rank", -1)),
               "rank_saturated": bool(late.get(_S + "rank_saturated", False)),
               "n_eig_99": int(late[_S + "n_eig_99"]), "f99_late": float(late.f99),
               "capacity": float(late.capacity), "sample_limited": bool(late.sample_limited),
               "pr_late": _pr(late), "progress_early": math.nan, "f99_early": math.nan,
               "f99_late_over_early": math.nan, "pr_late_over_early": math.nan}
        if early is not None:
            row.update(progress_early=float(early.progress), f99_early=float(early.f99),
                       f99_late_over_early=float(late.f99 / early.f99) if early.f99 > 0 else math.nan,
                       pr_late_over_early=_pr(late) / _pr(early) if _pr(early) > 0 else math.nan)
        evidence.append(row)
        late_f.append(float(late.f99))
        per_run.append(row)
    stat = float(np.median(late_f))
    changes = [r["f99_late_over_early"] for r in per_run if np.isfinite(r["f99_late_over_early"])]
    time_text = (f"late/early f (median over {len(changes)} runs) = {np.median(changes):.3g}" if changes else
                 "change with training time not measured (one measurement per run: set "
                 "diagnostics.covariance.every_epochs)")
    bounds = sorted({str(r["bound_kind"]) for r in per_run})
    details = {"time_change_median": float(np.median(changes)) if changes else None, "bound_kinds": bounds,
               "rows": rows[["run_id", "step", "progress", "f99", "capacity", "sample_limited"]].to_dict("records")}
    params = {"statistic": "median over runs of late n_eig_99/d", "runs": len(per_run)}
    text = (f"Median late n_eig_99/d = {stat:.3g} (τ = {threshold:.3g}; runs {min(late_f):.3g}–{max(late_f):.3g}; "
            f"rank bound: {'/'.join(bounds)}); {time_text}")
    d_min = min(r["d"] for r in per_run)
    if 1.0 / d_min > threshold:
        return inconclusive(NAME, text + f"; with d = {d_min} one eigenvalue is already more than τ·d, so no "
                            "covariance could pass.",
                            [f"a larger model (d ≥ {math.ceil(1 / threshold)}) or a tolerance ≥ 1/d"],
                            statistic=stat, tolerance=tol, parameters=params, evidence=evidence, details=details)
    if stat > threshold:
        note = (" (sample-limited values are biased low, so this stands)" if any(r["sample_limited"] for r in per_run)
                else "")
        return Verdict(NAME, "REFUTED", text + ": not low-rank" + note + ".", stat, params, tol, evidence,
                       details=details)
    above = [r["run_id"] for r in per_run if r["f99_late"] > threshold]
    low_limited = [r for r in per_run if r["sample_limited"] and r["f99_late"] <= threshold]
    why, need = [], []
    if above:
        why.append(f"runs {above} exceed τ while the median does not")
        need.append("seeds / runs: more replicates of the configurations that disagree")
    if low_limited:
        worst = max(low_limited, key=lambda r: r["n_eig_99"] / max(r["n"] - 1, 1))
        k = max(math.ceil(threshold * worst["d"] * 4) + 1, math.ceil(worst["n_eig_99"] / SATURATION) + 2)
        why.append(f"{len(low_limited)} run(s) below τ are limited by the sample count (n = {worst['n']}, "
                   f"n_eig_99 = {worst['n_eig_99']}), so low rank is not established")
        need.append(f"diagnostics.covariance.samples ≥ {k}" + (" or full_dataset = true" if worst["d"] <= 20_000
                                                                 else ""))
    if why:
        return inconclusive(NAME, text + "; " + "; ".join(why) + ".", need, statistic=stat, tolerance=tol,
                            parameters=params, evidence=evidence, details=details)
    return Verdict(NAME, "CONFIRMED", text + ": low-rank in every run.", stat, params, tol, evidence,
                   details=details)


def figure(data: StudyData, verdict: Verdict) -> Any:
    """Left: late spectra (top-k eigenvalues / λ_max) per run. Right: n_eig_99/d against training progress, with
    τ and each run's sample capacity (n − 1)/d."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    rows = _rows(data)
    for run_id, g in (rows.groupby("run_id") if len(rows) else []):
        g = g.sort_values("step")
        late = g.iloc[-1]
        eig = late.get("payload")
        if isinstance(eig, np.ndarray) and eig.size and eig[0] > 0:
            ax1.semilogy(np.arange(1, eig.size + 1), eig / eig[0], ".-", alpha=0.7, label=f"run {run_id}")
        line, = ax2.plot(g.progress, g.f99, "o-", alpha=0.8)
        ax2.axhline(float(late.capacity), color=line.get_color(), ls=":", alpha=0.5)
    ax1.set(xlabel="eigenvalue index", ylabel="λ_k / λ_max (late)", title="covariance spectra")
    tau = verdict.tolerance.get("threshold_f99", THRESHOLD)
    ax2.axhline(tau, color="red", ls="--", label=f"τ = {tau:g}")
    ax2.set(xlabel="fraction of training", ylabel="n_eig_99 / d", yscale="log",
            title=f"noise-rank: {verdict.verdict} (dotted: min(n−1, d)/d)")
    ax2.legend(fontsize=8)
    if ax1.get_legend_handles_labels()[0] and len(ax1.get_legend_handles_labels()[0]) <= 8:
        ax1.legend(fontsize=7)
    fig.tight_layout()
    return fig
