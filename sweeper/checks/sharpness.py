"""``sharpness``: does final sharpness fall as the SGD temperature η/B rises (docs/theory.md §6, Fokker–Planck view)?

Data. Each finished (completed) run's final sharpness λ_max = the value of its last ``sharpness`` diagnostic (top
Hessian eigenvalue on one fixed batch, eval mode), against its temperature T = η/B (base learning rate over batch
size; SVAG runs share their SGD run's T, since the noise l·Σ/B at step η/l leaves η/B unchanged). Diverged runs,
and runs whose last λ_max is ≤ 0 (the top eigenvalue came out negative), are left out and listed
(``quantities.final_sharpness``, which the report's sharpness figure draws too).

Statistic. The least-squares slope s of log λ_max on log T over the runs (every seed a point): λ_max ∝ T^s.
Its confidence interval at level ``tolerance`` (default 0.95) is the wider union of (a) the regression interval,
slope ± t_{n−2}·SE, and (b) when every temperature has ≥ 2 runs, a percentile bootstrap that resamples runs within
each temperature (seed replicates), 2000 draws with a fixed generator.

Decision. CONFIRMED if the whole interval is below 0 (sharpness significantly falls with η/B); REFUTED if it is
above 0 (significantly rises); INCONCLUSIVE if it contains 0 — a flat or noisy trend is not a confirmation —
naming more seeds or a wider η/B range. At least 3 distinct temperatures are needed.

Caveat reported with the verdict: when η alone varies and λ_max sits near the stability edge 2/η (λ_max·η/2 ≥
0.8 everywhere; docs/theory.md §9), a negative slope can come from stability rather than temperature; varying B at fixed
η separates the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from sweeper.checks.base import Outcome, StudyData, Verdict, inconclusive
from sweeper.checks.quantities import final_sharpness

NAME = "sharpness"
LEVEL = 0.95  # confidence level of the slope interval
BOOTSTRAP = 2000
EDGE = 0.8  # λ_max·η/2 at or above this: at the edge of stability


@dataclass
class SlopeFit:
    """Least-squares slope s of log λ_max on log T (λ_max ∝ T^s; s dimensionless) over ``n`` runs, with its
    standard error and intervals at one level: the regression t-interval, the within-temperature bootstrap (None
    unless every temperature has ≥ 2 runs) and ``ci``, their union."""

    slope: float
    intercept: float  # log λ_max at T = 1
    se: float
    n: int
    regression_ci: list[float]
    bootstrap_ci: list[float] | None = None

    @property
    def ci(self) -> list[float]:
        cis = [self.regression_ci] + ([self.bootstrap_ci] if self.bootstrap_ci is not None else [])
        return [min(c[0] for c in cis), max(c[1] for c in cis)]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"slope": self.slope, "intercept": self.intercept, "se": self.se, "n": self.n,
                               "regression_ci": self.regression_ci}
        if self.bootstrap_ci is not None:
            out["bootstrap_ci"] = self.bootstrap_ci
        return out | {"ci": self.ci}


def slope_interval(frame: pd.DataFrame, level: float = LEVEL, seed: int = 0) -> SlopeFit:
    """Slope of log λ_max on log T with its regression and (if possible) bootstrap intervals and their union.

    The bootstrap (``scipy.stats.bootstrap``, percentile, ``BOOTSTRAP`` draws, generator seeded by ``seed``) passes
    each temperature's log λ_max as its own sample, so runs are resampled within their temperature."""
    x, y = np.log(frame.temperature.to_numpy(float)), np.log(frame.lambda_max.to_numpy(float))
    n = len(x)
    fit = sps.linregress(x, y)
    slope = float(fit.slope)
    se = float(fit.stderr) if n > 2 else math.nan
    q = float(sps.t.ppf(0.5 + level / 2, n - 2)) if n > 2 else math.nan
    out = SlopeFit(slope, float(fit.intercept), se, n, [slope - q * se, slope + q * se])
    temps = np.unique(frame.temperature)
    groups = [y[frame.temperature.to_numpy() == t] for t in temps]
    if all(len(g) >= 2 for g in groups):
        xs = np.concatenate([np.full(len(g), np.log(t)) for g, t in zip(groups, temps, strict=True)])
        xc = xs - xs.mean()

        def resampled_slope(*ys: np.ndarray, axis: int = -1) -> np.ndarray:
            """Least-squares slope on log T of each resample (the groups' draws side by side, same order as xs)."""
            yy = np.concatenate(ys, axis=axis)
            return (yy - yy.mean(axis=axis, keepdims=True)) @ xc / (xc @ xc)

        boot = sps.bootstrap(groups, resampled_slope, n_resamples=BOOTSTRAP, vectorized=True,
                             confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
        out.bootstrap_ci = [float(boot.confidence_interval.low), float(boot.confidence_interval.high)]
    return out


@dataclass
class Setting:
    """The runs at one (η, B): their count, final λ_max mean and seed SD (NaN for one run), and mean λ_max·η/2
    (1 at the stability edge λ_max = 2/η)."""

    lr: float
    batch_size: float
    runs: int
    lambda_max_mean: float
    lambda_max_sd: float
    edge_ratio: float

    def row(self) -> dict[str, Any]:
        return {"lr": self.lr, "batch_size": self.batch_size, "temperature": self.lr / self.batch_size,
                "runs": self.runs, "lambda_max_mean": self.lambda_max_mean, "lambda_max_sd": self.lambda_max_sd,
                "lambda_max_times_lr_over_2": self.edge_ratio}


@dataclass
class Trend:
    """The slope of final λ_max on η/B over ``runs`` runs at ``temperatures`` distinct η/B spanning ×``span``,
    per-setting summaries, what was varied (lr, batch_size) and the decision on the slope's interval."""

    fit: SlopeFit
    level: float
    runs: int
    temperatures: int
    span: float
    settings: list[Setting]
    varied: list[str]
    status: Outcome = "INCONCLUSIVE"
    at_edge: bool = False  # only η varies and every setting sits at the edge of stability
    missing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lo, hi = self.fit.ci
        text = (f"Final λ_max ∝ (η/B)^s with s = {self.fit.slope:.3g}, {self.level:.0%} CI [{lo:.3g}, {hi:.3g}] over "
                f"{self.runs} runs at {self.temperatures} temperatures spanning ×{self.span:.3g}")
        text += {"CONFIRMED": ": sharpness falls with η/B", "REFUTED": ": sharpness rises with η/B",
                 "INCONCLUSIVE": ": the interval contains 0, so no trend is established (a flat result is not a "
                                 "confirmation)"}[self.status]
        if self.at_edge:
            text += (f"; caution: only η varies and λ_max·η/2 ≥ {EDGE:g} everywhere (edge of stability, λ_max ≈ "
                     "2/η), so the trend may be stability, not temperature — vary B at fixed η to separate them")
        return text + "."


def _trend(frame: pd.DataFrame, level: float) -> Trend:
    """Compute: the slope fit and one summary per (η, B) setting."""
    settings = [Setting(lr, b, len(g), float(g.lambda_max.mean()),
                        float(g.lambda_max.std(ddof=1)) if len(g) > 1 else math.nan, float(g.edge_ratio.mean()))
                for (lr, b), g in frame.groupby(["lr", "batch_size"])]
    temps = np.unique(frame.temperature)
    return Trend(slope_interval(frame, level), level, len(frame), len(temps), float(temps.max() / temps.min()),
                 settings, [k for k in ("lr", "batch_size") if frame[k].nunique() > 1])


def _decide(trend: Trend) -> None:
    """CONFIRMED if the interval is below 0, REFUTED if above, else INCONCLUSIVE; the edge-of-stability caveat."""
    lo, hi = trend.fit.ci
    trend.status = "CONFIRMED" if hi < 0 else "REFUTED" if lo > 0 else "INCONCLUSIVE"
    if trend.status == "INCONCLUSIVE":
        trend.missing = ["seeds: more per configuration", "sweep.lr / sweep.batch_size: a wider η/B range"]
    trend.at_edge = trend.varied == ["lr"] and all(s.edge_ratio >= EDGE for s in trend.settings)


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None) -> Verdict:
    """Slope of log final λ_max on log(η/B) and its confidence interval (level ``tolerance``, default 0.95).

    ``metric`` is not used (the quantity is the ``sharpness`` diagnostic). CONFIRMED: CI below 0; REFUTED: CI
    above 0; INCONCLUSIVE: CI contains 0, or fewer than 3 temperatures / too few runs to size the noise.
    """
    level = LEVEL if tolerance is None else float(tolerance)
    tol = {"confidence_level": level, "bootstrap_draws": BOOTSTRAP, "edge_of_stability_ratio": EDGE,
           "why": f"docs/theory.md §6 predicts a decrease with η/B; the sign is called only when the {level:.0%} "
                  "interval of the log–log slope excludes 0 (regression t-interval, widened to the within-temperature "
                  "seed bootstrap where every temperature has ≥ 2 seeds)"}
    frame, left_out = final_sharpness(data)
    details: dict[str, Any] = {"left_out": left_out}
    if frame.empty:
        return inconclusive(NAME, "No sharpness diagnostic on any completed run.",
                            ["[diagnostics.sharpness] with every_epochs = the budget's epochs (measured at the "
                             "start and the end)"], tolerance=tol, details=details)
    temps = np.unique(frame.temperature)
    details["runs"] = frame.to_dict("records")
    if len(temps) < 3:
        return inconclusive(NAME, f"Only {len(temps)} distinct η/B value(s); a trend needs at least 3.",
                            ["sweep.lr and/or sweep.batch_size: at least 3 values of η/B, spanning ≥ 10×"],
                            tolerance=tol, details=details)
    if len(frame) < 4:
        return inconclusive(NAME, f"{len(frame)} runs leave too few degrees of freedom to size the noise.",
                            ["seeds: at least 2 per configuration"], tolerance=tol, details=details)
    trend = _trend(frame, level)
    _decide(trend)
    details |= {"fit": trend.fit.as_json(), "varied": trend.varied}
    params = {"runs": trend.runs, "temperatures": trend.temperatures, "temperature_span": trend.span,
              "varied": trend.varied}
    return Verdict(NAME, trend.status, trend.summary(), trend.fit.slope, params, tol,
                   [s.row() for s in trend.settings], trend.missing, details)


def figure(data: StudyData, verdict: Verdict) -> Any:
    """Final λ_max against η/B (log–log), one marker per run (filled by batch size), the fitted power law, and the
    stability edge 2/η of each run as a faint cross."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    frame, _ = final_sharpness(data)
    if not frame.empty:
        for b, g in frame.groupby("batch_size"):
            ax.loglog(g.temperature, g.lambda_max, "o", alpha=0.8, label=f"B = {b:g}")
            ax.loglog(g.temperature, 2 / g.lr, "x", color="grey", alpha=0.4)
        fit = verdict.details.get("fit")
        if fit:
            t = np.geomspace(frame.temperature.min(), frame.temperature.max(), 50)
            ax.loglog(t, np.exp(fit["intercept"]) * t ** fit["slope"], "k--",
                      label=f"slope {fit['slope']:.2f} [{fit['ci'][0]:.2f}, {fit['ci'][1]:.2f}]")
        ax.legend(fontsize=8)
    ax.set(xlabel="η / B", ylabel="final λ_max (× : 2/η)", title=f"sharpness: {verdict.verdict}")
    fig.tight_layout()
    return fig
