"""Scaling paths: runs grouped by their base settings (the rule undone), each κ compared with the baseline at
equal time — the comparison behind ``lsr``, ``sqrt-rule`` (and its linear control arm) and ``nsr``.

Compute: ``compare_path`` cuts the common time range of the path's completed runs into K windows and compares every
κ with the baseline (κ = 1, else the smallest κ) window by window (``windows.compare``: seed-paired difference
curves, autocorrelation-aware within-run errors, seeds combined with the path's overdispersion φ).
Decide: a κ *fails* if one of its runs diverged (status ``diverged``, set by the trial) or a window fails (Holm over
every window of the path at α); it *holds* if every window's equivalence test passes (level α); else it is
*unresolved*, and the power analysis says how many seeds would decide it. The path is REFUTED if a κ fails,
CONFIRMED if every κ holds, else INCONCLUSIVE; its statistic is the largest κ that holds with no failing κ below.
Present: evidence rows per κ and per window, ``describe`` (one clause), ``verdict`` and ``figure_paths``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sweeper.checks.base import Verdict, inconclusive
from sweeper.checks.defaults import ALPHA, SEEDS_HINT, WINDOWS
from sweeper.checks.stats import Overdispersion
from sweeper.checks.windows import Comparison, Curves, Group, compare, decide

CLIP = 6.0  # the figure's Δ/τ axis is clipped here
MAX_SEEDS = 1000  # a power analysis asking for more says the difference sits at the tolerance


def _num(x: Any) -> float:
    return math.nan if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def base_settings(run: pd.Series, rule: str) -> dict[str, Any]:
    """The run's settings with the scaling rule undone (B0, η0, β, ε at κ = 1), rounded so float noise groups."""
    kappa = float(run.kappa)
    r = lambda v: float(f"{v:.6g}") if math.isfinite(v) else None  # noqa: E731
    lr_scale = kappa if rule == "linear" else math.sqrt(kappa)
    beta = (lambda b: 1.0 - (1.0 - b) / kappa) if rule == "sqrt" else (lambda b: b)
    eps_scale = math.sqrt(kappa) if rule == "sqrt" else 1.0
    get = lambda k: _num(run.get(k)) if k in run else math.nan  # noqa: E731
    config = run.get("config") if isinstance(run.get("config"), dict) else {}
    scaling = config.get("scaling") or {}
    b0 = _num(scaling.get("base_batch_size", float(run.batch_size) / kappa))
    lr0 = _num(scaling.get("base_lr", float(run.lr) / lr_scale))
    return {"optimizer": str(run.get("optimizer") or "sgd"), "base_batch_size": r(b0), "base_lr": r(lr0),
            "weight_decay": r(get("weight_decay")) or 0.0, "svag_l": r(get("svag_l")) or 1.0,
            "momentum": r(get("momentum")), "beta1": r(beta(get("beta1"))), "beta2": r(beta(get("beta2"))),
            "eps": r(get("eps") * eps_scale)}


def paths(runs: pd.DataFrame, rule: str) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """The runs of ``rule`` split into scaling paths (same base settings), sorted by their base settings."""
    runs = runs[(runs.scaling_rule == rule) & runs.kappa.notna()]
    if runs.empty:
        return []
    keys = [tuple(sorted(base_settings(row, rule).items())) for _, row in runs.iterrows()]
    out = []
    for key in sorted(set(keys), key=str):
        mask = np.array([k == key for k in keys])
        out.append((dict(key), runs[mask]))
    return out


@dataclass
class KappaResult:
    """One κ of a path against the baseline."""

    kappa: float
    batch_size: float
    lr: float
    seeds: int
    diverged: int
    status: str  # baseline | holds | fails | unresolved
    why: str = ""
    comparison: Comparison | None = None
    seeds_needed: float = math.nan
    final: float = math.nan  # seed-mean metric over the last window

    def row(self, arm: str, path: str, metric: str) -> dict[str, Any]:
        out: dict[str, Any] = {"arm": arm, "path": path, "kappa": self.kappa, "batch_size": self.batch_size,
                               "lr": self.lr, "seeds": self.seeds, "diverged": self.diverged, "status": self.status}
        out[f"final_{metric}"] = self.final
        c = self.comparison
        if c is not None and c.windows:
            last, worst = c.windows[-1], c.worst()
            out |= {"why": self.why, "final_diff": last.diff.value, "final_halfwidth": last.decision.halfwidth,
                    "final_tolerance": last.tolerance, "worst_window": worst.window, "paired": c.paired}
        elif self.why:
            out["why"] = self.why
        if math.isfinite(self.seeds_needed):
            out["seeds_needed"] = int(self.seeds_needed)
        return out


@dataclass
class PathResult:
    """One scaling path compared κ by κ with its baseline at equal time (module docstring)."""

    arm: str
    rule: str
    axis: str
    metric: str
    base: dict[str, Any]
    baseline_kappa: float
    edges: list[float] = field(default_factory=list)
    kappas: list[KappaResult] = field(default_factory=list)
    run_ids: dict[float, list[int]] = field(default_factory=dict)
    overdispersion: Overdispersion = field(default_factory=lambda: Overdispersion(math.nan, 0))
    status: str = "INCONCLUSIVE"
    largest_holding: float = math.nan
    first_failing: float | None = None
    missing: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def label(self) -> str:
        b = self.base
        return (f"{b['optimizer']} B0={b['base_batch_size']:g} lr0={b['base_lr']:g} wd={b['weight_decay']:g} "
                f"l={b['svag_l']:g}")

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Evidence: one row per κ."""
        return [k.row(self.arm, self.label, self.metric) for k in self.kappas]

    def window_rows(self) -> list[dict[str, Any]]:
        return [{"arm": self.arm, "path": self.label, "kappa": k.kappa, "paired": k.comparison.paired} | w.row()
                for k in self.kappas if k.comparison is not None for w in k.comparison.windows]

    def as_json(self) -> dict[str, Any]:
        return {"arm": self.arm, "rule": self.rule, "axis": self.axis, "metric": self.metric, "base": self.base,
                "label": self.label, "baseline_kappa": self.baseline_kappa, "edges": self.edges,
                "runs": [{"kappa": k, "run_ids": ids} for k, ids in self.run_ids.items()],
                "windows": self.window_rows(), "status": self.status, "largest_holding": self.largest_holding,
                "first_failing": self.first_failing, "note": self.note,
                "overdispersion": {"phi": self.overdispersion.phi, "df": self.overdispersion.df,
                                   "factor": self.overdispersion.factor}}


def compare_path(curves: Curves, runs: pd.DataFrame, base: dict[str, Any], *, arm: str, rule: str,
                 relative: float, windows: int = WINDOWS, alpha: float = ALPHA) -> PathResult:
    """Compare every κ of one path (``runs``: its finished runs, all κ) with its baseline on ``curves`` (the
    study's curves of the compared metric on the path's time axis)."""
    metric, axis = curves.metric, curves.axis
    rows = runs[["run_id", "kappa", "status", "batch_size", "lr", "seed"]].to_dict("records")  # the path's few runs
    kappa_of = np.array([float(r["kappa"]) for r in rows])
    kappas = sorted(set(kappa_of.tolist()))
    base_kappa = 1.0 if any(math.isclose(k, 1.0) for k in kappas) else kappas[0]
    out = PathResult(arm, rule, axis, metric, base, base_kappa)
    by_kappa = {k: [rows[i] for i in np.flatnonzero(np.isclose(kappa_of, k))] for k in kappas}
    out.run_ids = {k: [int(r["run_id"]) for r in g] for k, g in by_kappa.items()}
    diverged = {k: sum(r["status"] == "diverged" for r in g) for k, g in by_kappa.items()}
    completed = {k: Group.of([r for r in g if r["status"] == "completed"]) for k, g in by_kappa.items()}
    if diverged[base_kappa]:
        out.note = f"the baseline κ = {base_kappa:g} diverged"
        out.missing = [f"sweep.lr: a smaller base learning rate (the κ = {base_kappa:g} baseline diverged)"]
        return out
    if not completed[base_kappa].run_ids:
        out.note = f"the baseline κ = {base_kappa:g} has no completed run"
        out.missing = [SEEDS_HINT]
        return out
    if len(kappas) < 2:
        out.note = "the path has a single κ"
        out.missing = ["scaling.factors: at least two κ, including 1, e.g. factors = [1, 2, 4, 8]"]
        return out
    t_end = float(np.nanmin([curves.end(r) for g in completed.values() for r in g.run_ids]))
    if not t_end > 0:
        out.note = f"the runs have no points past {axis} = 0"
        out.missing = ["budget: a longer budget (no points past time 0)"]
        return out
    edges = np.linspace(0.0, t_end, windows + 1)
    out.edges = edges.tolist()
    base_group = completed[base_kappa]
    results: list[KappaResult] = []
    for k in kappas:
        first = by_kappa[k][0]
        res = KappaResult(k, float(first["batch_size"]), float(first["lr"]), len(completed[k].run_ids), diverged[k],
                          "baseline" if k == base_kappa else "unresolved")
        if k != base_kappa and not res.diverged and completed[k].run_ids:
            res.comparison = compare(curves, base_group, completed[k], edges)
        results.append(res)
    out.overdispersion = decide([r.comparison for r in results if r.comparison], edges, relative, alpha)
    for r in results:
        _judge_kappa(r, len(by_kappa[r.kappa]), alpha)
        final = [curves.window_mean(i, edges[-2], edges[-1]) for i in out.run_ids[r.kappa]]
        r.final = float(np.nanmean(final)) if np.isfinite(final).any() else math.nan
    out.kappas = results
    _summarise(out, len(base_group.seeds))
    return out


def _judge_kappa(r: KappaResult, n_runs: int, alpha: float) -> None:
    if r.status == "baseline":
        return
    if r.diverged:
        r.status, r.why = "fails", f"{r.diverged} of {n_runs} run(s) diverged"
        return
    c = r.comparison
    if c is None:
        r.why = "no completed run"
        return
    r.status = c.status
    if r.status == "fails" and c.joint is not None and not any(w.fails for w in c.windows):
        r.why = (f"the difference averages {c.joint.value:+.3g} ± {c.joint.se:.2g} tolerances over the windows "
                 f"(beyond 1: Holm-adjusted p < α)")
    elif r.status == "fails":
        w = next(w for w in c.windows if w.fails)
        r.why = (f"window {w.window} differs by {w.diff.value:+.4g} ± {w.decision.halfwidth:.3g} (tolerance "
                 f"{w.tolerance:.3g}, Holm-adjusted p < α)")
    elif r.status == "holds":
        w = c.worst()
        r.why = (f"every window within tolerance (closest: window {w.window}, |Δ| + h = "
                 f"{abs(w.diff.value) + w.decision.halfwidth:.3g} ≤ {w.tolerance:.3g})")
    else:
        w = c.worst()
        r.seeds_needed = c.seeds_needed(alpha)
        r.why = (f"window {w.window}: |Δ| = {abs(w.diff.value):.3g} with allowance {w.decision.halfwidth:.3g} "
                 f"against tolerance {w.tolerance:.3g}")


def _summarise(out: PathResult, n_seeds: int) -> None:
    above = [r for r in out.kappas if r.kappa > out.baseline_kappa]
    out.largest_holding = out.baseline_kappa
    for r in above:
        if r.status == "fails" and out.first_failing is None:
            out.first_failing = r.kappa
        if r.status == "holds" and out.first_failing is None:
            out.largest_holding = r.kappa
    statuses = [r.status for r in out.kappas if r.status != "baseline"]
    if "fails" in statuses:
        out.status = "REFUTED"
    elif statuses and all(s == "holds" for s in statuses):
        out.status = "CONFIRMED"
    else:
        out.status = "INCONCLUSIVE"
        open_ = [r for r in out.kappas if r.status == "unresolved"]
        out.note = f"κ = {', '.join(f'{r.kappa:g}' for r in open_)} neither within nor beyond the tolerance yet"
        out.missing = [seeds_hint(max((r.seeds_needed for r in open_), default=math.nan), n_seeds,
                                  ", ".join(f"{r.kappa:g}" for r in open_))]


def seeds_hint(needed: float, have: int, what: str) -> str:
    """What to add, from a power analysis (80% power at level α)."""
    if not math.isfinite(needed) or needed > MAX_SEEDS:
        return (f"the difference at {what} sits at the tolerance: no feasible number of seeds decides it; state the "
                f"tolerance you need (--tolerance)")
    return (f"seeds: about {max(int(needed), have + 1)} per setting (have {have}; power analysis at 80% power) to "
            f"decide {what}")


def describe(result: PathResult) -> str:
    """One clause on a path's outcome."""
    b0 = result.base["base_batch_size"]
    holds = f"holds up to κ = {result.largest_holding:g} (B = {result.largest_holding * b0:g})"
    if result.status == "CONFIRMED":
        return f"{holds}, every κ of the path"
    if result.status == "REFUTED":
        bad = next((r for r in result.kappas if r.kappa == result.first_failing), None) or \
            next(r for r in result.kappas if r.status == "fails")
        return f"{holds}; fails at κ = {bad.kappa:g} (B = {bad.batch_size:g}): {bad.why}"
    return f"{holds} so far; {result.note}" if result.kappas else result.note


def verdict(name: str, results: list[PathResult], *, headline: str, tolerance: dict[str, Any],
            parameters: dict[str, Any], extra_evidence: list[dict[str, Any]] | None = None,
            extra_details: dict[str, Any] | None = None, suffix: str = "") -> Verdict:
    """One verdict from the main arm's paths: REFUTED if one is refuted, else INCONCLUSIVE if one is, else
    CONFIRMED; the statistic is the smallest largest-holding κ of the decided paths."""
    evidence = [r for p in results for r in p.rows] + (extra_evidence or [])
    details = {"paths": [p.as_json() for p in results]} | (extra_details or {})
    statuses = [p.status for p in results]
    clauses = "; ".join((f"[{p.label}] " if len(results) > 1 else "") + describe(p) for p in results)
    text = f"{headline}: {clauses}{suffix}."
    decided = [p.largest_holding for p in results if p.kappas and p.status != "INCONCLUSIVE"]
    stat = min(decided) if decided else None
    if "REFUTED" in statuses:
        return Verdict(name, "REFUTED", text, stat, parameters, tolerance, evidence, details=details)
    if "INCONCLUSIVE" in statuses:
        missing = sorted({m for p in results for m in p.missing}) or [SEEDS_HINT]
        return inconclusive(name, text, missing, statistic=stat, parameters=parameters, tolerance=tolerance,
                            evidence=evidence, details=details)
    return Verdict(name, "CONFIRMED", text, stat, parameters, tolerance, evidence, details=details)


def figure_paths(data: Any, verdict_: Verdict, title: str) -> Any:
    """Top: seed-mean metric against the path's time axis, one curve per κ (first path of each arm). Bottom: each
    window's Δ/τ with its allowance h/τ as error bar; |Δ/τ| ≤ 1 is within tolerance."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    shown: dict[str, dict[str, Any]] = {}  # the first path of each arm
    for p in verdict_.details.get("paths", []) + verdict_.details.get("control", []):
        shown.setdefault(p["arm"], p)
    fig = Figure(figsize=(9, 7))
    top, bottom = fig.subplots(2, 1)
    cmap = colormaps["viridis"]
    main = next(iter(shown.values()), None)
    if main and main["edges"]:
        _plot_curves(top, data, main, title, cmap)
    _plot_windows(bottom, shown, verdict_, cmap)
    fig.tight_layout()
    return fig


def _plot_curves(ax: Any, data: Any, path: dict[str, Any], title: str, cmap: Any) -> None:
    """The seed-mean metric of each κ of ``path`` against its time axis, window edges dotted, y range the
    baseline's (so that a diverging κ does not flatten the rest)."""
    curves = Curves(data.points, path["metric"], path["axis"])
    n = len(path["runs"])
    for j, entry in enumerate(path["runs"]):
        curve = curves.seed_mean(entry["run_ids"])
        if curve is None:
            continue
        width = 2.5 if entry["kappa"] == path["baseline_kappa"] else 1.2
        ax.plot(*curve, color=cmap(j / max(1, n - 1)), lw=width, label=f"κ = {entry['kappa']:g}")
    base_ids: list[int] = next((e["run_ids"] for e in path["runs"] if e["kappa"] == path["baseline_kappa"]), [])
    base_y = data.points.loc[data.points.run_id.isin(base_ids), path["metric"]].astype(float)
    base_y = base_y[np.isfinite(base_y)]
    if len(base_y):
        lo, hi = float(base_y.min()), float(base_y.max())
        pad = 0.25 * (hi - lo) if hi > lo else 0.1 * abs(hi) or 1.0
        ax.set_ylim(lo - pad, hi + pad)
    for e in path["edges"][1:-1]:
        ax.axvline(e, color="grey", lw=0.5, ls=":")
    ax.set(xlabel=path["axis"], ylabel=path["metric"], title=f"{title} — {path['label']} ({path['arm']})")
    ax.legend(fontsize=7, ncol=2)


def _plot_windows(ax: Any, shown: dict[str, dict[str, Any]], verdict_: Verdict, cmap: Any) -> None:
    """Each window's Δ/τ (clipped at ±CLIP) with its one-sided allowance h/τ, per arm and κ; the band |Δ/τ| ≤ 1."""
    markers = {"linear": "o", "sqrt": "s"}
    first_arm = next(iter(shown), None)
    for arm, p in shown.items():
        rows = pd.DataFrame(p["windows"])
        if rows.empty:
            continue
        kappas = sorted(rows.kappa.unique())
        for j, k in enumerate(kappas):
            w = rows[rows.kappa == k]
            scale = w.tolerance.replace(0, np.nan)
            x = w.window + (j - len(kappas) / 2) * 0.06
            y, err = (w["diff"] / scale).clip(-CLIP, CLIP), (w.halfwidth / scale).clip(upper=CLIP)
            ax.errorbar(x, y, yerr=err, fmt=markers.get(p["rule"], "o"), color=cmap(j / max(1, len(kappas) - 1)),
                        mfc="none" if arm != first_arm else None, label=f"{arm} κ = {k:g}", capsize=2)
    for r in verdict_.evidence:
        if r.get("diverged") and r.get("status") == "fails":
            ax.text(0.01, 0.97, f"κ = {r['kappa']:g} diverged", transform=ax.transAxes, fontsize=8,
                    color="red", ha="left", va="top")
    lo, hi = ax.get_ylim()
    ax.set_ylim(max(lo, -CLIP - 0.5), min(hi, CLIP + 0.5))
    ax.axhspan(-1, 1, color="green", alpha=0.08)
    ax.axhline(0, color="black", lw=0.5)
    ax.set(xlabel="window of equal time (last = final)", ylabel=f"Δ / tolerance (clipped at ±{CLIP:g})",
           title=f"{verdict_.check}: {verdict_.verdict} (band: within tolerance; bars: one-sided allowance)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=3)
