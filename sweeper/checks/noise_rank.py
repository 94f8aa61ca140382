"""``noise-rank``: is the gradient-noise covariance D low-rank (docs/theory.md §5, §9)?

Statistic. From each ``covariance`` diagnostic (centred per-example covariance of n gradients, d parameters):
the fraction of d needed for 99% of the trace, f = n_eig_99/d — a measure that, unlike the numerical rank, does
not hinge on an ε cut-off (docs/theory.md §5 prefers it). The study's statistic is the median over runs of each run's
*late* value (its last measurement). Threshold τ (``tolerance``, default 0.02 = 2% of d, docs/theory.md §5: reported
ranks are 0.3–1.8% of d).

Which bound applies: rank(D) ≤ min(n − 1, d) (docs/theory.md §5); the diagnostic's ``bound_kind`` says which. When the
sample bound applies, f cannot exceed (n − 1)/d, and the 99% count of a sample covariance underestimates the
population's once it uses a sizeable share of the n − 1 sample directions (heavy-tailed spectra: ×1.7 low at
34% of n − 1, ×3.9 at 61%, in a power-law test). A measurement is *sample-limited* when the sample bound applies
and (n − 1 ≤ τ·d — f could never exceed τ — or n_eig_99 > ¼·(n − 1)). A sample-limited value is never called
low-rank; it can still refute, because the sample bias is downward.

Decision: REFUTED if the median late f > τ; CONFIRMED if every run's late f ≤ τ and none is sample-limited;
otherwise INCONCLUSIVE — naming the runs above τ (replicates disagree) and/or ``diagnostics.covariance.samples``
for runs below τ that the sample count limits. With d < 1/τ no covariance can reach f ≤ τ (one eigenvalue is
already more than τ·d): INCONCLUSIVE.

Time: each run's early value (first measurement at ≥ 20% of training, docs/theory.md §5 compares 20%, 40%, 100%; else
the first after step 0) against its late value, as the ratio late/early of f and of the participation ratio —
reported, not part of the decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sweeper.checks.base import Outcome, StudyData, Verdict, inconclusive

NAME = "noise-rank"
THRESHOLD = 0.02  # n_eig_99/d at or below this is "low rank" (docs/theory.md §5)
SATURATION = 0.25  # n_eig_99 above this share of n − 1 is limited by the sample count
EARLY = 0.2  # the early measurement: first at ≥ 20% of training (docs/theory.md §5)

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
    points = data.point_columns()
    last = points.groupby("run_id").step.max() if len(points) else pd.Series(dtype=float)
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
    """The participation ratio, U-statistic estimate where available (docs/theory.md §9: the plug-in is biased low)."""
    for key in ("participation_ratio_unbiased", "participation_ratio"):
        v = row.get(_S + key, math.nan)
        if v is not None and np.isfinite(float(v)):
            return float(v)
    return math.nan


@dataclass
class Measurement:
    """One covariance measurement: ``progress`` (fraction of training), ``f99`` = n_eig_99/d, ``pr`` (participation
    ratio, in eigenvalues)."""

    progress: float
    f99: float
    pr: float

    @classmethod
    def of(cls, row: pd.Series) -> Measurement:
        return cls(float(row.progress), float(row.f99), _pr(row))


@dataclass
class RunRank:
    """One run's late covariance measurement (its last) with its sample bound, and its early one, if any."""

    run_id: int
    lr: float
    batch_size: float
    seed: int
    n: int  # gradients per measurement
    d: int  # parameters
    bound_kind: str  # samples | dimension: which of n − 1 and d bounds the rank
    rank: int
    rank_saturated: bool
    n_eig_99: int
    capacity: float  # min(n − 1, d)/d
    sample_limited: bool
    late: Measurement
    early: Measurement | None

    @property
    def f99_change(self) -> float:
        """Late f over early f (NaN without an early measurement)."""
        e = self.early
        return self.late.f99 / e.f99 if e is not None and e.f99 > 0 else math.nan

    def row(self) -> dict[str, Any]:
        e = self.early
        return {"run_id": self.run_id, "lr": self.lr, "batch_size": self.batch_size, "seed": self.seed, "n": self.n,
                "d": self.d, "bound_kind": self.bound_kind, "rank": self.rank, "rank_saturated": self.rank_saturated,
                "n_eig_99": self.n_eig_99, "f99_late": self.late.f99, "capacity": self.capacity,
                "sample_limited": self.sample_limited, "pr_late": self.late.pr,
                "progress_early": e.progress if e else math.nan, "f99_early": e.f99 if e else math.nan,
                "f99_late_over_early": self.f99_change,
                "pr_late_over_early": self.late.pr / e.pr if e is not None and e.pr > 0 else math.nan}


@dataclass
class RankResult:
    """Every run's late f and the decision on their median (module docstring). ``measurements``: every
    covariance measurement (run, step, progress, f99, capacity, sample_limited); ``why``: the summary's closing
    clause."""

    threshold: float
    runs: list[RunRank]
    measurements: pd.DataFrame
    status: Outcome = "INCONCLUSIVE"
    why: str = ""
    missing: list[str] = field(default_factory=list)

    @property
    def statistic(self) -> float:
        """Median over runs of the late f = n_eig_99/d."""
        return float(np.median([r.late.f99 for r in self.runs]))

    def changes(self) -> list[float]:
        return [r.f99_change for r in self.runs if np.isfinite(r.f99_change)]

    def bounds(self) -> list[str]:
        return sorted({r.bound_kind for r in self.runs})

    def summary(self) -> str:
        late_f = [r.late.f99 for r in self.runs]
        changes = self.changes()
        time_text = (f"late/early f (median over {len(changes)} runs) = {np.median(changes):.3g}" if changes else
                     "change with training time not measured (one measurement per run: set "
                     "diagnostics.covariance.every_epochs)")
        return (f"Median late n_eig_99/d = {self.statistic:.3g} (τ = {self.threshold:.3g}; runs {min(late_f):.3g}–"
                f"{max(late_f):.3g}; rank bound: {'/'.join(self.bounds())}); {time_text}{self.why}")

    def details(self) -> dict[str, Any]:
        changes = self.changes()
        return {"time_change_median": float(np.median(changes)) if changes else None, "bound_kinds": self.bounds(),
                "rows": self.measurements[["run_id", "step", "progress", "f99", "capacity",
                                           "sample_limited"]].to_dict("records")}


def _run_rank(run_id: int, g: pd.DataFrame, info: pd.Series) -> RunRank:
    """Compute: the run's late (last) measurement and its early one — the first at ≥ ``EARLY`` of training before
    the last, else the first after step 0."""
    g = g.sort_values("step")
    late = g.iloc[-1]
    cand = g[(g.progress >= EARLY) & (g.step < late.step)]
    cand = cand if len(cand) else g[(g.step > 0) & (g.step < late.step)]
    return RunRank(int(run_id), float(info.lr), float(info.batch_size), int(info.seed), int(late[_S + "n"]),
                   int(late[_S + "d"]), str(late.get(_S + "bound_kind")), int(late.get(_S + "rank", -1)),
                   bool(late.get(_S + "rank_saturated", False)), int(late[_S + "n_eig_99"]), float(late.capacity),
                   bool(late.sample_limited), Measurement.of(late), Measurement.of(cand.iloc[0]) if len(cand) else None)


def _decide(res: RankResult) -> None:
    """Status, closing clause and what is missing (module docstring: Decision)."""
    threshold, runs = res.threshold, res.runs
    d_min = min(r.d for r in runs)
    if 1.0 / d_min > threshold:
        res.why = f"; with d = {d_min} one eigenvalue is already more than τ·d, so no covariance could pass."
        res.missing = [f"a larger model (d ≥ {math.ceil(1 / threshold)}) or a tolerance ≥ 1/d"]
        return
    if res.statistic > threshold:
        note = " (sample-limited values are biased low, so this stands)" if any(r.sample_limited for r in runs) else ""
        res.status, res.why = "REFUTED", ": not low-rank" + note + "."
        return
    above = [r.run_id for r in runs if r.late.f99 > threshold]
    low_limited = [r for r in runs if r.sample_limited and r.late.f99 <= threshold]
    why = []
    if above:
        why.append(f"runs {above} exceed τ while the median does not")
        res.missing.append("seeds / runs: more replicates of the configurations that disagree")
    if low_limited:
        worst = max(low_limited, key=lambda r: r.n_eig_99 / max(r.n - 1, 1))
        k = max(math.ceil(threshold * worst.d * 4) + 1, math.ceil(worst.n_eig_99 / SATURATION) + 2)
        why.append(f"{len(low_limited)} run(s) below τ are limited by the sample count (n = {worst.n}, "
                   f"n_eig_99 = {worst.n_eig_99}), so low rank is not established")
        res.missing.append(f"diagnostics.covariance.samples ≥ {k}" + (" or full_dataset = true" if worst.d <= 20_000
                                                                       else ""))
    if why:
        res.why = "; " + "; ".join(why) + "."
    else:
        res.status, res.why = "CONFIRMED", ": low-rank in every run."


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None) -> Verdict:
    """Median over runs of the late n_eig_99/d against τ (``tolerance``, default 0.02 = 2% of d, docs/theory.md §5).

    ``metric`` is not used (the statistic is fixed: 99% of the trace); sample-limited measurements cannot confirm.
    """
    threshold = THRESHOLD if tolerance is None else float(tolerance)
    tol = {"threshold_f99": threshold, "saturation_share": SATURATION, "early_progress": EARLY,
           "why": f"low rank = 99% of tr D within {threshold:.3g}·d eigenvalues (docs/theory.md §5: reported ranks "
                  f"0.3–1.8% of d); a count using > {SATURATION:g} of the n − 1 sample directions, or a sample bound "
                  f"(n − 1)/d ≤ {threshold:.3g}, is limited by the sample count (docs/theory.md §9) and cannot confirm"}
    rows = _rows(data)
    if rows.empty:
        return inconclusive(NAME, "No covariance diagnostic was recorded.",
                            ["[diagnostics.covariance] with samples = n where n − 1 ≥ 4·τ·d (or full_dataset = "
                             "true), and every_epochs for measurements at ≥ 2 times"], tolerance=tol)
    rows["sample_limited"] = [_sample_limited(r, threshold) for _, r in rows.iterrows()]
    info = data.runs.set_index("run_id")
    res = RankResult(threshold, [_run_rank(rid, g, info.loc[rid]) for rid, g in rows.groupby("run_id")], rows)
    _decide(res)
    params = {"statistic": "median over runs of late n_eig_99/d", "runs": len(res.runs)}
    return Verdict(NAME, res.status, res.summary(), res.statistic, params, tol, [r.row() for r in res.runs],
                   res.missing, res.details())


def figure(data: StudyData, verdict: Verdict) -> Any:
    """Left: late spectra (top-k eigenvalues / λ_max) per run. Right: n_eig_99/d against training progress, with
    τ and each run's sample capacity (n − 1)/d."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    rows = _rows(data)
    for run_id, group in (rows.groupby("run_id") if len(rows) else []):
        g = group.sort_values("step")
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
