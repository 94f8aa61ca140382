"""Intrinsic learning rate (docs/theory.md §4, Li, Lyu & Arora 2020): P1, P2 and P3, each reported separately.

Applies to runs of a scale-invariant model (``model.scale_invariant = true``) trained by plain SGD (momentum 0)
with weight decay λ > 0; other runs are listed as excluded. Per raw step the intrinsic LR is η_raw·λ with
η_raw = η/l (SVAG l; l = 1 for SGD); η and λ are the *scheduled* values (points ``lr_t``, ``weight_decay_t``) of the
run's final constant segment, so runs with a step change are judged after their last change.

Equilibrium window. A run's final segment starts at its last change of (η, λ) (step 0 if none). Its equilibrium
window holds the points whose *preceding* point is at least ``burn_in``/(η_raw λ) raw steps (default k = 1.5)
into the segment — so every angular update averaged into a window point was taken in equilibrium — and needs at
least 3 points. k = 1.5 is 6 relaxation times of |w|⁴ (time constant 1/(4ηλ), docs/theory.md §4): an initial |w|⁴ off by
10× is then within 3% of equilibrium (an init much farther off needs a larger k). Runs without such a window are
"not at equilibrium" (budget too short).

P1 — angular update. Per run, ratio = mean over the window of angular_update² / (2 η_raw λ) (``angular_update``
is the RMS of ‖ŵ_{t+1} − ŵ_t‖ over the sampled steps between points). Holds if every tested run's ratio lies in
[1/(1+tol), 1+tol]; tol = ``tolerance`` (default 0.25 → [0.8, 1.25], docs/theory.md §4). Reference: a scale-invariant BN
MLP on MNIST-1D (width 128, depth 2, B = 64, η = 0.1, λ = 5e-3, 5000 steps) gives ≈ 1.05.

P2 — equal ηλ, different η. Runs are grouped by η_raw·λ (relative 1e-6); groups with ≥ 2 distinct η count.
(a) |w|² ∝ √(η/λ): slope of log(window-mean weight_norm²) on log(η_raw/λ) with a fixed effect per group (only
within-group variation counts, since σ² — and so |w|² — differs between groups); holds if
|slope − 0.5| ≤ max(0.05, h), h = t₀.₉₇₅(dof)·SE; undetermined when h > 0.25 (too few points to tell 0.5 from
0.25 or 0.75). (b) Equal equilibrium metrics (test_loss, test_acc, train_loss, effective_lr): each config's seed
mean against the group's smallest-η config; equal if |diff| ≤ δ·|ref| + t_crit·SE (δ = 5%: the resolution of
the reference experiment's equal-equilibrium claim; SE from the seed SD pooled per metric over all configs of the
P2 groups; t_crit: Student t with the pooled dof at α = 0.01 two-sided, Bonferroni over all comparisons); needs
≥ 2 seeds per config; a comparison counts as "equal" only if t_crit·SE ≤ 25%·|ref| (else "too noisy").

P3 — re-equilibration after a step change. For runs whose final segment follows a constant segment: q = |w|²
(``metric = "weight_norm"``, default) or angular_update² (``"angular_update"``); the new equilibrium q_eq(t) is
the least-squares line of q over the equilibrium window, extrapolated back (|w|² keeps drifting slowly while the
network learns — σ² changes — and a flat window mean would make slow runs look late); T_eq = raw steps from the
change until |q/q_eq − 1| first falls to x = 10% (linear interpolation between points). A run is timed only if the
change moved q by more than 2x and the first point after the change is still outside x (else the log cadence
cannot resolve T_eq). Fit log T_eq on log(η_raw λ after the
change) (≥ 3 runs, ≥ 2 distinct ηλ): holds if |slope + 1| ≤ max(0.25, h), h = t₀.₉₇₅(n−2)·SE; undetermined when
h > 0.5. For the norm dynamics T_eq·ηλ = ln((c − 1)/2x)/4 with c the |w|⁴ jump ratio, so runs should share the
relative change (one schedule for all runs does this).

Overall: CONFIRMED if at least one part was tested and every tested part holds, REFUTED if a tested part fails,
INCONCLUSIVE if none could be tested (``missing`` names what to add). ``details["parts"]`` has each part's
status, statistic and reason; the verdict's ``statistic`` is the first tested part's: P1's worst ratio (farthest
from 1), else P2's |w|² slope, else P3's T_eq slope.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from sweeper.checks.base import Outcome, StudyData, Verdict, inconclusive

NAME = "intrinsic-lr"

P1_TOLERANCE = 0.25
"""P1 band [1/(1+tol), 1+tol] for angular_update²/(2ηλ): [0.8, 1.25] (docs/theory.md §4)."""
BURN_IN = 1.5
"""k: the equilibrium window starts k/(η_raw λ) raw steps into the final constant segment."""
MIN_WINDOW_POINTS = 3
P2_SLOPE = 0.5
P2_SLOPE_TOL = 0.05
P2_SLOPE_MAX_HALFWIDTH = 0.25
P2_METRICS = ("test_loss", "test_acc", "train_loss", "effective_lr")
P2_REL_MARGIN = 0.05
P2_MAX_REL_HALFWIDTH = 0.25
ALPHA = 0.01
P3_WITHIN = 0.10
P3_SLOPE = -1.0
P3_SLOPE_TOL = 0.25
P3_SLOPE_MAX_HALFWIDTH = 0.5
P3_METRICS = ("weight_norm", "angular_update")


def t_crit(p_two_sided: float, dof: float) -> float:
    """t with P(|T| ≥ t) = p_two_sided (t₀.₉₇₅ for p = 0.05) for Student's t with ``dof`` degrees of freedom."""
    return float(sps.t.ppf(1.0 - p_two_sided / 2.0, dof))


# ----------------------------------------------------------------------------------------------- per run


@dataclass
class RunSegment:
    """One eligible run: its final constant segment and equilibrium window (steps are raw steps; η_raw, per raw
    step, and λ are the segment's scheduled values)."""

    run_id: int
    row: pd.Series
    pts: pd.DataFrame                       # sorted by step, finite step
    eta_raw: float
    lam: float
    seg_start: int                          # index into pts of the final segment's first point
    change_step: float                      # raw step of the last change (0 if none)
    eq_start: float                         # change_step + k/(η_raw λ)
    window_points: int
    window: pd.DataFrame | None = None      # equilibrium window points (≥ MIN_WINDOW_POINTS)
    not_at_equilibrium: str = ""            # why there is no window

    @property
    def eta_lambda(self) -> float:
        return self.eta_raw * self.lam

    def info(self) -> dict[str, Any]:
        """The window's extent, as evidence."""
        out = {"window_points": self.window_points, "equilibrium_from_step": self.eq_start,
               "last_step": float(self.pts["step"].to_numpy(float)[-1])}
        return out | ({"not_at_equilibrium": self.not_at_equilibrium} if self.not_at_equilibrium else {})


@dataclass
class Excluded:
    """A run the predictions are not judged on, with why (spec fields it violates, ``diverged``, or its points)."""

    run_id: int
    reasons: list[str]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _config(row: pd.Series) -> dict[str, Any]:
    cfg = row.get("config")
    return cfg if isinstance(cfg, dict) else {}


def _ineligibility(row: pd.Series) -> list[str]:
    """Spec fields a run violates (empty: eligible)."""
    cfg = _config(row)
    why = []
    if not (cfg.get("model") or {}).get("scale_invariant", False):
        why.append("model.scale_invariant = true (with norm = 'bn' or 'gn')")
    if str(row.get("optimizer")) != "sgd":
        why.append("optimizer.name = 'sgd'")
    momentum = row.get("momentum")
    if momentum is not None and np.isfinite(float(momentum)) and float(momentum) != 0.0:
        why.append("optimizer.momentum = 0 (and no nonzero sweep.momentum)")
    wd = row.get("weight_decay")
    if wd is None or not float(wd) > 0:
        why.append("sweep.weight_decay > 0")
    return why


def _change_epochs(cfg: dict[str, Any]) -> list[float]:
    """Epochs at which the config's schedules step (piecewise ``at``, multistep ``milestones``)."""
    out: list[float] = []
    for sched in (cfg.get("schedule") or {}).values():
        if isinstance(sched, dict):
            if sched.get("kind") == "piecewise":
                out += [float(a) for a in sched.get("at") or []]
            elif sched.get("kind") == "multistep":
                out += [float(a) for a in sched.get("milestones") or []]
    return sorted(out)


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-300)


def _prepare(row: pd.Series, pts: pd.DataFrame, burn_in: float) -> RunSegment | str:
    """The run's final segment and equilibrium window, or why it has none."""
    pts = pts[np.isfinite(pts["step"].astype(float))].sort_values("step").reset_index(drop=True)
    if len(pts) < 2:
        return "fewer than 2 points"
    lr_t, wd_t = pts["lr_t"].astype(float).to_numpy(), pts["weight_decay_t"].astype(float).to_numpy()
    if not (np.isfinite(lr_t[-1]) and np.isfinite(wd_t[-1])):
        return "no scheduled lr/weight_decay at the last point"
    seg = len(pts) - 1
    while seg > 0 and _same(lr_t[seg - 1], lr_t[-1]) and _same(wd_t[seg - 1], wd_t[-1]):
        seg -= 1
    svag_l = float(row.get("svag_l") or 1.0)
    eta_raw, lam = lr_t[-1] / svag_l, wd_t[-1]
    if not (eta_raw > 0 and lam > 0):
        return f"final segment has η = {lr_t[-1]:g}, λ = {lam:g} (needs both > 0)"
    steps = pts["step"].to_numpy(float)
    change = 0.0
    if seg > 0:
        change = steps[seg - 1]  # the change happened after the previous point; refine from the schedule
        epochs = pts["epoch"].to_numpy(float) if "epoch" in pts else np.full(len(pts), np.nan)
        per_epoch = steps[seg] / epochs[seg] if np.isfinite(epochs[seg]) and epochs[seg] > 0 else math.nan
        for at in _change_epochs(_config(row)):
            if np.isfinite(per_epoch) and epochs[seg - 1] < at <= epochs[seg]:
                change = float(math.ceil(at * per_epoch - 1e-9))
    eq_start = change + burn_in / (eta_raw * lam)
    prev = np.concatenate([[-np.inf], steps[:-1]])
    in_window = (np.arange(len(pts)) >= seg) & (prev >= eq_start)
    run = RunSegment(int(row["run_id"]), row, pts, eta_raw, lam, seg, change, eq_start, int(in_window.sum()))
    if run.window_points < MIN_WINDOW_POINTS:
        interval = float(np.median(np.diff(steps))) if len(steps) > 1 else math.nan
        need = eq_start + MIN_WINDOW_POINTS * interval
        run.not_at_equilibrium = f"needs ≥ {need:.0f} raw steps (window from {eq_start:.0f})"
    else:
        run.window = pts[in_window]
    return run


def _eligible(data: StudyData, burn_in: float) -> tuple[list[RunSegment], list[Excluded], list[str]]:
    """The finished runs the predictions apply to, prepared; the others with why; the spec fields they lack."""
    prepared: list[RunSegment] = []
    excluded: list[Excluded] = []
    needs: list[str] = []
    for _, row in data.finished_runs().iterrows():
        why = _ineligibility(row)
        if row.get("status") == "diverged":
            why = [*why, "diverged"]
        if why:
            excluded.append(Excluded(int(row["run_id"]), why))
            needs += [w for w in why if w != "diverged" and w not in needs]
            continue
        run = _prepare(row, data.points[data.points.run_id == row["run_id"]], burn_in)
        if isinstance(run, str):
            excluded.append(Excluded(int(row["run_id"]), [run]))
            continue
        prepared.append(run)
    return prepared, excluded, needs


def _wmean(run: RunSegment, col: str, square: bool = False) -> float:
    if run.window is None or col not in run.window:
        return math.nan
    v = run.window[col].astype(float).to_numpy()
    v = v[np.isfinite(v)]
    if square:
        v = v**2
    return float(v.mean()) if len(v) else math.nan


def _group_key(x: float) -> float:
    return round(math.log(x), 6)


# ------------------------------------------------------------------------------------------------- parts


@dataclass
class Part:
    """One prediction's outcome: ``status`` holds | fails | untested, a one-clause ``reason``, its ``statistic``,
    and for an untested prediction what to ``add`` to the spec."""

    status: str = "untested"
    reason: str = ""
    statistic: float | None = None
    add: str = ""

    def extra(self) -> dict[str, Any]:
        """The part's own results in ``details`` (none here)."""
        return {}

    def as_json(self) -> dict[str, Any]:
        out = {"status": self.status, "reason": self.reason, "statistic": self.statistic} | self.extra()
        return out | ({"add": self.add} if self.add else {})


@dataclass
class Fit:
    """A least-squares slope (log–log, dimensionless) with its standard error, the half-width h = t₀.₉₇₅(dof)·SE,
    degrees of freedom and points."""

    slope: float
    se: float
    halfwidth: float
    dof: int
    n: int

    def judge(self, target: float, tol: float, max_halfwidth: float) -> str:
        """fails if the slope is beyond ``margin(tol)`` of ``target``, untested if h > ``max_halfwidth``, else
        holds."""
        if abs(self.slope - target) > self.margin(tol):
            return "fails"
        return "untested" if self.halfwidth > max_halfwidth else "holds"

    def margin(self, tol: float) -> float:
        """The allowance around the target: max(tol, h)."""
        return max(tol, self.halfwidth)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SlopePart(Part):
    """A prediction decided on a fitted slope (P2's |w|² slope; P3)."""

    fit: Fit | None = None

    def extra(self) -> dict[str, Any]:
        return self.fit.as_json() if self.fit else {}


# P1 ------------------------------------------------------------------------------------------------------------


@dataclass
class AngularRatio:
    """P1 on one run: mean over its window of angular_update²/(2η_raw λ) (1 predicted), its standard error, and
    whether it lies in the band."""

    ratio: float
    se: float
    in_band: bool

    def row(self) -> dict[str, Any]:
        return {"p1_ratio": self.ratio, "p1_ratio_se": self.se, "p1_in_band": self.in_band}


@dataclass
class P1Part(Part):
    """P1: the angular-update ratio of every run with a window (``runs``, by run id)."""

    runs: dict[int, AngularRatio] = field(default_factory=dict)

    @property
    def outside(self) -> list[int]:
        return [rid for rid, x in self.runs.items() if not x.in_band]

    def extra(self) -> dict[str, Any]:
        if not self.runs:
            return {}
        out: dict[str, Any] = {"runs_tested": len(self.runs)} | ({"runs_outside": self.outside} if self.outside
                                                                 else {})
        return out | {"median_ratio": float(np.median([x.ratio for x in self.runs.values()]))}


def _p1(runs: list[RunSegment], tol: float) -> P1Part:
    """Compute every window's ratio; holds if all lie in [1/(1+tol), 1+tol]. Statistic: the worst ratio."""
    lo, hi = 1.0 / (1.0 + tol), 1.0 + tol
    part = P1Part()
    for r in runs:
        if r.window is None:
            continue
        v = r.window["angular_update"].astype(float).to_numpy()
        v = v[np.isfinite(v)]
        if len(v) < MIN_WINDOW_POINTS:
            continue
        ratios = v**2 / (2 * r.eta_lambda)
        ratio = float(ratios.mean())
        part.runs[r.run_id] = AngularRatio(ratio, float(ratios.std(ddof=1) / math.sqrt(len(ratios))),
                                           bool(lo <= ratio <= hi))
    if not part.runs:
        part.reason = ("no eligible run has an equilibrium window with angular_update (extend budget to ≥ k/(ηλ) "
                       "steps plus 3 log points)")
        return part
    ratios = np.array([x.ratio for x in part.runs.values()])
    worst = float(ratios[np.argmax(np.abs(np.log(ratios)))])
    part.statistic = worst
    if part.outside:
        part.status = "fails"
        part.reason = (f"{len(part.outside)} of {len(part.runs)} runs have angular_update²/(2ηλ) outside "
                       f"[{lo:.2f}, {hi:.2f}] (worst {worst:.3f})")
    else:
        part.status = "holds"
        part.reason = (f"all {len(part.runs)} runs in [{lo:.2f}, {hi:.2f}] (median {np.median(ratios):.3f}, "
                       f"worst {worst:.3f})")
    return part


# P2 ------------------------------------------------------------------------------------------------------------


@dataclass
class EtaLambdaGroup:
    """Equilibrated runs sharing η_raw·λ (relative 1e-6), with ≥ 2 distinct η."""

    runs: list[RunSegment]

    def as_json(self) -> dict[str, Any]:
        return {"eta_lambda": self.runs[0].eta_lambda, "etas": sorted({r.eta_raw for r in self.runs}),
                "runs": len(self.runs)}


@dataclass
class MetricComparison:
    """One config's seed-mean equilibrium metric against its group's smallest-η config (``ref``), in the metric's
    units: ``diff`` = mean − ref mean with its ``se`` from the pooled seed SD; ``allowed`` = δ·|ref| + t_crit·SE;
    ``outcome`` equal | differs | too noisy."""

    eta_lambda: float
    metric: str
    ref_eta: float
    eta: float
    ref_mean: float
    diff: float
    se: float
    seed_sd: float
    dof: int
    t_crit: float
    allowed: float
    outcome: str

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MetricsPart(Part):
    """P2 (b): equal equilibrium metrics within each ηλ group."""

    comparisons: list[MetricComparison] | None = None  # None: not compared (untested before sizing seed noise)

    def extra(self) -> dict[str, Any]:
        return {} if self.comparisons is None else {"comparisons": [c.row() for c in self.comparisons]}


@dataclass
class P2Part(Part):
    """P2: (a) ``slope`` of |w|² on η/λ and (b) equal equilibrium ``metrics`` over the ηλ ``groups``."""

    slope: SlopePart | None = None  # None: no group to test
    metrics: MetricsPart | None = None
    groups: list[EtaLambdaGroup] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        if self.slope is None or self.metrics is None:
            return {}
        return {"slope": self.slope.as_json(), "metrics": self.metrics.as_json(),
                "groups": [g.as_json() for g in self.groups]}


def _p2(runs: list[RunSegment], alpha: float) -> P2Part:
    """P2 on the ηλ groups: (a) the |w|² slope, (b) equal equilibrium metrics; fails if either fails, holds if
    either holds. Statistic: the |w|² slope."""
    groups: dict[float, list[RunSegment]] = {}
    for r in runs:
        if r.window is not None:
            groups.setdefault(_group_key(r.eta_lambda), []).append(r)
    found = [EtaLambdaGroup(g) for g in groups.values() if len({_group_key(r.eta_raw) for r in g}) >= 2]
    if not found:
        return P2Part(reason="no two equilibrated runs share ηλ with different η (sweep lr and weight_decay along "
                             "ηλ = const, e.g. (0.05, 1e-2), (0.1, 5e-3), (0.2, 2.5e-3))")
    slope, metrics = _p2_slope(found), _p2_metrics(found, alpha)
    statuses = {slope.status, metrics.status}
    status = "fails" if "fails" in statuses else "holds" if "holds" in statuses else "untested"
    return P2Part(status, f"|w|² slope: {slope.reason}; metrics: {metrics.reason}", slope.statistic, slope=slope,
                  metrics=metrics, groups=found)


def _p2_slope(groups: list[EtaLambdaGroup]) -> SlopePart:
    """(a) Slope of log window-mean |w|² on log(η_raw/λ) with a fixed effect per group."""
    xs, ys, gid = [], [], []
    for i, g in enumerate(groups):
        for r in g.runs:
            w2 = _wmean(r, "weight_norm", square=True)
            if np.isfinite(w2) and w2 > 0:
                xs.append(math.log(r.eta_raw / r.lam))
                ys.append(math.log(w2))
                gid.append(i)
    x, y, gid_a = np.array(xs), np.array(ys), np.array(gid)
    for i in set(gid):
        x[gid_a == i] -= x[gid_a == i].mean()
        y[gid_a == i] -= y[gid_a == i].mean()
    dof = len(x) - len(set(gid)) - 1
    sxx = float(x @ x)
    if dof < 1 or sxx <= 0:
        return SlopePart(reason="|w|² slope needs one more run than (groups + 1): add a seed or a third (η, λ) with "
                                "the same ηλ")
    slope = float(x @ y / sxx)
    resid = y - slope * x
    se = math.sqrt(float(resid @ resid) / dof / sxx)
    fit = Fit(slope, se, t_crit(0.05, dof) * se, dof, len(x))
    status = fit.judge(P2_SLOPE, P2_SLOPE_TOL, P2_SLOPE_MAX_HALFWIDTH)
    h, margin = fit.halfwidth, fit.margin(P2_SLOPE_TOL)
    reason = {"fails": f"|w|² ∝ (η/λ)^{slope:.3f} ± {h:.3f}, not 0.5 (margin {margin:.3f})",
              "untested": f"slope {slope:.3f} ± {h:.3f}: too uncertain (95% half-width > {P2_SLOPE_MAX_HALFWIDTH}); "
                          f"add seeds or (η, λ) pairs",
              "holds": f"|w|² ∝ (η/λ)^{slope:.3f} ± {h:.3f} (0.5 within {margin:.3f})"}[status]
    return SlopePart(status, reason, slope, fit=fit)


def _p2_metrics(groups: list[EtaLambdaGroup], alpha: float) -> MetricsPart:
    """(b) Each config's seed mean against its group's smallest-η config, per metric, with the seed SD pooled over
    every config of the P2 groups (seed noise of one configuration, docs/theory.md notation; under P2 all configs of a
    group share one equilibrium, so one SD per metric)."""
    pairs: list[tuple[float, str, float, float, np.ndarray, np.ndarray]] = []  # (ηλ, metric, η_ref, η, ref, other)
    values: dict[str, list[np.ndarray]] = {}
    for g in groups:
        by_cfg: dict[tuple[float, float], list[RunSegment]] = {}
        for r in g.runs:
            by_cfg.setdefault((_group_key(r.eta_raw), _group_key(r.lam)), []).append(r)
        cfgs = sorted(by_cfg)
        for metric in P2_METRICS:
            arrays = {c: np.array([_wmean(r, metric) for r in by_cfg[c]]) for c in cfgs}
            arrays = {c: v[np.isfinite(v)] for c, v in arrays.items()}
            values.setdefault(metric, []).extend(arrays.values())
            ref = arrays[cfgs[0]]
            for c in cfgs[1:]:
                if len(ref) and len(arrays[c]):
                    pairs.append((g.runs[0].eta_lambda, metric, by_cfg[cfgs[0]][0].eta_raw, by_cfg[c][0].eta_raw, ref,
                                  arrays[c]))
    if not pairs:
        return MetricsPart(reason="no equilibrium metric recorded")
    pooled: dict[str, tuple[float, int]] = {}
    for metric, samples in values.items():
        dof = sum(len(v) - 1 for v in samples if len(v) >= 2)
        ss = sum(float(((v - v.mean()) ** 2).sum()) for v in samples if len(v) >= 2)
        if dof >= 1:
            pooled[metric] = (math.sqrt(ss / dof), dof)
    m = sum(p[1] in pooled for p in pairs)
    if m == 0:
        return MetricsPart(reason="needs ≥ 2 seeds per (η, λ) to size seed noise (seeds = [0, 1, 2])")
    rows = []
    for eta_lambda, metric, ref_eta, eta, a, b in pairs:
        if metric not in pooled:
            continue
        sd, dof = pooled[metric]
        diff, se = float(b.mean() - a.mean()), sd * math.sqrt(1 / len(a) + 1 / len(b))
        ref_mean = float(a.mean())
        crit = t_crit(alpha / m, dof)
        allowed = P2_REL_MARGIN * abs(ref_mean) + crit * se
        informative = crit * se <= P2_MAX_REL_HALFWIDTH * abs(ref_mean)
        outcome = "differs" if abs(diff) > allowed else "equal" if informative else "too noisy"
        rows.append(MetricComparison(eta_lambda, metric, ref_eta, eta, ref_mean, diff, se, sd, dof, crit, allowed,
                                     outcome))
    differ = sum(c.outcome == "differs" for c in rows)
    equal = sum(c.outcome == "equal" for c in rows)
    why = (f"{differ} of {len(rows)} comparisons differ beyond {P2_REL_MARGIN:.0%}·|ref| + t_crit·SE "
           f"(pooled seed SD, α = {alpha:g} Bonferroni over {m}), {equal} equal, "
           f"{len(rows) - differ - equal} too noisy")
    status = "fails" if differ else "holds" if equal else "untested"
    return MetricsPart(status, why, float(differ), comparisons=rows)


# P3 ------------------------------------------------------------------------------------------------------------


@dataclass
class Retiming:
    """P3 on one run whose final segment follows a change: ηλ after it (per raw step); ``jump`` = q/q_eq just
    before the change, ``q_eq`` at the last point, ``drift`` of q_eq over the window (relative); ``t_eq`` (raw
    steps from the change until |q/q_eq − 1| ≤ x); ``note``: why it was not timed."""

    eta_lambda_after: float
    jump: float | None = None
    q_eq: float | None = None
    drift: float | None = None
    t_eq: float | None = None
    note: str = ""

    @property
    def product(self) -> float:
        """T_eq·ηλ (dimensionless; ln((c − 1)/2x)/4 for the norm dynamics)."""
        return float(self.t_eq * self.eta_lambda_after) if self.t_eq is not None else math.nan

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {"p3_eta_lambda_after": self.eta_lambda_after}
        if self.jump is not None:
            out |= {"p3_jump": self.jump, "p3_q_eq": self.q_eq, "p3_drift": self.drift}
        if self.note:
            out["p3_note"] = self.note
        if self.t_eq is not None:
            out |= {"t_eq": self.t_eq, "t_eq_times_eta_lambda": self.product}
        return out


@dataclass
class P3Part(SlopePart):
    """P3: T_eq of every run with a step change (``runs``, by run id) and the slope of log T_eq on log ηλ; q is
    ``metric``², timed to within ``within`` of its new equilibrium."""

    metric: str = "weight_norm"
    within: float = P3_WITHIN
    runs: dict[int, Retiming] = field(default_factory=dict)

    def timed(self) -> list[Retiming]:
        return [t for t in self.runs.values() if t.t_eq is not None]

    def extra(self) -> dict[str, Any]:
        if self.fit is None:
            return {}
        return self.fit.as_json() | {"metric": self.metric, "within": self.within,
                                     "t_eq_times_eta_lambda": [t.product for t in self.timed()]}


def _retime(r: RunSegment, col: str, within: float) -> Retiming:
    """T_eq of one run after its last change, with q = ``col``² and the window's trend line as q_eq (module
    docstring: P3), or why it cannot be timed."""
    out = Retiming(r.eta_lambda)
    pts, seg = r.pts, r.seg_start
    lr_t, wd_t = pts["lr_t"].astype(float).to_numpy(), pts["weight_decay_t"].astype(float).to_numpy()
    if seg < 2 or not (_same(lr_t[seg - 1], lr_t[seg - 2]) and _same(wd_t[seg - 1], wd_t[seg - 2])):
        out.note = "the segment before the last change is not constant (a ramp, not a step change)"
        return out
    if r.window is None:
        out.note = "no equilibrium window after the change: " + r.not_at_equilibrium
        return out
    q = pts[col].astype(float).to_numpy() ** 2
    steps = pts["step"].to_numpy(float)
    wq = r.window[col].astype(float).to_numpy() ** 2
    ws = r.window["step"].to_numpy(float)
    ok = np.isfinite(wq)
    if ok.sum() >= 3:  # q_eq(step) = level + rate·step, the window's least-squares line
        trend = sps.linregress(ws[ok], wq[ok])
        rate, level = float(trend.slope), float(trend.intercept)
    else:
        rate, level = 0.0, float(np.nanmean(wq))
    q_eq = level + rate * steps
    dev = np.abs(q / q_eq - 1.0)
    moved = float(np.nanmax(dev[seg - 1 : seg + 1]))
    out.jump, out.q_eq = float(q[seg - 1] / q_eq[seg - 1]), float(q_eq[-1])
    out.drift = float(rate * (ws[-1] - ws[0]) / (level + rate * ws[-1]))
    if not np.isfinite(moved) or moved <= 2 * within:
        out.note = f"the change moved {col}² by only {moved:.1%} (needs > {2 * within:.0%})"
        return out
    if dev[seg] <= within:
        out.note = (f"already within {within:.0%} at the first point after the change: log more often "
                    f"(log.every_steps ≤ T_eq/3)")
        return out
    after = np.flatnonzero((np.arange(len(pts)) > seg) & (dev <= within))
    if not len(after):
        out.note = f"{col}² never comes within {within:.0%} of its window mean"
        return out
    j = int(after[0])
    frac = (dev[j - 1] - within) / (dev[j - 1] - dev[j]) if dev[j - 1] != dev[j] else 1.0
    out.t_eq = float(steps[j - 1] + frac * (steps[j] - steps[j - 1]) - r.change_step)
    return out


def _p3(runs: list[RunSegment], metric: str, within: float) -> P3Part:
    """Time every run with a step change; fit log T_eq on log ηλ (≥ 3 runs, ≥ 2 distinct ηλ): slope −1 holds.
    Statistic: the slope."""
    part = P3Part(metric=metric, within=within,
                  runs={r.run_id: _retime(r, metric, within) for r in runs if r.seg_start > 0})
    if not part.runs:
        part.reason = ("no run has a step change of η or λ ([schedule.weight_decay] or [schedule.lr] kind = "
                       "'piecewise')")
        return part
    timed = part.timed()
    x = np.array([t.eta_lambda_after for t in timed])
    y = np.array([t.t_eq for t in timed])
    if len(timed) < 3 or len({_group_key(v) for v in x}) < 2:
        part.reason = (f"{len(timed)} of {len(part.runs)} step-change runs could be timed (needs ≥ 3 with ≥ 2 "
                       f"distinct ηλ after the change; see p3_note)")
        return part
    line = sps.linregress(np.log(x), np.log(y))  # x = ηλ > 0 and T_eq > 0 (timed after the change)
    slope, se, dof = float(line.slope), float(line.stderr), len(x) - 2
    fit = Fit(slope, se, t_crit(0.05, dof) * se, dof, len(x))
    part.fit, part.statistic = fit, slope
    part.status = fit.judge(P3_SLOPE, P3_SLOPE_TOL, P3_SLOPE_MAX_HALFWIDTH)
    h, margin = fit.halfwidth, fit.margin(P3_SLOPE_TOL)
    reasons = {"fails": f"T_eq ∝ (ηλ)^{slope:.2f} ± {h:.2f}, not −1 (margin {margin:.2f})",
               "untested": f"T_eq slope {slope:.2f} ± {h:.2f}: too uncertain (half-width > {P3_SLOPE_MAX_HALFWIDTH}); "
                           f"add ηλ values or seeds",
               "holds": f"T_eq ∝ (ηλ)^{slope:.2f} ± {h:.2f} over {len(x)} runs (−1 within {margin:.2f})"}
    part.reason = reasons[part.status]
    return part


# ------------------------------------------------------------------------------------------------- check

ADD = {
    "P1": "an equilibrium window: budget ≥ 1.5/(ηλ) raw steps after the last change, plus ≥ 3 log points",
    "P2": "runs with equal ηλ and different η (sweep lr and weight_decay, e.g. lr = [0.05, 0.1, 0.2] × "
          "weight_decay = [2.5e-3, 5e-3, 1e-2]) and seeds = [0, 1] or more",
    "P3": "a step change: [schedule.weight_decay] kind = 'piecewise', at = [epoch after equilibrium], values = "
          "[1, 4] (or [schedule.lr]) over ≥ 3 values of ηλ, logging at ≤ T_eq/3 (log.every_steps)",
}


@dataclass
class IntrinsicResult:
    """The three predictions on the prepared runs, and the runs left out."""

    runs: list[RunSegment]
    excluded: list[Excluded]
    p1: P1Part
    p2: P2Part
    p3: P3Part

    @property
    def parts(self) -> dict[str, Part]:
        return {"P1": self.p1, "P2": self.p2, "P3": self.p3}

    @property
    def tested(self) -> list[str]:
        return [n for n, p in self.parts.items() if p.status != "untested"]

    @property
    def outcome(self) -> Outcome:
        """REFUTED if a tested part fails, CONFIRMED if every tested part holds, INCONCLUSIVE if none is tested."""
        if any(p.status == "fails" for p in self.parts.values()):
            return "REFUTED"
        return "CONFIRMED" if self.tested else "INCONCLUSIVE"

    @property
    def statistic(self) -> float | None:
        """The first tested part's."""
        return next((p.statistic for p in self.parts.values() if p.status != "untested"), None)

    def summary(self) -> str:
        text = "; ".join(f"{n} {p.status} ({p.reason})" for n, p in self.parts.items())
        if not self.tested:
            return f"No part could be tested: {text}."
        untested = ", ".join(n for n in self.parts if n not in self.tested) or "none"
        return f"{self.outcome}: tested {', '.join(self.tested)} ({untested} untestable). {text}."

    def evidence(self) -> list[dict[str, Any]]:
        """One row per prepared run: its window, window means, P1 ratio and P3 timing."""
        rows = []
        for r in self.runs:
            p1, p3 = self.p1.runs.get(r.run_id), self.p3.runs.get(r.run_id)
            rows.append({
                "run_id": r.run_id, "trial_id": r.row.get("trial_id"), "seed": r.row.get("seed"),
                "lr": float(r.row.get("lr")), "weight_decay": float(r.row.get("weight_decay")),
                "svag_l": float(r.row.get("svag_l") or 1.0), "eta_raw": r.eta_raw, "lambda": r.lam,
                "eta_lambda": r.eta_lambda, "change_step": r.change_step, **r.info(),
                "weight_norm_sq": _wmean(r, "weight_norm", square=True), "effective_lr": _wmean(r, "effective_lr"),
                "test_loss": _wmean(r, "test_loss"), "test_acc": _wmean(r, "test_acc"),
                **(p1.row() if p1 else {}), **(p3.row() if p3 else {})})
        return rows

    def details(self) -> dict[str, Any]:
        return {"parts": {n: p.as_json() for n, p in self.parts.items()}, "tested": self.tested,
                "excluded": [e.as_json() for e in self.excluded]}


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None,
          burn_in: float = BURN_IN, within: float = P3_WITHIN, alpha: float = ALPHA) -> Verdict:
    """P1, P2, P3 of docs/theory.md §4 (see the module docstring for statistics and decision rules).

    ``metric``: what P3 times, ``"weight_norm"`` (|w|², default) or ``"angular_update"``. ``tolerance``: P1's
    relative band, ratio ∈ [1/(1+tol), 1+tol] (default 0.25 → [0.8, 1.25], docs/theory.md §4). ``burn_in``: k, the
    equilibrium window starts k/(η_raw λ) raw steps after the last change (default 1.5). ``within``: P3's x
    (default 0.10). ``alpha``: P2's family-wise level for the equal-metric comparisons (default 0.01).
    """
    metric = metric or "weight_norm"
    if metric not in P3_METRICS:
        raise ValueError(f"intrinsic-lr metric must be one of {P3_METRICS} (what P3 times), got {metric!r}")
    tol = P1_TOLERANCE if tolerance is None else float(tolerance)
    params = {"p1_tolerance": tol, "burn_in_k": burn_in, "p3_metric": metric, "p3_within": within, "alpha": alpha}
    tolerance_info = {
        "p1_band": [1 / (1 + tol), 1 + tol], "burn_in_k": burn_in,
        "p2_slope": f"0.5 ± max({P2_SLOPE_TOL}, t0.975·SE), undetermined if t0.975·SE > {P2_SLOPE_MAX_HALFWIDTH}",
        "p2_metrics": f"|diff| ≤ {P2_REL_MARGIN:.0%}·|ref| + t_crit·SE (pooled seed SD, α = {alpha:g}, Bonferroni)",
        "p3": f"T_eq to within {within:.0%} of the new equilibrium; slope −1 ± max({P3_SLOPE_TOL}, t0.975·SE), "
              f"undetermined if t0.975·SE > {P3_SLOPE_MAX_HALFWIDTH}",
        "why": "docs/theory.md §4: P1 band [0.8, 1.25]; equilibrium after ≥ k/(ηλ) steps = 4k relaxation times of "
               "|w|⁴; seed noise (P2) and the fit's standard error (P2 slope, P3) size the rest",
    }
    if data.finished_runs().empty:
        return inconclusive(NAME, "The study has no finished runs.", ["completed runs"], parameters=params,
                            tolerance=tolerance_info)
    prepared, excluded, needs = _eligible(data, burn_in)
    if not prepared:
        return inconclusive(NAME, "No run is a scale-invariant model trained by plain SGD with weight decay: the "
                                  "intrinsic-LR predictions do not apply.", needs or ["eligible runs with points"],
                            parameters=params, tolerance=tolerance_info,
                            details={"excluded": [e.as_json() for e in excluded]})
    res = IntrinsicResult(prepared, excluded, _p1(prepared, tol), _p2(prepared, alpha), _p3(prepared, metric, within))
    for name, part in res.parts.items():
        if part.status == "untested":
            part.add = ADD[name]
    missing = [ADD[n] for n in res.parts] if res.outcome == "INCONCLUSIVE" else []
    return Verdict(NAME, res.outcome, res.summary(), res.statistic, params, tolerance_info, res.evidence(), missing,
                   res.details())


# ------------------------------------------------------------------------------------------------ figure


def figure(data: StudyData, verdict: Verdict) -> Any:
    """(a) angular_update²/(2ηλ) against steps × ηλ after the last change, with the P1 band; (b) window-mean
    |w|² against η/λ (log–log) per ηλ group with the √(η/λ) reference; (c) T_eq against ηλ with slope −1."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    rows = {int(e["run_id"]): e for e in verdict.evidence}
    band = verdict.tolerance.get("p1_band", [0.8, 1.25])
    for rid, e in rows.items():
        pts = data.points[data.points.run_id == rid].sort_values("step")
        pts = pts[pts.step > e["change_step"]]
        t = (pts.step.to_numpy(float) - e["change_step"]) * e["eta_lambda"]
        ax1.plot(t, pts.angular_update.to_numpy(float) ** 2 / (2 * e["eta_lambda"]), lw=1,
                 label=f"ηλ={e['eta_lambda']:.2g}, η={e['eta_raw']:.2g}")
    ax1.axhspan(band[0], band[1], color="0.9", zorder=0)
    ax1.axhline(1, color="k", lw=0.8)
    ax1.axvline(verdict.parameters.get("burn_in_k", BURN_IN), color="k", ls=":", lw=0.8)
    ax1.set(xlabel="raw steps × ηλ since the last change", ylabel="angular update² / (2ηλ)", title="P1")
    if 0 < len(rows) <= 12:  # an empty legend is a matplotlib warning
        ax1.legend(fontsize=6)
    groups: dict[float, list[dict[str, Any]]] = {}
    for e in rows.values():
        if np.isfinite(e.get("weight_norm_sq", np.nan)):
            groups.setdefault(_group_key(e["eta_lambda"]), []).append(e)
    for g in groups.values():
        x = np.array([e["eta_raw"] / e["lambda"] for e in g])
        y = np.array([e["weight_norm_sq"] for e in g])
        ax2.loglog(x, y, "o", label=f"ηλ={g[0]['eta_lambda']:.2g}")
        xs = np.geomspace(x.min(), x.max(), 10)
        ax2.loglog(xs, np.exp(np.mean(np.log(y) - 0.5 * np.log(x))) * np.sqrt(xs), "k:", lw=0.8)
    ax2.set(xlabel="η/λ", ylabel="|w|² (window mean)", title="P2: |w|² ∝ √(η/λ)")
    if groups:
        ax2.legend(fontsize=6)
    timed = [e for e in rows.values() if np.isfinite(e.get("t_eq", np.nan))]
    if timed:
        x = np.array([e["p3_eta_lambda_after"] for e in timed])
        y = np.array([e["t_eq"] for e in timed])
        ax3.loglog(x, y, "o")
        xs = np.geomspace(x.min(), x.max(), 10)
        ax3.loglog(xs, np.exp(np.mean(np.log(y) + np.log(x))) / xs, "k:", lw=0.8, label="slope −1")
        ax3.legend(fontsize=6)
    ax3.set(xlabel="ηλ after the change", ylabel="T_eq (raw steps)", title="P3")
    fig.suptitle(f"intrinsic-lr: {verdict.verdict}")
    return fig
