"""``svag``: is the SDE a valid model of SGD here? (docs/theory.md §1, Li, Malladi & Arora 2021.) SVAG(l) follows
the SDE with weak error O(1/l), so runs differing only in l should (a) converge as l grows, the distance between
consecutive l shrinking like 1/l, and (b) if the SDE models SGD, l = 1 lies within tolerance of the largest l.

Groups: runs equal in everything but l and seed. x is the raw-step multiplier: l for SGD, ℓ² for Adam/RMSprop
(whose SVAG mixes batches with l = ℓ²), so the predicted rate is 1/x either way.

Compute. The common SDE-time range [0, T] of the group's completed runs is cut into K equal windows (default 5), and
levels are compared window by window exactly as ``lsr`` compares κ with κ = 1 (``windows``: seed-paired difference
curves with autocorrelation-aware within-run errors, seeds combined with the group's overdispersion φ pooled over all
its comparisons). (b) SGD against the largest level: tolerance τ_k = r·|largest-l value| (r = ``tolerance``, default
5%); *holds* if every window passes its equivalence test at level α, *fails* if a window is beyond τ, or the windows'
mean of Δ_k/τ_k beyond 1 (Holm over these) or an l = 1 run diverged while the largest l did not. (a) Rate: for
consecutive levels x_i < x_{i+1}, D² = mean_k(Δ_k² − SE_k²) (the noise floor E[Δ̂²] = Δ² + SE² removed), with Var(D²) =
Σ_k(4Δ_k²SE_k² + 2SE_k⁴)/K² (normal Δ̂_k); a pair is *measurable* when D² > z·SE(D²). With weak error c/x the mean
trajectories differ by c·(1/x_i − 1/x_{i+1}), so D̃_i = D_i/(1 − x_i/x_{i+1}) ∝ 1/x_i: log–log slope −1 against x_i,
fitted over the measurable pairs (≥ 2), its SE the propagated error of log D̃ (SE(D²)/(2D²)) and the fit residuals (≥ 3
pairs) in quadrature.

Decide. Rate, exponent tolerance δ = 0.5 (distances must shrink at least like x^−½; the closed form on linreg
gives slopes of −1 to −1.8 between l = 1 and 8): *holds* if slope + z·SE ≤ −1 + δ, *fails* if slope − z·SE >
−1 + δ, else *unresolved*; fewer than 2 measurable pairs: *within noise*; fewer than 3 levels: *not tested*.
Verdict: REFUTED if SGD-vs-SDE fails or the rate fails; CONFIRMED if SGD-vs-SDE holds and the rate holds, is
within noise or is not tested (two levels answer (b) alone); INCONCLUSIVE otherwise, with the seeds a power
analysis asks for.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from db.models import RUN_HPARAMS
from sweeper.checks.base import StudyData, Verdict, inconclusive
from sweeper.checks.defaults import ADAPTIVE, ALPHA, METRIC, RELATIVE, SEEDS_HINT, WINDOWS
from sweeper.checks.lsr import metric_or_none
from sweeper.checks.paths import seeds_hint
from sweeper.checks.stats import Estimate, loglog_slope
from sweeper.checks.windows import Comparison, Curves, Group, compare, decide, estimates, overdispersion

NAME = "svag"
DELTA = 0.5  # exponent tolerance: the distance must shrink at least like x^(−1+δ)
Z = 2.0  # standard errors for "measurable" distances and the slope decision
GROUP_KEYS = tuple(k for k in RUN_HPARAMS if k not in ("svag_l", "seed"))
"""Runs that differ only in l (the compared axis) and the seed (the replicates) form a group."""
LEVELS_HINT = "sweep.svag_l = [1, 2, 4, 8] (l = 1 is SGD; ≥ 3 levels give two distances for a rate)"


def _levels(runs: pd.DataFrame) -> pd.Series:
    """Raw-step multiplier x per run: l for SGD, ℓ² for adaptive optimizers."""
    ell = runs.svag_l.fillna(1.0).astype(float)
    return ell.where(~runs.optimizer.isin(ADAPTIVE), ell**2)


def _groups(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    keys = [k for k in GROUP_KEYS if k in runs]
    key = [" ".join(str(v) for v in row) for row in runs[keys].itertuples(index=False)]
    frame = runs.assign(_key=key, _x=_levels(runs))
    out = []
    for _, g in frame.groupby("_key", sort=False):
        first = g.iloc[0]
        label = f"{first.optimizer} B={first.batch_size:g} lr={first.lr:g}" + (
            f" κ={first.kappa:g}" if "kappa" in g and pd.notna(first.kappa) else "")
        out.append((label, g))
    return out


@dataclass
class Distance:
    """Noise-corrected distance between consecutive levels x < x_next (module docstring)."""

    x: float
    x_next: float
    d2: float
    d2_se: float

    @property
    def distance(self) -> float:
        return math.sqrt(max(self.d2, 0.0))

    @property
    def scaled(self) -> float:
        return self.distance / (1.0 - self.x / self.x_next)

    @property
    def measurable(self) -> bool:
        return math.isfinite(self.d2) and self.d2 > Z * self.d2_se

    @classmethod
    def of(cls, x: float, x_next: float, diffs: list[Estimate]) -> Distance:
        ok = [e for e in diffs if e.finite]
        if not ok:
            return cls(x, x_next, math.nan, math.nan)
        d2 = float(np.mean([e.value**2 - e.se**2 for e in ok]))
        var = float(np.sum([4 * e.value**2 * e.se**2 + 2 * e.se**4 for e in ok])) / len(ok) ** 2
        return cls(x, x_next, d2, math.sqrt(var))

    def row(self, group: str) -> dict[str, Any]:
        d = self.distance
        return {"group": group, "what": "distance", "x": self.x, "x_next": self.x_next, "D": d,
                "D_se": self.d2_se / (2 * d) if d > 0 else math.nan, "D2": self.d2, "D2_se": self.d2_se,
                "D_scaled": self.scaled, "measurable": self.measurable}


@dataclass
class Rate:
    call: str = "not tested"  # holds | fails | unresolved | within noise | not tested
    slope: float = math.nan
    se: float = math.nan
    pairs: int = 0

    @classmethod
    def of(cls, distances: list[Distance]) -> Rate:
        use = [d for d in distances if d.measurable]
        if len(use) < 2:
            return cls("within noise", pairs=len(use))
        fit = loglog_slope(np.array([d.x for d in use]), np.array([d.scaled for d in use]),
                           np.array([d.d2_se / (2 * d.d2) for d in use]))
        bound = -1.0 + DELTA
        call = "holds" if fit.slope + Z * fit.se <= bound else "fails" if fit.slope - Z * fit.se > bound else \
            "unresolved"
        return cls(call, fit.slope, fit.se, len(use))


@dataclass
class SvagGroup:
    """One group of runs differing only in l: SGD against the largest level, and the convergence rate."""

    label: str
    metric: str
    levels: list[float]
    run_ids: dict[float, list[int]]
    edges: list[float] = field(default_factory=list)
    sgd: Comparison | None = None
    sgd_call: str = ""
    sgd_why: str = ""
    distances: list[Distance] = field(default_factory=list)
    rate: Rate = field(default_factory=Rate)
    status: str = "INCONCLUSIVE"
    note: str = ""
    missing: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        out = [d.row(self.label) for d in self.distances]
        if self.sgd_call:
            out.append({"group": self.label, "what": f"SGD vs l = {self.levels[-1]:g}", "call": self.sgd_call,
                        "why": self.sgd_why})
            out.append({"group": self.label, "what": "rate", "call": self.rate.call, "slope": self.rate.slope,
                        "se": self.rate.se, "pairs": self.rate.pairs})
        return out

    def as_json(self) -> dict[str, Any]:
        windows = [w.row() | {"group": self.label} for w in self.sgd.windows] if self.sgd else []
        return {"label": self.label, "metric": self.metric, "levels": self.levels, "edges": self.edges,
                "level_name": "ℓ²" if self.label.split()[0] in ADAPTIVE else "l",
                "runs": [{"x": x, "run_ids": ids} for x, ids in self.run_ids.items()], "windows": windows,
                "sgd_call": self.sgd_call, "sgd_why": self.sgd_why, "rate": vars(self.rate), "status": self.status,
                "note": self.note}


def _group(curves: Curves, label: str, runs: pd.DataFrame, relative: float, windows: int,
           alpha: float) -> SvagGroup:
    """Distances, rate and the SGD-vs-largest-level comparison for one group (module docstring), on ``curves``
    (the study's curves of the compared metric against SDE time)."""
    metric = curves.metric
    xs = sorted(float(x) for x in runs._x.unique())
    by_x = {x: runs[np.isclose(runs._x, x)] for x in xs}
    res = SvagGroup(label, metric, xs, {x: [int(r) for r in g.run_id] for x, g in by_x.items()})
    if not any(math.isclose(x, 1.0) for x in xs):
        res.note, res.missing = "no l = 1 (SGD) runs", [LEVELS_HINT]
        return res
    diverged = {x: int((g.status == "diverged").sum()) for x, g in by_x.items()}
    done = {x: g[g.status == "completed"] for x, g in by_x.items()}
    if any(diverged[x] for x in xs[1:]):
        bad = ", ".join(f"{x:g}" for x in xs[1:] if diverged[x])
        res.note = f"SVAG runs at x = {bad} diverged"
        res.missing = ["sweep.lr: a smaller learning rate (the SDE reference itself diverged)"]
        return res
    empty = [x for x in xs if done[x].empty and not (x == 1.0 and diverged[x])]
    if empty:
        res.note, res.missing = f"no completed run at x = {', '.join(f'{x:g}' for x in empty)}", [SEEDS_HINT]
        return res
    lv = [x for x in xs if len(done[x])]
    t_end = float(np.nanmin([curves.end(r) for x in lv for r in done[x].run_id]))
    edges = np.linspace(0.0, t_end, windows + 1)
    res.edges = edges.tolist()
    groups = {x: Group.of(done[x]) for x in lv}
    top = xs[-1]
    pairs = [compare(curves, groups[a], groups[b], edges) for a, b in itertools.pairwise(lv)]
    sgd = compare(curves, groups[top], groups[1.0], edges) if not diverged[1.0] else None
    od = overdispersion(pairs + ([sgd] if sgd else []))
    _judge_sgd(res, sgd, edges, relative, alpha, od, diverged[1.0])
    if len(lv) >= 3:
        res.distances = [Distance.of(a, b, estimates(c, od))
                         for (a, b), c in zip(itertools.pairwise(lv), pairs, strict=True)]
        res.rate = Rate.of(res.distances)
    if res.sgd_call == "fails" or res.rate.call == "fails":
        res.status = "REFUTED"
    elif res.sgd_call == "holds" and res.rate.call in ("holds", "within noise", "not tested"):
        res.status = "CONFIRMED"
    else:
        need = sgd.seeds_needed(alpha) if sgd and res.sgd_call == "unresolved" else math.nan
        res.missing.append(seeds_hint(need, min(len(done[x]) for x in lv), "SGD vs the largest l")
                           if res.sgd_call == "unresolved" else
                           "seeds: more seeds per l, or a longer budget, to resolve the convergence rate")
    return res


def _judge_sgd(res: SvagGroup, sgd: Comparison | None, edges: np.ndarray, relative: float, alpha: float,
               od: Any, diverged: int) -> None:
    top = res.levels[-1]
    if sgd is None:
        res.sgd_call, res.sgd_why = "fails", f"{diverged} l = 1 run(s) diverged; the largest l did not"
        return
    decide([sgd], edges, relative, alpha, od)
    res.sgd, res.sgd_call = sgd, sgd.status
    w = next((w for w in sgd.windows if w.fails), sgd.worst())
    res.sgd_why = (f"window {w.window}: l = 1 − l = {top:g} is {w.diff.value:+.4g} ± {w.decision.halfwidth:.3g} "
                   f"(tolerance {w.tolerance:.3g})")
    if sgd.joint_fails and sgd.joint is not None and not any(w.fails for w in sgd.windows):
        res.sgd_why += f"; averaged over the windows {sgd.joint.value:+.3g} ± {sgd.joint.se:.2g} tolerances"


def _describe(g: SvagGroup) -> str:
    if not g.sgd_call:
        return g.note
    r = g.rate
    if r.call in ("holds", "fails", "unresolved") and math.isfinite(r.slope):
        rate = (f"distance between consecutive l ∝ l^{r.slope:.2f} ± {r.se:.2f} over {r.pairs} pairs "
                f"(rate {r.call}; predicted −1, tolerance −1 + {DELTA:g})")
    elif r.call == "within noise":
        rate = "distances between consecutive l are within noise (rate not measurable)"
    else:
        rate = "rate not tested (two levels; ≥ 3 give a rate)"
    sgd = {"holds": "SGD (l = 1) is within tolerance of", "fails": "SGD (l = 1) departs from",
           "unresolved": "undecided whether SGD (l = 1) matches"}[g.sgd_call]
    return f"{rate}; {sgd} l = {g.levels[-1]:g} ({g.sgd_why})"


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None,
          windows: int = WINDOWS, alpha: float = ALPHA) -> Verdict:
    """Do SVAG trajectories converge at O(1/l), with SGD within tolerance of the largest l?

    ``metric``: point column (default ``test_loss``); ``tolerance``: relative tolerance r of the SGD-vs-largest-l
    comparison (default 0.05 of the largest-l value per window); ``windows``: K equal windows of SDE time
    (default 5); ``alpha``: level of that comparison (default 0.05). Rest: module docstring.
    """
    relative = RELATIVE if tolerance is None else float(tolerance)
    tol = {"relative": relative, "alpha": alpha, "windows": windows, "exponent_tolerance": DELTA, "z": Z,
           "why": (f"rate: slope of log distance against log l must be ≤ −1 + {DELTA:g} beyond {Z:g} SE (SE: "
                   f"propagated window errors ⊕ fit residuals; distances noise-corrected, measurable if D² > "
                   f"{Z:g} SE); SGD vs largest l: every window's one-sided {100 * (1 - alpha):g}% bounds within "
                   f"±r·|largest-l value|, r = {relative:g} as in lsr; fails: a window beyond it (Holm, α = "
                   f"{alpha:g}); K = {windows}")}
    points = data.point_columns(metric or METRIC, "sde_time")
    name, bad = metric_or_none(points, metric)
    params = {"metric": name or METRIC, "windows": windows, "alpha": alpha, "axis": "sde_time"}
    runs = data.finished_runs()
    if "svag_l" not in runs or runs.svag_l.fillna(1.0).nunique() < 2:
        return inconclusive(NAME, "The study has no runs that differ in l.", [LEVELS_HINT, SEEDS_HINT],
                            tolerance=tol, parameters=params)
    if bad:
        return inconclusive(NAME, f"Cannot compare: {bad}.", [f"--metric: a recorded point column ({bad})"],
                            tolerance=tol, parameters=params)
    curves = Curves(points, name)
    groups = [_group(curves, label, g, relative, windows, alpha) for label, g in _groups(runs)
              if g._x.nunique() >= 2]
    if not groups:
        return inconclusive(NAME, "No group of runs differs only in l.", [LEVELS_HINT], tolerance=tol,
                            parameters=params)
    evidence = [row for g in groups for row in g.rows()]
    details = {"groups": [g.as_json() for g in groups]}
    many = len(groups) > 1
    text = f"SVAG on {name} at equal SDE time: " + "; ".join(
        (f"[{g.label}] " if many else "") + _describe(g) for g in groups) + "."
    statuses = [g.status for g in groups]
    slopes = [g.rate.slope for g in groups if math.isfinite(g.rate.slope)]
    stat = slopes[0] if slopes else None
    if "REFUTED" in statuses:
        return Verdict(NAME, "REFUTED", text, stat, params, tol, evidence, details=details)
    if "INCONCLUSIVE" in statuses:
        missing = sorted({m for g in groups for m in g.missing}) or [SEEDS_HINT]
        return inconclusive(NAME, text, missing, statistic=stat, parameters=params, tolerance=tol,
                            evidence=evidence, details=details)
    return Verdict(NAME, "CONFIRMED", text, stat, params, tol, evidence, details=details)


def figure(data: StudyData, verdict: Verdict) -> Any:
    """Left: seed-mean metric against SDE time, one curve per l (first group). Right: distance between
    consecutive l (scaled by 1/(1 − l/l')) against l, log–log, with a 1/l reference line."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    ax1, ax2 = fig.subplots(1, 2)
    groups = verdict.details.get("groups", [])
    cmap = colormaps["plasma"]
    if groups:
        g = groups[0]
        levels = g.get("runs", [])
        curves = Curves(data.points, g["metric"])
        for j, entry in enumerate(levels):
            curve = curves.seed_mean(entry["run_ids"])
            if curve is None:
                continue
            ax1.plot(*curve, color=cmap(j / max(1, len(levels) - 1) * 0.85),
                     lw=2.2 if entry["x"] == 1 else 1.2, label=f"{g['level_name']} = {entry['x']:g}")
        ax1.set(xlabel="SDE time", ylabel=g["metric"], title=f"SVAG trajectories — {g['label']}")
        if levels:
            ax1.legend(fontsize=8)
    rows = pd.DataFrame([r for r in verdict.evidence if r.get("what") == "distance"])
    if not rows.empty:
        for j, (label, d) in enumerate(rows.groupby("group", sort=False)):
            ok = d.D_scaled > 0
            bars = ax2.errorbar(d.x[ok], d.D_scaled[ok], yerr=(d.D_se / (1 - d.x / d.x_next))[ok].fillna(0),
                                fmt="-", capsize=3, label=label)
            color = bars[0].get_color()
            meas = d.measurable.astype(bool)
            ax2.plot(d.x[ok & meas], d.D_scaled[ok & meas], "o", color=color, zorder=3)
            ax2.plot(d.x[ok & ~meas], d.D_scaled[ok & ~meas], "o", mfc="white", color=color, zorder=3)
            if ok.any():
                x0, y0 = float(d.x[ok].iloc[0]), float(d.D_scaled[ok].iloc[0])
                xx = np.array([float(d.x.min()), float(d.x.max())])
                ax2.plot(xx, y0 * x0 / xx, "k--", lw=0.8, label="∝ 1/l" if j == 0 else None)
        ax2.set(xscale="log", yscale="log", xlabel="l (smaller of the pair)",
                ylabel="distance to next l / (1 − l/l′)")
        ax2.legend(fontsize=7)
    ax2.set_title(f"svag: {verdict.verdict} (open: within seed noise)")
    fig.tight_layout()
    return fig
