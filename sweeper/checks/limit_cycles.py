"""Limit cycles / non-equilibrium SGD (docs/theory.md §5, §9; Chaudhari & Soatto 2018).

Reads the ``trajectory_stats`` diagnostic (``[diagnostics.trajectory]``): per run, statistics of the weights
projected on K fixed random directions over a window after burn-in. The decision rests on the Lévy-area test
(``summary.levy_p``): the antisymmetric part of the lag-1 cross-covariance of the projections — a probability
current, zero for a reversible (equilibrium) process — against a block sign-flip null (``levy_area_test``).

Decision (α = ``tolerance``, default 0.01; Bonferroni over the m runs with a p-value: run i rejects if
p_i ≤ α/m, so the chance that any reversible run is flagged is ≤ α):
- CONFIRMED: at least one run rejects (a significant current: SGD is out of equilibrium, the limit-cycle picture),
  and no *reversible control* rejects.
- REFUTED: no run rejects and every run has enough data — ≥ ``MIN_SAMPLES`` (2000) samples and, where the raw
  trajectory is stored, ≥ ``MIN_EFFECTIVE`` (50) effective samples T/τ_int (τ_int: integrated autocorrelation
  time of the projections, summed to the first lag where the mean ACF drops below 0.05). Power caveat: a
  non-rejection does not prove reversibility; it says that any current is below the block null's resolution,
  which shrinks only as √(τ_int/T) — a weak current needs a long stationary window (Chaudhari & Soatto used 10⁵
  epochs).
- INCONCLUSIVE: no ``trajectory_stats`` (add ``[diagnostics.trajectory]``), too little data for a REFUTED, a
  p-value at the surrogate floor 1/(1 + 999) when α/m is below it and no stored trajectory to recompute it with
  more surrogates, or a reversible control that rejects (the null is then not calibrated for this study).

Reversible controls (docs/theory.md §9): runs of the linear model on ``linreg`` without weight decay and without
``hetero`` label noise: the gradient-noise covariance at the optimum is ∝ H, so the dynamics are reversible and
must not be flagged. Recomputation: when α/m < 1/1000 and a run's stored p is at that floor, the check recomputes
the same test (lag 1, 40 blocks, seed 0) on the stored ``trajectory`` payload with ⌈20·m/α⌉ surrogates.

``metric`` picks the p-value the decision uses: ``"levy_p"`` (default, the test of docs/theory.md §9) or
``"low_freq_p"`` (excess low-frequency power of the increments against a shuffled-increment, i.e. white, null —
Chaudhari & Soatto's evidence; not a test of reversibility: any process whose increments are not white, a slow
drift included, can reject it). The other statistics (``low_freq_p``, ``acf_fraction_outside``,
``msd_exponent``) are reported in the evidence table as descriptions, not as tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sweeper.checks.base import Outcome, StudyData, Verdict, inconclusive

NAME = "limit-cycles"

ALPHA = 0.01
MIN_SAMPLES = 2000
MIN_EFFECTIVE = 50.0
METRICS = {"levy_p": 999, "low_freq_p": 199}
"""The p-values the decision may use, with the surrogate counts of the in-trial diagnostic (p floor 1/(1+n))."""
DESCRIBED = ("levy_p", "levy_z", "low_freq_p", "low_freq_ratio", "acf_fraction_outside", "msd_exponent")
"""Statistics of the diagnostic reported in the evidence as descriptions (the decision uses only ``metric``)."""
UNRESOLVED = "at floor (unresolved)"
TRAJECTORY_HINT = ("[diagnostics.trajectory] with projections = 16, every_steps = 1, start_epoch after burn-in "
                   "(the window must be stationary) and a window of ≥ 2000 samples")


def _controls(row: pd.Series) -> bool:
    """A reversible control: the linear model on linreg, no weight decay, no hetero label noise (docs/theory.md §9)."""
    cfg = row.get("config") if isinstance(row.get("config"), dict) else {}
    data, model = cfg.get("data") or {}, cfg.get("model") or {}
    dataset = data.get("name", row.get("dataset"))
    return (dataset == "linreg" and model.get("name", row.get("model")) == "linear"
            and float(data.get("hetero", 0.0) or 0.0) == 0.0 and float(row.get("weight_decay") or 0.0) == 0.0)


def _trajectory(diag: pd.DataFrame, run_id: int) -> np.ndarray | None:
    """The run's recorded projections (T, K), chunks joined in step order (None if not stored)."""
    rows = diag[(diag.run_id == run_id) & (diag.kind == "trajectory")]
    chunks = [p for p in rows.sort_values("step")["payload"] if isinstance(p, np.ndarray) and p.ndim == 2]
    if not chunks:
        return None
    arr = np.concatenate(chunks)
    _, first = np.unique(arr[:, 0], return_index=True)
    return arr[np.sort(first), 1:]


def integrated_time(traj: np.ndarray, cutoff: float = 0.05) -> float:
    """τ_int = 1 + 2 Σ_{τ≥1} ρ(τ) of the projection-averaged ACF, summed up to the first lag with ρ < cutoff."""
    from sweeper.diagnostics.trajectory import autocorrelation

    acf = autocorrelation(np.asarray(traj, float)).mean(axis=1)
    below = np.flatnonzero(acf < cutoff)
    end = int(below[0]) if len(below) else len(acf)
    return float(1.0 + 2.0 * acf[1:end].sum())


@dataclass
class RunTest:
    """One run's test: its last ``trajectory_stats`` row (``stats``), its run row (``run``; empty if unknown), the
    data behind it (``samples`` in the window, ``tau_int`` in samples, NaN without a stored trajectory) and the
    p-value the decision uses, with where it came from."""

    stats: pd.Series
    run: pd.Series
    samples: float
    tau_int: float
    p: float
    p_source: str  # stored | recomputed (n surrogates) | at floor (unresolved)
    rejects: bool = False

    @property
    def run_id(self) -> int:
        return int(self.stats.run_id)

    @property
    def control(self) -> bool:
        return bool(_controls(self.run)) if len(self.run) else False

    @property
    def effective_samples(self) -> float:
        """T/τ_int (NaN without τ_int)."""
        return self.samples / self.tau_int if self.tau_int > 0 else math.nan

    def short(self, min_samples: int, min_effective: float) -> bool:
        """Too little data for a non-rejection to count (a NaN count is not short)."""
        return self.samples < min_samples or self.effective_samples < min_effective

    def row(self) -> dict[str, Any]:
        s = self.stats
        return {"run_id": self.run_id, "trial_id": s.get("trial_id"), "dataset": self.run.get("dataset"),
                "model": self.run.get("model"), "batch_size": s.get("batch_size"), "lr": s.get("lr"),
                "weight_decay": s.get("weight_decay"), "seed": s.get("seed"), "control": self.control,
                "samples": self.samples, "tau_int": self.tau_int, "effective_samples": self.effective_samples,
                "p": self.p, "p_source": self.p_source, "rejects": self.rejects} | {
                    k: s.get(f"summary.{k}") for k in DESCRIBED}


@dataclass
class CurrentResult:
    """Every run's test at the Bonferroni threshold α/m (``threshold``; ``floor``: the stored p's surrogate floor)
    and the decision (module docstring)."""

    metric: str
    threshold: float
    floor: float
    runs: list[RunTest]
    status: Outcome = "INCONCLUSIVE"
    summary: str = ""
    missing: list[str] = field(default_factory=list)

    @property
    def statistic(self) -> float:
        """Bonferroni-adjusted smallest p, m·min p capped at 1."""
        return float(min(1.0, len(self.runs) * min(r.p for r in self.runs)))

    def details(self) -> dict[str, Any]:
        return {"rejecting_runs": [r.run_id for r in self.runs if r.rejects],
                "controls": [r.run_id for r in self.runs if r.control],
                "power_caveat": "a non-rejection does not prove reversibility: a current below the block null's "
                                "resolution, which shrinks only as √(τ_int/T), goes undetected"}


def _test_run(s: pd.Series, run: pd.Series, diag: pd.DataFrame, metric: str, floor: float,
              threshold: float) -> RunTest:
    """Compute: the run's stored p, recomputed with ⌈20/threshold⌉ surrogates from its stored trajectory when it
    sits at the floor and the threshold is below it (``levy_p`` only; else marked unresolved), and its τ_int."""
    p, source = float(s[f"summary.{metric}"]), "stored"
    traj = _trajectory(diag, int(s.run_id))
    tau = integrated_time(traj) if traj is not None and len(traj) >= 20 else math.nan
    samples = float(s.get("summary.samples", len(traj) if traj is not None else math.nan))
    if p <= floor * (1 + 1e-9) and threshold < floor:
        if metric == "levy_p" and traj is not None:
            from sweeper.diagnostics.trajectory import levy_area_test

            n_surr = math.ceil(20 / threshold)
            p = levy_area_test(traj, n_surrogates=n_surr).p_value
            source = f"recomputed ({n_surr} surrogates)"
        else:
            source = UNRESOLVED
    return RunTest(s, run, samples, tau, p, source)


def _decide(res: CurrentResult, min_samples: int, min_effective: float) -> None:
    """Each run's rejection, then the status, summary and what is missing (module docstring: Decision)."""
    threshold, metric, m = res.threshold, res.metric, len(res.runs)
    for r in res.runs:
        r.rejects = bool(r.p <= threshold and r.p_source != UNRESOLVED)
    flagged = [r for r in res.runs if r.rejects and r.control]
    signal = [r for r in res.runs if r.rejects and not r.control]
    unresolved = [r for r in res.runs if r.p_source == UNRESOLVED]
    short = [r for r in res.runs if r.short(min_samples, min_effective)]
    if flagged:
        res.summary = (f"{len(flagged)} reversible control run(s) (linreg, Σ ∝ H) reject at α/m = {threshold:.2g}: "
                       f"the null is not calibrated for this study (a window that is not stationary sweeps area too).")
        res.missing = ["a later diagnostics.trajectory.start_epoch (longer burn-in) so the window is stationary"]
    elif signal:
        res.status = "CONFIRMED"
        res.summary = (f"{len(signal)} of {m} runs show a significant probability current ({metric} ≤ α/m = "
                       f"{threshold:.2g}; Bonferroni-adjusted min p = {res.statistic:.3g}): SGD is out of equilibrium "
                       f"(limit-cycle picture).")
    elif unresolved:
        res.summary = (f"{len(unresolved)} run(s) have p at the surrogate floor {res.floor:.3g} > α/m = "
                       f"{threshold:.2g} and no stored trajectory to recompute it.")
        res.missing = ["fewer runs per study, or keep the trajectory payload (diagnostics.trajectory) so the check "
                       "can recompute p with more surrogates"]
    elif short:
        res.summary = (f"No run rejects at α/m = {threshold:.2g}, but {len(short)} run(s) have too little data to "
                       f"rule a current out (< {min_samples} samples or < {min_effective:g} effective samples).")
        res.missing = ["a longer trajectory window: more budget after diagnostics.trajectory.start_epoch, "
                       "every_steps = 1"]
    else:
        res.status = "REFUTED"
        counted = [r.samples for r in res.runs if np.isfinite(r.samples)]  # none when only stored p-values are used
        over = f" over ≥ {min(counted):.0f} samples per run" if counted else ""
        res.summary = (f"No run shows a probability current ({metric} > α/m = {threshold:.2g} for all {m}; "
                       f"Bonferroni-adjusted min p = {res.statistic:.3g}){over}: consistent with reversible "
                       f"(equilibrium) dynamics. Power caveat: a current below the null's resolution (∝ √(τ_int/T)) "
                       f"would go undetected.")


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None,
          min_samples: int = MIN_SAMPLES, min_effective: float = MIN_EFFECTIVE) -> Verdict:
    """Is there a significant probability current in any run's weight trajectory? (module docstring: rules).

    ``metric``: ``"levy_p"`` (default) or ``"low_freq_p"``; ``tolerance``: α (default 0.01, Bonferroni over
    runs); ``min_samples``/``min_effective``: the data a REFUTED needs (defaults 2000 samples, 50 effective).
    """
    metric = metric or "levy_p"
    if metric not in METRICS:
        raise ValueError(f"limit-cycles metric must be one of {sorted(METRICS)}, got {metric!r}")
    alpha = ALPHA if tolerance is None else float(tolerance)
    floor = 1.0 / (1 + METRICS[metric])
    params = {"metric": metric, "alpha": alpha, "min_samples": min_samples, "min_effective": min_effective}
    diag = data.diagnostics
    col = f"summary.{metric}"
    stats = diag[diag.kind == "trajectory_stats"] if "kind" in diag else diag.iloc[:0]
    if stats.empty or col not in stats or not np.isfinite(stats[col].astype(float)).any():
        return inconclusive(NAME, "No trajectory diagnostic (trajectory_stats) was recorded.", [TRAJECTORY_HINT],
                            parameters=params)
    stats = stats[np.isfinite(stats[col].astype(float))].sort_values("step").groupby("run_id").tail(1)
    runs = data.runs.set_index("run_id")
    m = len(stats)
    threshold = alpha / m
    tolerance_info = {"alpha": alpha, "bonferroni_threshold": threshold, "runs": m, "p_floor": floor,
                      "min_samples": min_samples, "min_effective": min_effective,
                      "why": f"family-wise α = {alpha:g} over {m} runs (Bonferroni): a reversible run is flagged "
                             f"with probability ≤ α; REFUTED needs ≥ {min_samples} samples and ≥ {min_effective:g} "
                             f"effective samples per run (40 null blocks longer than the correlation time)"}
    unknown = pd.Series(dtype=object)
    tests = [_test_run(s, runs.loc[int(s.run_id)] if int(s.run_id) in runs.index else unknown, diag, metric, floor,
                       threshold) for _, s in stats.iterrows()]
    res = CurrentResult(metric, threshold, floor, tests)
    _decide(res, min_samples, min_effective)
    return Verdict(NAME, res.status, res.summary, res.statistic, params, tolerance_info, [r.row() for r in tests],
                   res.missing, res.details())


def figure(data: StudyData, verdict: Verdict) -> Any:
    """(a) −log10 p per run against the Bonferroni threshold (controls marked); (b) the first two projections of
    the run with the smallest p (a loop, if the current is strong), when its trajectory is stored."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ev = pd.DataFrame(verdict.evidence)
    if not ev.empty:
        x = np.arange(len(ev))
        logp = -np.log10(ev.p.astype(float).clip(lower=1e-300))
        ax1.scatter(x[~ev.control], logp[~ev.control], label="runs")
        if ev.control.any():
            ax1.scatter(x[ev.control], logp[ev.control], marker="s", label="reversible controls")
        ax1.axhline(-math.log10(verdict.tolerance["bonferroni_threshold"]), color="r", ls="--", label="α/m")
        ax1.set_xticks(x, [str(r) for r in ev.run_id], fontsize=6)
        ax1.legend(fontsize=7)
        best = int(ev.run_id[ev.p.astype(float).idxmin()])
        traj = _trajectory(data.diagnostics, best)
        if traj is not None and traj.shape[1] >= 2:
            ax2.plot(traj[:, 0], traj[:, 1], lw=0.3)
            ax2.set(xlabel="projection 1", ylabel="projection 2", title=f"run {best}")
    ax1.set(xlabel="run", ylabel=f"−log10 {verdict.parameters.get('metric', 'levy_p')}", title="Lévy-area test")
    fig.suptitle(f"limit-cycles: {verdict.verdict}")
    return fig
