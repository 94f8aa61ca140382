"""``svag``: is the SDE a valid model of SGD here? (THEORY.md §1, Li, Malladi & Arora 2021.) SVAG(l) follows the
SDE with weak error O(1/l), so runs differing only in l should (a) converge as l grows, the distance between
consecutive l shrinking like 1/l, and (b) if the SDE models SGD, l = 1 lies within noise of the largest l.

Groups: runs equal in everything but l and seed. x is the raw-step multiplier: l for SGD, ℓ² for Adam/RMSprop
(whose SVAG mixes batches with l = ℓ²), so the predicted rate is 1/x either way.

Trajectory distance. As in ``lsr``: the common SDE-time range [0, T] of the group's finished runs is cut into K
equal windows (default 5) and each run's metric (default ``test_loss``) averaged over each window (equal SDE time
by construction). For consecutive levels x_i < x_{i+1}, per window Δ_k = mean difference (paired by seed when the
levels hold the same seeds, else Welch) with standard error SE_k; D² = mean_k(Δ_k² − SE_k²), which removes the
seed-noise floor (E[Δ̂²] = Δ² + SE²), D = √max(D², 0). With weak error c/x the mean trajectories differ by
c·(1/x_i − 1/x_{i+1}), so D̃_i = D_i/(1 − x_i/x_{i+1}) ∝ 1/x_i: log–log slope −1 against x_i.

Noise. SE(D²) by a bootstrap over seeds (400 resamples, fixed RNG; seeds resampled jointly across levels when
paired). A pair is *measurable* when D² > 2·SE(D²). The slope is fitted (``stats.loglog_slope``) over the measurable
pairs (≥ 2); its SE is the bootstrap SE (half the 16–84% range) combined in quadrature with the fit's residual
SE (≥ 3 pairs: curvature away from a power law).

Decisions. Rate, with exponent tolerance δ = 0.5 (distances must shrink at least like x^−½; the closed form on
linreg gives slopes of −1 to −1.8 between l = 1 and 8): *holds* if slope + 2·SE ≤ −1 + δ, *fails* if
slope − 2·SE > −1 + δ, else *unresolved*; fewer than 2 measurable pairs: *within noise* (the levels are
indistinguishable at this seed noise, so no rate can be measured, and none is contradicted). SGD vs SDE: l = 1
against the largest l window by window exactly as ``lsr`` compares κ with κ = 1: tolerance
τ_k = r·|largest-l value| (r = ``tolerance``, default 5%, as in lsr), Student-t allowance Bonferroni over the K
windows (α = 5%); *holds* if every window is within τ_k with its allowance, *fails* if some window is beyond it or
an l = 1 run diverged while the largest l did not (a run whose metric grows past 1000× its initial value counts as
diverged). Verdict: REFUTED if SGD-vs-SDE fails or the rate fails; CONFIRMED if SGD-vs-SDE holds and the rate
holds or is within noise; INCONCLUSIVE otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sweeper.checks.base import StudyData, Verdict, inconclusive
from sweeper.checks.lsr import (ADAPTIVE, ALPHA, BLOWUP, METRIC, RELATIVE, SEEDS_HINT, WINDOWS, blown_up,
                                metric_or_none)
from sweeper.checks.stats import contrast, loglog_slope, value_at, window_means

NAME = "svag"
DELTA = 0.5  # exponent tolerance: the distance must shrink at least like x^(−1+δ)
Z = 2.0  # standard errors for "measurable" distances and the slope decision
BOOTSTRAP = 400
GROUP_KEYS = ("optimizer", "batch_size", "lr", "weight_decay", "momentum", "beta1", "beta2", "eps",
              "scaling_rule", "kappa")
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


def _sq_distance(a: np.ndarray, b: np.ndarray, sa: np.ndarray, sb: np.ndarray) -> float:
    """Noise-corrected mean squared window difference D² between two levels (rows: seeds, columns: windows)."""
    terms = []
    for k in range(a.shape[1]):
        c = contrast(a[:, k], b[:, k], sa, sb)
        if math.isfinite(c.diff) and math.isfinite(c.se):
            terms.append(c.diff**2 - c.se**2)
    return float(np.mean(terms)) if terms else math.nan


def _distances(means: list[np.ndarray], seeds: list[np.ndarray]) -> np.ndarray:
    return np.array([_sq_distance(means[i], means[i + 1], seeds[i], seeds[i + 1]) for i in range(len(means) - 1)])


def _bootstrap(means: list[np.ndarray], seeds: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """D² of every consecutive pair for BOOTSTRAP resamples of the seeds, shape (BOOTSTRAP, pairs)."""
    paired = all(set(s.tolist()) == set(seeds[0].tolist()) for s in seeds)
    out = np.full((BOOTSTRAP, len(means) - 1), np.nan)
    order = [np.argsort(s) for s in seeds]
    for b in range(BOOTSTRAP):
        if paired:
            pick = rng.integers(0, len(seeds[0]), len(seeds[0]))
            rs = [m[o][pick] for m, o in zip(means, order)]
            ss = [np.arange(len(pick))] * len(means)  # resampled rows paired by position, labels made distinct
        else:
            picks = [rng.integers(0, len(s), len(s)) for s in seeds]
            rs = [m[p] for m, p in zip(means, picks)]
            ss = [None] * len(means)
        out[b] = [_sq_distance(rs[i], rs[i + 1], ss[i], ss[i + 1]) if paired else
                  _sq_distance(rs[i], rs[i + 1], None, None) for i in range(len(means) - 1)]
    return out


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) >= 3:
        return loglog_slope(x, y)
    if len(x) == 2 and np.all(x > 0) and np.all(y > 0):
        return float(np.diff(np.log(y))[0] / np.diff(np.log(x))[0]), math.nan
    return math.nan, math.nan


def _group(points: pd.DataFrame, label: str, runs: pd.DataFrame, metric: str, relative: float, windows: int,
           alpha: float) -> dict[str, Any]:
    """Distances, slope and the SGD-vs-largest-level comparison for one group (module docstring)."""
    res: dict[str, Any] = {"label": label, "metric": metric, "rows": [], "windows": [], "missing": []}
    xs = sorted(float(x) for x in runs._x.unique())
    by_x = {x: runs[np.isclose(runs._x, x)] for x in xs}
    res["runs"] = [{"x": x, "svag_l": float(g.svag_l.iloc[0]), "run_ids": [int(r) for r in g.run_id]}
                   for x, g in by_x.items()]
    res["levels"] = xs
    if not any(math.isclose(x, 1.0) for x in xs):
        return res | {"status": "INCONCLUSIVE", "note": "no l = 1 (SGD) runs", "missing": [LEVELS_HINT]}
    diverged = {x: int((g.status == "diverged").sum()) for x, g in by_x.items()}
    done = {x: g[g.status == "completed"] for x, g in by_x.items()}
    first = points[points.run_id.isin(runs.run_id)].sort_values("step").groupby("run_id")[metric].first()
    scale = float(np.nanmedian(np.abs(first.astype(float)))) if len(first) else math.inf
    for x, g in done.items():  # finite but past BLOWUP × the initial value: diverging (the loop flags only NaN/inf)
        blown = blown_up(points, g.run_id, metric, scale)
        diverged[x] += len(blown)
        done[x] = g[~g.run_id.isin(blown)]
    if any(diverged[x] for x in xs[1:]):
        bad = [f"{x:g}" for x in xs[1:] if diverged[x]]
        return res | {"status": "INCONCLUSIVE", "note": f"SVAG runs at x = {', '.join(bad)} diverged",
                      "missing": ["sweep.lr: a smaller learning rate (the SDE reference itself diverged)"]}
    short = [x for x in xs if len(done[x]) < 2 and not (x == 1.0 and diverged[x])]
    if short:
        return res | {"status": "INCONCLUSIVE", "note": f"fewer than 2 finished seeds at x = "
                      f"{', '.join(f'{x:g}' for x in short)}", "missing": [SEEDS_HINT]}
    t_end = float(np.nanmin([points.loc[points.run_id == r, "sde_time"].max()
                             for g in done.values() for r in g.run_id]))
    edges = np.linspace(0.0, t_end, windows + 1)
    res["edges"] = edges.tolist()
    means = {x: np.array([window_means(points, int(r), metric, edges) for r in g.run_id]).reshape(-1, windows)
             for x, g in done.items()}
    seeds = {x: g.seed.to_numpy() for x, g in done.items()}
    top = xs[-1]

    # (b) SGD against the largest level, as lsr compares κ with κ = 1.
    ref = np.nanmean(means[top], axis=0)
    tol = relative * np.abs(ref)
    if diverged[1.0]:
        sgd_call, why = "fails", (f"{diverged[1.0]} l = 1 run(s) diverged (or grew past {BLOWUP:g}× the initial "
                                  f"{metric}); the largest l did not")
    else:
        cs = [contrast(means[top][:, k], means[1.0][:, k], seeds[top], seeds[1.0]) for k in range(windows)]
        calls = [c.decide(float(tol[k]), alpha, windows) for k, c in enumerate(cs)]
        for k, (c, call) in enumerate(zip(cs, calls)):
            res["windows"].append({"group": label, "window": k + 1, "t_from": float(edges[k]),
                                   "t_to": float(edges[k + 1]), f"largest_l_{metric}": float(ref[k]),
                                   "diff_sgd_minus_largest": c.diff, "se": c.se, "df": c.df,
                                   "halfwidth": c.halfwidth(alpha, windows), "tolerance": float(tol[k]),
                                   "paired": c.paired, "call": call})
        ratio = [(abs(c.diff) + c.halfwidth(alpha, windows)) / t if t > 0 else math.inf for c, t in zip(cs, tol)]
        worst = int(np.nanargmax(np.nan_to_num(ratio, nan=np.inf)))
        sgd_call = "fails" if "fails" in calls else "holds" if all(c == "holds" for c in calls) else "unresolved"
        i = calls.index("fails") if sgd_call == "fails" else worst
        why = (f"window {i + 1}: l = 1 − l = {top:g} is {cs[i].diff:+.4g} ± {cs[i].halfwidth(alpha, windows):.3g} "
               f"(tolerance {tol[i]:.3g})")
    res |= {"sgd_call": sgd_call, "sgd_why": why}

    # (a) Convergence rate over the non-diverged levels.
    lv = [x for x in xs if len(done[x]) >= 2]
    rate: dict[str, Any] = {"call": "unresolved", "slope": math.nan, "se": math.nan, "pairs": 0}
    if len(lv) >= 3:
        m, s = [means[x] for x in lv], [seeds[x] for x in lv]
        d2 = _distances(m, s)
        boot = _bootstrap(m, s, np.random.default_rng(0))
        d2_se = np.nanstd(boot, axis=0, ddof=1)
        x_lo, x_hi = np.array(lv[:-1]), np.array(lv[1:])
        shrink = 1.0 - x_lo / x_hi
        measurable = np.isfinite(d2) & (d2 > Z * d2_se)
        for i in range(len(d2)):
            dist = math.sqrt(max(d2[i], 0.0))
            res["rows"].append({"group": label, "what": "distance", "x": float(x_lo[i]), "x_next": float(x_hi[i]),
                                "D": dist, "D_se": float(d2_se[i] / (2 * dist)) if dist > 0 else math.nan,
                                "D2": float(d2[i]), "D2_se": float(d2_se[i]), "D_scaled": float(dist / shrink[i]),
                                "measurable": bool(measurable[i])})
        use = np.flatnonzero(measurable)
        rate["pairs"] = int(len(use))
        if len(use) >= 2:
            y = np.sqrt(d2[use]) / shrink[use]
            slope, se_fit = _slope(x_lo[use], y)
            floor = np.maximum(boot[:, use], 1e-300)
            boot_slopes = np.array([_slope(x_lo[use], np.sqrt(b) / shrink[use])[0] for b in floor])
            q16, q84 = np.nanpercentile(boot_slopes, [16, 84])
            se = math.sqrt(((q84 - q16) / 2) ** 2 + (se_fit if math.isfinite(se_fit) else 0.0) ** 2)
            bound = -1.0 + DELTA
            call = "holds" if slope + Z * se <= bound else "fails" if slope - Z * se > bound else "unresolved"
            rate |= {"call": call, "slope": slope, "se": se, "se_fit": se_fit, "se_bootstrap": float((q84 - q16) / 2)}
        else:
            rate["call"] = "within noise"
    else:
        rate["call"] = "too few levels"
        res["missing"].append(LEVELS_HINT)
    res["rate"] = rate
    if sgd_call == "fails" or rate["call"] == "fails":
        status = "REFUTED"
    elif sgd_call == "holds" and rate["call"] in ("holds", "within noise"):
        status = "CONFIRMED"
    else:
        status = "INCONCLUSIVE"
        if sgd_call == "unresolved" or rate["call"] == "unresolved":
            res["missing"].append(f"seeds: more than {min(len(done[x]) for x in lv)} seeds per l, or a longer "
                                  "budget (each window then averages more of the trajectory)")
    res["rows"].append({"group": label, "what": f"SGD vs l = {top:g}", "call": sgd_call, "why": why})
    res["rows"].append({"group": label, "what": "rate", **rate})
    return res | {"status": status}


def _describe(g: dict[str, Any]) -> str:
    if "sgd_call" not in g:
        return g.get("note", "")
    r = g["rate"]
    if r["call"] in ("holds", "fails", "unresolved") and math.isfinite(r["slope"]):
        rate = f"distance between consecutive l ∝ l^{r['slope']:.2f} ± {r['se']:.2f} over {r['pairs']} pairs " \
               f"(rate {r['call']}; predicted −1, tolerance −1 + {DELTA:g})"
    elif r["call"] == "within noise":
        rate = "distances between consecutive l are within seed noise (rate not measurable)"
    else:
        rate = f"rate: {r['call']}"
    sgd = {"holds": "SGD (l = 1) is within tolerance of", "fails": "SGD (l = 1) departs from",
           "unresolved": "undecided whether SGD (l = 1) matches"}[g["sgd_call"]]
    return f"{rate}; {sgd} l = {g['levels'][-1]:g} ({g['sgd_why']})"


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None,
          windows: int = WINDOWS, alpha: float = ALPHA) -> Verdict:
    """Do SVAG trajectories converge at O(1/l), with SGD within noise of the largest l?

    ``metric``: point column (default ``test_loss``); ``tolerance``: relative tolerance r of the SGD-vs-largest-l
    comparison (default 0.05 of the largest-l value per window); ``windows``: K equal windows of SDE time
    (default 5); ``alpha``: error rate of that comparison (default 0.05). Rest: module docstring.
    """
    relative = RELATIVE if tolerance is None else float(tolerance)
    tol = {"relative": relative, "alpha": alpha, "windows": windows, "exponent_tolerance": DELTA, "z": Z,
           "why": (f"rate: slope of log distance against log l must be ≤ −1 + {DELTA:g} beyond {Z:g} SE (SE: "
                   f"bootstrap over seeds ⊕ fit residuals; distances noise-corrected, measurable if D² > {Z:g} SE); "
                   f"SGD vs largest l: |Δ| + t(1 − α/(2K), df)·SE ≤ r·|largest-l value| in every window, r = "
                   f"{relative:g} as in lsr (a quarter of THEORY §2's 20% failure line), α = {alpha:g}, K = {windows}")}
    name, bad = metric_or_none(data.points, metric)
    params = {"metric": name or METRIC, "windows": windows, "alpha": alpha, "axis": "sde_time"}
    runs = data.finished_runs()
    if "svag_l" not in runs or runs.svag_l.fillna(1.0).nunique() < 2:
        return inconclusive(NAME, "The study has no runs that differ in l.", [LEVELS_HINT, SEEDS_HINT],
                            tolerance=tol, parameters=params)
    if bad:
        return inconclusive(NAME, f"Cannot compare: {bad}.", [f"--metric: a recorded point column ({bad})"],
                            tolerance=tol, parameters=params)
    groups = [_group(data.points, label, g, name, relative, windows, alpha) for label, g in _groups(runs)
              if g._x.nunique() >= 2]
    if not groups:
        return inconclusive(NAME, "No group of runs differs only in l.", [LEVELS_HINT], tolerance=tol,
                            parameters=params)
    evidence = [row for g in groups for row in g["rows"]]
    details = {"groups": [{k: v for k, v in g.items() if k != "rows"} for g in groups]}
    many = len(groups) > 1
    text = f"SVAG on {name} at equal SDE time: " + "; ".join(
        (f"[{g['label']}] " if many else "") + _describe(g) for g in groups) + "."
    statuses = [g["status"] for g in groups]
    slopes = [g["rate"]["slope"] for g in groups if "rate" in g and math.isfinite(g["rate"]["slope"])]
    stat = slopes[0] if slopes else None
    if "REFUTED" in statuses:
        return Verdict(NAME, "REFUTED", text, stat, params, tol, evidence, details=details)
    if "INCONCLUSIVE" in statuses:
        missing = sorted({m for g in groups for m in g["missing"]}) or [SEEDS_HINT]
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
        for j, entry in enumerate(levels):
            ids = entry["run_ids"]
            pts = data.points[data.points.run_id.isin(ids)]
            if pts.empty:
                continue
            grid = np.linspace(0.0, float(pts.sde_time.max()), 200)
            curves = np.array([value_at(data.points, r, g["metric"], grid) for r in ids])
            with np.errstate(all="ignore"):
                mean = np.nanmean(curves, axis=0) if np.isfinite(curves).any() else grid * np.nan
            ax1.plot(grid, mean, color=cmap(j / max(1, len(levels) - 1) * 0.85),
                     lw=2.2 if entry["svag_l"] == 1 else 1.2, label=f"l = {entry['svag_l']:g}")
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
