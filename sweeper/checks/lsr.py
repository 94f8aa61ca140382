"""``lsr``: the linear scaling rule for SGD (THEORY.md §1): B → κB, η → κη leaves the SDE, hence the trajectory at
equal SDE time t = Σ η_t/l, unchanged. This module also holds the path comparison that ``sqrt-rule`` reuses on
the square-root path (same logic, different rule and time axis).

Paths. Runs are grouped by their *base* settings (B0 = B/κ, η0, λ, l, optimizer settings undone by the rule), so
each group is one scaling path with κ varying and seeds replicating. The baseline is κ = 1 (the smallest κ if the
path has no κ = 1).

Statistic (per path, per κ). The common time range [0, T] of the path's non-diverged finished runs (T: the
shortest) is cut into K equal windows (default 5); each run's metric (default ``test_loss``) is averaged over
each window exactly (time average of its logged piecewise-linear curve), so runs are compared at equal SDE time
over the whole trajectory, the last window being the "final" value. In window k, Δ_k = mean_κ − mean_1, with
standard error from seed replicates: paired by seed when both κ hold the same seeds (same initialisation; SE =
SD of per-seed differences/√n, df = n − 1), else Welch. Pairs are independent across seeds, so the paired test is
valid whatever the coupling within a seed (with sampling with replacement a κ run's batches are largely the
baseline's, concatenated: common random numbers, which is why paired allowances come out small).

Tolerance. τ_k = r·|mean_1,k| with r = ``tolerance`` (default 5%): a quarter of the 20% failure line of THEORY.md
§2 (test error ≥ 1.2 × baseline), so "holds" is well clear of what the theory calls failure, and wide enough for
what the references count as holding (Goyal et al., §7: 23.60 → 23.74% top-1 error at 8k, 0.6% relative;
Malladi et al., §3: within 3 points of ≈ 90% accuracy). Seed noise enters as the interval half-width
h_k = t_{1−α/(2K), df}·SE_k (α = 5% per κ, Bonferroni over the K windows; Student t because seeds are few).

Decision per κ: *fails* if any of its runs diverged (an outcome: the rule failed; a run whose metric grew past
1000× the baseline's largest value counts as diverged, since the loop flags only non-finite losses and a geometric
blow-up can end the budget still finite, with seed-to-seed spreads no t interval resolves) or |Δ_k| − h_k > τ_k in
some window (the difference is beyond the tolerance even allowing for seed noise); *holds* if |Δ_k| + h_k ≤ τ_k in
every window (equivalence shown); otherwise *unresolved*. Verdict: CONFIRMED if every κ holds, REFUTED if some κ
fails, else INCONCLUSIVE (naming more seeds). Statistic: the largest κ that holds with no failing κ below it (the
largest batch κ·B0 for which the rule holds); a study of several paths reports the smallest such κ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sweeper.checks.base import StudyData, Verdict, inconclusive
from sweeper.checks.stats import contrast, value_at, window_means

NAME = "lsr"
METRIC = "test_loss"
RELATIVE = 0.05  # τ = 5% of the κ = 1 metric (see the module docstring for why)
WINDOWS = 5  # equal windows of SDE time compared (the last is the "final" value)
ALPHA = 0.05  # family-wise error per κ, Bonferroni over the windows
CLIP = 6.0  # the figure's Δ/τ axis is clipped here
BLOWUP = 1e3  # a metric beyond this × the baseline's largest |value| counts as diverged
ADAPTIVE = ("adam", "rmsprop")
SEEDS_HINT = "seeds = [0, 1, 2, 3, 4] (≥ 2 seeds per κ; the noise allowance is sized from seed replicates)"

TOLERANCE_WHY = (
    "τ_k = r·|metric at κ = 1 in window k|, r = {r:g}: a quarter of THEORY §2's failure line (error ≥ 1.2× "
    "baseline) and wider than what the references count as holding (Goyal: 0.6% relative at 8k; sqrt rule: "
    "within 3 points of accuracy). Seed noise adds h_k = t(1 − α/(2K), df)·SE_k, SE from seed replicates "
    "(paired by seed when the seeds match), α = {a:g} per κ, K = {k} windows (Bonferroni). holds: |Δ|+h ≤ τ in "
    "every window; fails: |Δ|−h > τ in some window, or a run diverged."
)


@dataclass
class PathResult:
    """One scaling path compared κ by κ with its baseline at equal time (see the module docstring)."""

    arm: str
    rule: str
    axis: str
    metric: str
    base: dict[str, Any]
    baseline_kappa: float
    edges: list[float] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)  # {"kappa", "run_ids"}
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per κ
    windows: list[dict[str, Any]] = field(default_factory=list)  # one per (κ, window)
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

    def as_json(self) -> dict[str, Any]:
        return {"arm": self.arm, "rule": self.rule, "axis": self.axis, "metric": self.metric, "base": self.base,
                "label": self.label, "baseline_kappa": self.baseline_kappa, "edges": self.edges,
                "runs": self.runs, "windows": self.windows, "status": self.status,
                "largest_holding": self.largest_holding, "first_failing": self.first_failing, "note": self.note}


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
            "weight_decay": r(get("weight_decay")) or 0.0, "svag_l": r(get("svag_l")) or 1.0, "momentum": r(get("momentum")), "beta1": r(beta(get("beta1"))),
            "beta2": r(beta(get("beta2"))), "eps": r(get("eps") * eps_scale)}


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


def compare_path(points: pd.DataFrame, runs: pd.DataFrame, base: dict[str, Any], *, arm: str, rule: str,
                 metric: str, relative: float, axis: str, windows: int = WINDOWS,
                 alpha: float = ALPHA) -> PathResult:
    """Compare every κ of one path (``runs``: finished runs, all κ) with its baseline on ``axis`` (module doc)."""
    kappas = sorted(float(k) for k in runs.kappa.unique())
    base_kappa = 1.0 if any(math.isclose(k, 1.0) for k in kappas) else kappas[0]
    out = PathResult(arm, rule, axis, metric, base, base_kappa)
    by_kappa = {k: runs[np.isclose(runs.kappa.astype(float), k)] for k in kappas}
    out.runs = [{"kappa": k, "run_ids": [int(r) for r in g.run_id]} for k, g in by_kappa.items()]
    baseline = by_kappa[base_kappa]
    ok_base = baseline[baseline.status == "completed"]
    if (baseline.status == "diverged").any():
        out.note = f"the baseline κ = {base_kappa:g} diverged"
        out.missing = [f"sweep.lr: a smaller base learning rate (the κ = {base_kappa:g} baseline diverged)"]
        return out
    if len(ok_base) < 2:
        out.note = f"the baseline κ = {base_kappa:g} has {len(ok_base)} finished seed(s); at least 2 are needed"
        out.missing = [SEEDS_HINT]
        return out
    if len(kappas) < 2:
        out.note = "the path has a single κ"
        out.missing = ["scaling.factors: at least two κ, including 1, e.g. factors = [1, 2, 4, 8]"]
        return out
    completed = runs[runs.status == "completed"]
    ends = [points.loc[points.run_id == r, axis].max() for r in completed.run_id]
    t_end = float(np.nanmin(ends))
    if not t_end > 0:
        out.note = f"the runs have no points past {axis} = 0"
        out.missing = ["budget: a longer budget (no points past time 0)"]
        return out
    edges = np.linspace(0.0, t_end, windows + 1)
    out.edges = edges.tolist()

    def means(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        ok = group[group.status == "completed"]
        rows = [window_means(points, int(r), metric, edges, axis) for r in ok.run_id]
        return np.array(rows).reshape(-1, windows), ok.seed.to_numpy()

    base_means, base_seeds = means(baseline)
    scale = float(points.loc[points.run_id.isin(ok_base.run_id), metric].astype(float).abs().max())
    base_level = np.nanmean(base_means, axis=0)
    tol = relative * np.abs(base_level)
    seeds_short = False
    for k in kappas:
        group = by_kappa[k]
        row: dict[str, Any] = {"arm": arm, "path": out.label, "kappa": k, "batch_size": float(group.batch_size.iloc[0]),
                               "lr": float(group.lr.iloc[0]), "seeds": int((group.status == "completed").sum()),
                               "diverged": int((group.status == "diverged").sum())}
        blown = blown_up(points, group[group.status == "completed"].run_id, metric, scale) if k != base_kappa else set()
        if k == base_kappa:
            out.rows.append(row | {"status": "baseline", f"final_{metric}": float(base_level[-1])})
            continue
        kmeans, kseeds = means(group)
        stats = [contrast(base_means[:, i], kmeans[:, i], base_seeds, kseeds) for i in range(windows)]
        calls = [c.decide(float(tol[i]), alpha, windows) for i, c in enumerate(stats)]
        for i, (c, call) in enumerate(zip(stats, calls)):
            out.windows.append({"arm": arm, "path": out.label, "kappa": k, "window": i + 1,
                                "t_from": float(edges[i]), "t_to": float(edges[i + 1]), "base": float(base_level[i]),
                                "diff": c.diff, "se": c.se, "df": c.df, "halfwidth": c.halfwidth(alpha, windows),
                                "tolerance": float(tol[i]), "paired": c.paired, "call": call})
        excess = [(abs(c.diff) + c.halfwidth(alpha, windows)) / t if t > 0 else math.inf
                  for c, t in zip(stats, tol)]
        worst = int(np.nanargmax(excess)) if np.isfinite(np.nan_to_num(excess, nan=-1)).any() else windows - 1
        if row["diverged"] or blown:
            row["diverged"] += len(blown)
            status, why = "fails", f"{row['diverged']} of {len(group)} run(s) diverged" + (
                f" ({len(blown)} still finite but past {BLOWUP:g}× the baseline's largest {metric})" if blown else "")
        elif "fails" in calls:
            i = calls.index("fails")
            h = stats[i].halfwidth(alpha, windows)
            status, why = "fails", f"window {i + 1} differs by {stats[i].diff:+.4g} ± {h:.3g} (tolerance {tol[i]:.3g})"
        elif all(c == "holds" for c in calls):
            status, why = "holds", f"every window within tolerance (worst: window {worst + 1})"
        else:
            status = "unresolved"
            why = (f"window {worst + 1}: |Δ| = {abs(stats[worst].diff):.3g} with seed-noise allowance "
                   f"{stats[worst].halfwidth(alpha, windows):.3g} against tolerance {tol[worst]:.3g}")
            seeds_short = True
        final = stats[-1]
        out.rows.append(row | {"status": status, "why": why, f"final_{metric}": float(np.nanmean(kmeans[:, -1]))
                               if kmeans.size and np.isfinite(kmeans[:, -1]).any() else math.nan,
                               "final_diff": final.diff, "final_halfwidth": final.halfwidth(alpha, windows),
                               "final_tolerance": float(tol[-1]), "worst_window": worst + 1,
                               "worst_over_tolerance": float(excess[worst])})
    above = [r for r in out.rows if r["kappa"] > base_kappa]
    out.largest_holding = base_kappa
    for r in above:
        if r["status"] == "fails" and out.first_failing is None:
            out.first_failing = r["kappa"]
        if r["status"] == "holds" and out.first_failing is None:
            out.largest_holding = r["kappa"]
    statuses = [r["status"] for r in out.rows if r["status"] != "baseline"]
    if "fails" in statuses:
        out.status = "REFUTED"
    elif all(s == "holds" for s in statuses):
        out.status = "CONFIRMED"
    else:
        out.status = "INCONCLUSIVE"
        unresolved = [f"{r['kappa']:g}" for r in out.rows if r["status"] == "unresolved"]
        out.note = f"κ = {', '.join(unresolved)} neither within nor beyond the tolerance at this seed noise"
        if seeds_short:
            out.missing = [f"seeds: more seeds than {len(ok_base)} (the allowance shrinks as t/√n), or a longer "
                           f"budget so each window averages more of the trajectory, to resolve κ = "
                           f"{', '.join(unresolved)}"]
    return out


def blown_up(points: pd.DataFrame, run_ids: Any, metric: str, scale: float) -> set[int]:
    """Runs whose |metric| exceeded BLOWUP × ``scale`` at some point (diverging, though still finite)."""
    pts = points[points.run_id.isin(list(run_ids))]
    peak = pts.assign(_a=pts[metric].astype(float).abs()).groupby("run_id")["_a"].max()
    return {int(r) for r, v in peak.items() if v > BLOWUP * scale}


def metric_or_none(points: pd.DataFrame, metric: str | None) -> tuple[str, str | None]:
    """The metric to compare and, if it cannot be used, why."""
    name = metric or METRIC
    if name not in points.columns:
        return name, f"unknown metric {name!r}"
    if not points[name].astype(float).notna().any():
        return name, f"metric {name!r} is not recorded in this study"
    return name, None


def describe(result: PathResult) -> str:
    """One clause on a path's outcome."""
    b0 = result.base["base_batch_size"]
    holds = f"holds up to κ = {result.largest_holding:g} (B = {result.largest_holding * b0:g})"
    if result.status == "CONFIRMED":
        return f"{holds}, every κ of the path"
    if result.status == "REFUTED":
        bad = next(r for r in result.rows if r["kappa"] == result.first_failing) if result.first_failing else \
            next(r for r in result.rows if r["status"] == "fails")
        return f"{holds}; fails at κ = {bad['kappa']:g} (B = {bad['batch_size']:g}): {bad['why']}"
    return f"{holds} so far; {result.note}" if result.rows else result.note


def combine(name: str, results: list[PathResult], *, headline: str, tolerance: dict[str, Any],
            parameters: dict[str, Any], extra_evidence: list[dict[str, Any]] | None = None,
            extra_details: dict[str, Any] | None = None, suffix: str = "") -> Verdict:
    """One verdict from the main arm's paths: REFUTED if one is refuted, else INCONCLUSIVE if one is, else
    CONFIRMED; the statistic is the smallest largest-holding κ of the decided paths."""
    evidence = [r for p in results for r in p.rows] + (extra_evidence or [])
    details = {"paths": [p.as_json() for p in results]} | (extra_details or {})
    statuses = [p.status for p in results]
    clauses = "; ".join((f"[{p.label}] " if len(results) > 1 else "") + describe(p) for p in results)
    text = f"{headline}: {clauses}{suffix}."
    decided = [p.largest_holding for p in results if p.rows and p.status != "INCONCLUSIVE"]
    stat = min(decided) if decided else None
    if "REFUTED" in statuses:
        return Verdict(name, "REFUTED", text, stat, parameters, tolerance, evidence, details=details)
    if "INCONCLUSIVE" in statuses:
        missing = sorted({m for p in results for m in p.missing}) or [SEEDS_HINT]
        return inconclusive(name, text, missing, statistic=stat, parameters=parameters, tolerance=tolerance,
                            evidence=evidence, details=details)
    return Verdict(name, "CONFIRMED", text, stat, parameters, tolerance, evidence, details=details)


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None,
          windows: int = WINDOWS, alpha: float = ALPHA) -> Verdict:
    """Does the linear scaling rule hold along the study's linear path(s) of SGD runs?

    ``metric``: point column compared (default ``test_loss``); ``tolerance``: relative tolerance r (default 0.05
    = 5% of the κ = 1 value per window); ``windows``: K equal windows of SDE time (default 5); ``alpha``: error
    rate per κ (default 0.05). Statistic, tolerance and decision rule: module docstring.
    """
    relative = RELATIVE if tolerance is None else float(tolerance)
    tol = {"relative": relative, "alpha": alpha, "windows": windows,
           "why": TOLERANCE_WHY.format(r=relative, a=alpha, k=windows)}
    name, bad = metric_or_none(data.points, metric)
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
        return inconclusive(NAME, f"The linear path's runs use {opts}; the linear scaling rule is SGD's (THEORY "
                            "§1) — for Adam/RMSprop the sqrt-rule check reports it as its control arm.",
                            ['[optimizer] name = "sgd" for an LSR study (or run the sqrt-rule check)'],
                            tolerance=tol, parameters=params)
    if bad:
        return inconclusive(NAME, f"Cannot compare: {bad}.", [f"--metric: a recorded point column ({bad})"],
                            tolerance=tol, parameters=params)
    results = [compare_path(data.points, g, base, arm="linear", rule="linear", metric=name, relative=relative,
                            axis="sde_time", windows=windows, alpha=alpha) for base, g in paths(sgd, "linear")]
    return combine(NAME, results, headline=f"Linear scaling rule on {name} at equal SDE time", tolerance=tol,
                   parameters=params)


def figure_paths(data: StudyData, verdict: Verdict, title: str) -> Any:
    """Top: seed-mean metric against the path's time axis, one curve per κ (first path of each arm). Bottom: each
    window's Δ/τ with its seed-noise allowance h/τ as error bar; |Δ/τ| ≤ 1 is within tolerance."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    paths_ = verdict.details.get("paths", []) + verdict.details.get("control", [])
    shown: dict[str, dict[str, Any]] = {}
    for p in paths_:
        shown.setdefault(p["arm"], p)
    fig = Figure(figsize=(9, 7))
    top, bottom = fig.subplots(2, 1)
    cmap = colormaps["viridis"]
    main = next(iter(shown.values()), None)
    if main and main["edges"]:
        kappas = [r["kappa"] for r in main["runs"]]
        for j, entry in enumerate(main["runs"]):
            ids = entry["run_ids"]
            pts = data.points[data.points.run_id.isin(ids)]
            if pts.empty:
                continue
            grid = np.linspace(0.0, float(pts[main["axis"]].max()), 200)
            curves = np.array([value_at(data.points, r, main["metric"], grid, main["axis"]) for r in ids])
            with np.errstate(all="ignore"):
                mean = np.nanmean(curves, axis=0) if np.isfinite(curves).any() else grid * np.nan
            color = cmap(j / max(1, len(kappas) - 1))
            width = 2.5 if entry["kappa"] == main["baseline_kappa"] else 1.2
            top.plot(grid, mean, color=color, lw=width, label=f"κ = {entry['kappa']:g}")
        base_ids = next((e["run_ids"] for e in main["runs"] if e["kappa"] == main["baseline_kappa"]), [])
        base_y = data.points.loc[data.points.run_id.isin(base_ids), main["metric"]].astype(float)
        base_y = base_y[np.isfinite(base_y)]
        if len(base_y):  # the baseline's range, so that a diverging κ does not flatten the rest
            lo, hi = float(base_y.min()), float(base_y.max())
            pad = 0.25 * (hi - lo) if hi > lo else 0.1 * abs(hi) or 1.0
            top.set_ylim(lo - pad, hi + pad)
        for e in main["edges"][1:-1]:
            top.axvline(e, color="grey", lw=0.5, ls=":")
        top.set(xlabel=main["axis"], ylabel=main["metric"], title=f"{title} — {main['label']} ({main['arm']})")
        top.legend(fontsize=7, ncol=2)
    markers = {"linear": "o", "sqrt": "s"}
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
            bottom.errorbar(x, y, yerr=err, fmt=markers.get(p["rule"], "o"),
                            color=cmap(j / max(1, len(kappas) - 1)), mfc="none" if arm != next(iter(shown)) else None,
                            label=f"{arm} κ = {k:g}", capsize=2)
    for r in verdict.evidence:
        if r.get("diverged") and r.get("status") == "fails":
            bottom.text(0.01, 0.97, f"κ = {r['kappa']:g} diverged", transform=bottom.transAxes, fontsize=8,
                        color="red", ha="left", va="top")
    lo, hi = bottom.get_ylim()
    bottom.set_ylim(max(lo, -CLIP - 0.5), min(hi, CLIP + 0.5))
    bottom.axhspan(-1, 1, color="green", alpha=0.08)
    bottom.axhline(0, color="black", lw=0.5)
    bottom.set(xlabel="window of equal time (last = final)", ylabel=f"Δ / tolerance (clipped at ±{CLIP:g})",
               title=f"{verdict.check}: {verdict.verdict} (band: within tolerance; bars: seed-noise allowance)")
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def figure(data: StudyData, verdict: Verdict) -> Any:
    return figure_paths(data, verdict, "linear scaling rule")
