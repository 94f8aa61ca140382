"""``nsr``: predict the largest batch for which the linear scaling rule holds from a base run's noise-to-signal
ratio, and compare with the largest batch for which it held in the same study (docs/theory.md §2).

Prediction. On the base runs (κ = 1, else the smallest κ, of the linear-scaling path, SGD, l = 1) the ``noise``
diagnostic gives G_t (unbiased ‖∇L‖²) and N_t (≈ tr Σ/B0). Both are averaged over a late window *separately*
(docs/theory.md §2, §9: the ratio of averages, never the average of ratios), pooled over the base seeds. Under LSR
G_t/N_t grows ∝ B, so the ratio reaches the failure threshold τ (default 2, docs/theory.md §2) at
B* = τ·B0·N_t/G_t (= 2·B0·N_t/G_t). The window is the last ``window`` (default ½) of the base run's stretch at its
base learning rate (before any decay; docs/theory.md §2 uses epochs 200–250 of a 300-epoch run decayed at 250);
step 0 is never in it. The
prediction is ``quantities.predict_batch``, which the report's noise figure draws too.

Observation: the ``lsr`` check's own comparison of the path (``paths.compare_path``: each κ against the base at
equal SDE time over the whole trajectory, relative tolerance 5% of the base's metric, trajectory-aware errors; a
diverged run fails its κ). B_hold = B0·(largest κ that holds with no failing κ below it); B_fail = B0·(the first
κ that fails), if any; κ in between are unresolved. Paths with l > 1 (SVAG) are not used.

Decision (factor f = ``tolerance``, default 2, the paper's agreement). The observed limit lies in [B_hold, B_fail).
CONFIRMED if B* is within ×f of every batch size in it (B_fail/f ≤ B* ≤ f·B_hold — with a doubling grid,
B_hold ≤ B* ≤ 2·B_hold; the paper's three read-offs all pass); REFUTED if within ×f of none (B* < B_hold/f: LSR
held well past the prediction, or B* > f·B_fail: it failed well before); otherwise INCONCLUSIVE — no κ failed, so
B_hold is only a lower bound, or the grid of κ is too coarse. With ≥ 2 base seeds each seed's own B* is
classified too; if any disagrees with the pooled call the verdict is INCONCLUSIVE (seed noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sweeper.checks import quantities
from sweeper.checks.base import Outcome, StudyData, Verdict, inconclusive
from sweeper.checks.defaults import METRIC, RELATIVE, SEEDS_HINT
from sweeper.checks.lsr import metric_or_none
from sweeper.checks.paths import PathResult, compare_path
from sweeper.checks.quantities import THRESHOLD, WINDOW, BatchPrediction
from sweeper.checks.windows import Curves

NAME = "nsr"
AGREEMENT = 2.0  # prediction and observation agree within this factor (docs/theory.md §2, the paper's figure)


def _prediction_row(pred: BatchPrediction, seed: int | None) -> dict[str, Any]:
    return {"what": "prediction" + (" (pooled)" if seed is None else " (one seed)"), "seed": seed, "B0": pred.b0,
            "G_t": pred.g_t, "N_t": pred.n_t, "G_over_N_at_B0": pred.g_over_n, "measurements": len(pred.steps),
            "B_star": pred.b_star}


@dataclass
class Prediction:
    """B* from the base runs' noise (``quantities.predict_batch``): pooled over the base seeds, and each seed's own
    (seed, prediction) for the base runs with window measurements."""

    pooled: BatchPrediction
    seeds: list[tuple[int, BatchPrediction]]

    def rows(self) -> list[dict[str, Any]]:
        """Evidence: the pooled prediction first, then one row per base seed."""
        return [_prediction_row(self.pooled, None)] + [_prediction_row(p, s) for s, p in self.seeds]


@dataclass
class Placement:
    """The predicted B* (from Ḡ_t/N̄_t at B0) against the observed limit, which lies in [B_hold, B_fail) (batch
    sizes, samples; B_fail None: no κ failed), judged within the agreement factor f."""

    b_star: float
    g_over_n: float
    b_hold: float
    b_fail: float | None
    factor: float
    seed_b_stars: list[float]
    call: Outcome = "INCONCLUSIVE"  # of the pooled B*
    seed_calls: list[Outcome] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """B*/B_hold (the verdict's statistic)."""
        return self.b_star / self.b_hold

    @property
    def seeds_disagree(self) -> bool:
        return len(self.seed_calls) >= 2 and any(c != self.call for c in self.seed_calls)

    def classify(self, b_star: float) -> Outcome:
        """CONFIRMED if ``b_star`` is within ×f of all of [B_hold, B_fail), REFUTED if of none of it."""
        f, b_fail = self.factor, self.b_fail
        if b_star < self.b_hold / f or (b_fail is not None and b_star > f * b_fail):
            return "REFUTED"
        if b_fail is not None and self.b_hold >= b_star / f and b_fail <= f * b_star:
            return "CONFIRMED"
        return "INCONCLUSIVE"

    def as_json(self) -> dict[str, Any]:
        return {"B_star": self.b_star, "B_hold": self.b_hold, "B_fail": self.b_fail, "seed_calls": self.seed_calls}


@dataclass
class NsrPath:
    """One linear path: B* predicted from its base runs against the limit its lsr comparison observed. ``b0``: the
    base batch size (samples); ``note``: why B* could not be placed (``placement`` None)."""

    path: PathResult
    b0: float
    prediction: Prediction | None
    placement: Placement | None = None
    call: Outcome = "INCONCLUSIVE"
    note: str = ""
    missing: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.path.label

    @property
    def ratio(self) -> float | None:
        return self.placement.ratio if self.placement else None

    def describe(self) -> str:
        """One clause: the prediction, where LSR held and failed, and the call."""
        p = self.placement
        if p is None:
            return self.note
        observed = (f"LSR held up to B = {p.b_hold:g}" + (f" and failed at B = {p.b_fail:g}" if p.b_fail is not None
                                                          else " (no κ failed)") + f" on {self.path.metric}")
        text = (f"predicted B* = {p.b_star:.4g} from G_t/N_t = {p.g_over_n:.3g} at B0 = {self.b0:g}; "
                f"{observed}: B*/B_hold = {p.ratio:.3g}")
        f = p.factor
        if p.seeds_disagree:
            return text + f"; the base seeds' own B* disagree on the call ({', '.join(p.seed_calls)})"
        if p.call == "CONFIRMED":
            return text + f", within ×{f:g}"
        if p.call == "REFUTED":
            # REFUTED with no failing κ can only mean B* < B_hold/f
            return text + (f": LSR held well past the prediction (B* < B_hold/{f:g})"
                           if p.b_fail is None or p.b_star < p.b_hold / f
                           else f": LSR failed well before the prediction (B* > {f:g}·B_fail = {f * p.b_fail:g})")
        if p.b_fail is None:
            return text + "; no κ failed, so the observed limit is only a lower bound"
        return text + (f"; the observed limit lies between B = {p.b_hold:g} and {p.b_fail:g}, too wide a bracket to "
                       f"be within ×{f:g} of B* throughout")

    def evidence(self) -> list[dict[str, Any]]:
        """The prediction rows, then the lsr comparison's row per κ."""
        pred = self.prediction.rows() if self.prediction else []
        return pred + [{"what": "LSR path", **row} for row in self.path.rows]

    def as_json(self) -> dict[str, Any]:
        out = {"label": self.label, "B0": self.b0, "ratio": self.ratio, "missing": self.missing,
               "path": {k: v for k, v in self.path.as_json().items() if k != "windows"}, "rows": self.path.rows,
               "window_steps": list(self.prediction.pooled.steps) if self.prediction else []}
        return out | (self.placement.as_json() if self.placement else {}) | {"call": self.call,
                                                                               "text": self.describe()}


def _predict(data: StudyData, base: pd.DataFrame, threshold: float, window: float) -> Prediction | None:
    """The pooled prediction over the base runs and each base seed's own (None: no window measurements)."""
    pooled = quantities.predict_batch(data, base, threshold, window)
    if pooled is None:
        return None
    seeds = []
    for rid in pooled.run_ids:
        one = base[base.run_id == rid]
        seed_pred = quantities.predict_batch(data, one, threshold, window)
        assert seed_pred is not None  # the run has window measurements: it is in pooled.run_ids
        seeds.append((int(one.seed.iloc[0]), seed_pred))
    return Prediction(pooled, seeds)


def _one_path(data: StudyData, curves: Curves, base: dict[str, Any], runs: pd.DataFrame, relative: float,
              threshold: float, window: float, factor: float) -> NsrPath:
    """Compute: lsr's comparison of the path, the prediction from its base runs and, where both allow, B* placed
    against the observed limit (else a note and what is missing)."""
    path = compare_path(curves, runs, base, arm="linear", rule="linear", relative=relative)
    base_runs = quantities.base_runs(runs)
    b0 = float(base_runs.batch_size.iloc[0])
    out = NsrPath(path, b0, _predict(data, base_runs, threshold, window))
    if out.prediction is None:
        out.note = (f"the base runs (κ = {path.baseline_kappa:g}, B = {b0:g}) have no noise diagnostic after step 0 "
                    "to predict B* from")
        out.missing = ["[diagnostics.noise] with every_epochs small enough for several measurements in the late "
                       "constant-LR window (e.g. every_epochs = 1)"]
        return out
    pooled = out.prediction.pooled
    if not (pooled.g_t > 0 and pooled.n_t > 0):
        out.note = (f"G_t averaged over the window is {pooled.g_t:.3g} ≤ 0: the gradient signal is buried in the "
                    "noise of the estimate, so B* cannot be predicted")
        out.missing = ["diagnostics.noise.batches: more batch gradients per measurement (m), or more measurements "
                       "in the late window (smaller every_epochs)"]
        return out
    decided = [k for k in path.kappas if k.status in ("holds", "fails")]
    if not path.kappas or (not decided and path.missing):
        out.note = (f"B* = {pooled.b_star:.4g} predicted, but the lsr comparison could not place the observed limit "
                    f"({path.note})")
        out.missing = path.missing or [SEEDS_HINT]
        return out
    b_hold = b0 * path.largest_holding / path.baseline_kappa
    b_fail = None if path.first_failing is None else b0 * path.first_failing / path.baseline_kappa
    out.placement = Placement(pooled.b_star, pooled.g_over_n, b_hold, b_fail, factor,
                              [p.b_star for _, p in out.prediction.seeds])
    return out


def _decide(out: NsrPath) -> None:
    """The path's call (module docstring: Decision) and, if INCONCLUSIVE, what is missing."""
    p = out.placement
    if p is None:
        return
    p.call = p.classify(p.b_star)
    p.seed_calls = [p.classify(b) for b in p.seed_b_stars]
    out.call = "INCONCLUSIVE" if p.seeds_disagree else p.call
    if p.seeds_disagree:
        out.missing = ["seeds: more base-run seeds, or more noise measurements in the late window"]
    elif p.call == "INCONCLUSIVE" and p.b_fail is None:
        out.missing = [f"scaling.factors: larger κ, up to at least κ = {2 * p.b_star / out.b0:.3g} "
                       f"(B = {2 * p.b_star:.4g}), so that the observed limit is reached"]
    elif p.call == "INCONCLUSIVE":
        out.missing = [f"scaling.factors: κ between {out.path.largest_holding:g} and {out.path.first_failing:g} to "
                       "place the observed limit more finely"]


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None,
          threshold: float = THRESHOLD, window: float = WINDOW, lsr_relative: float | None = None) -> Verdict:
    """Predicted B* = τ·B0·N_t/G_t against the largest batch for which ``lsr`` finds the rule holding.

    ``metric``: point column ``lsr`` compares (its default, ``test_loss``); ``tolerance``: agreement factor f
    (default 2, docs/theory.md §2); ``threshold``: τ, the G_t/N_t at failure (default 2, docs/theory.md §2);
    ``window``: late fraction of the base-LR stretch averaged (default ½); ``lsr_relative``: lsr's relative
    tolerance (its default).
    """
    factor = AGREEMENT if tolerance is None else float(tolerance)
    relative = RELATIVE if lsr_relative is None else float(lsr_relative)
    tol = {"agreement_factor": factor, "threshold_G_over_N": threshold, "window": window,
           "lsr_relative": relative,
           "why": f"B* = {threshold:g}·B0·N_t/G_t (docs/theory.md §2: G_t/N_t ≈ {threshold:g} at failure, ∝ B under "
                  f"LSR); agreement within ×{factor:g} as in the paper's figure; the observed limit is where the lsr "
                  f"check (relative tolerance {relative:g}, seed-noise intervals) finds the rule holding / failing"}
    points = data.point_columns(metric or METRIC, "sde_time")
    name, bad = metric_or_none(points, metric)
    params = {"metric": name, "threshold": threshold, "window": window}
    all_paths = quantities.linear_paths(data)
    if not all_paths:
        return inconclusive(NAME, "No linear-scaling path of SGD runs (l = 1) to observe where LSR fails.",
                            ['[scaling] rule = "linear" with factors reaching past the predicted B*, e.g. '
                             'factors = [1, 2, 4, 8, 16, 32]'], tolerance=tol, parameters=params)
    if bad:
        return inconclusive(NAME, f"Cannot compare: {bad}.", [f"--metric: a recorded point column ({bad})"],
                            tolerance=tol, parameters=params)
    curves = Curves(points, name, "sde_time")
    results = [_one_path(data, curves, b, g, relative, threshold, window, factor) for b, g in all_paths]
    for r in results:
        _decide(r)
    calls = [r.call for r in results]
    verdict: Outcome = ("REFUTED" if "REFUTED" in calls else "INCONCLUSIVE" if "INCONCLUSIVE" in calls
                        else "CONFIRMED")
    lead = next(r for r in results if r.call == verdict)
    many = len(results) > 1
    text = "; ".join((f"[{r.label}] " if many else "") + r.describe() for r in results)
    text = text[0].upper() + text[1:] + "."
    evidence = [({"path": r.label} if many else {}) | e for r in results for e in r.evidence()]
    details = {"paths": [r.as_json() for r in results]}
    missing = sorted({m for r in results if r.call == "INCONCLUSIVE" for m in r.missing})
    return Verdict(NAME, verdict, text, lead.ratio, params, tol, evidence, missing, details)


def figure(data: StudyData, verdict: Verdict) -> Any:
    """Left: G_t/N_t of the (first) path's base runs against epoch, window measurements filled. Right: the path's
    final metric against batch size coloured by lsr's call per κ, with the predicted B* (its ×f band) and B_hold."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    paths_ = verdict.details.get("paths", [])
    p = paths_[0] if paths_ else {}
    diag = data.diagnostics
    base_ids: list[int] = next((e["run_ids"] for e in p.get("path", {}).get("runs", [])
                                if e["kappa"] == p["path"]["baseline_kappa"]), [])
    window = set(p.get("window_steps", []))
    for r in base_ids:
        rows = diag[(diag.run_id == r) & (diag.kind == "noise")].sort_values("step") if "kind" in diag else diag
        pts = data.points[data.points.run_id == r].sort_values("step")
        if rows.empty or pts.empty:
            continue
        epoch = np.interp(rows.step, pts.step, pts.epoch)
        line, = ax1.plot(epoch, rows.value, "-", alpha=0.6)
        filled = rows.step.isin(window).to_numpy()
        ax1.plot(epoch[filled], rows.value.to_numpy()[filled], "o", color=line.get_color())
    ax1.set(xlabel="epoch", ylabel="G_t / N_t (base runs)", yscale="log", title="noise-to-signal at B0")
    rows = p.get("rows", [])
    colors = {"baseline": "black", "holds": "green", "fails": "red", "unresolved": "orange"}
    if rows:
        col = next(k for k in rows[0] if k.startswith("final_"))
        for row in rows:
            ax2.plot(row["batch_size"], row.get(col, np.nan), "o", color=colors.get(row["status"], "grey"))
        ax2.plot([r["batch_size"] for r in rows], [r.get(col, np.nan) for r in rows], "-", color="grey", lw=0.8)
        ax2.set(xscale="log", yscale="log", xlabel="batch size", ylabel=f"{col} (green holds, red fails)")
    if p.get("B_hold"):
        ax2.axvline(p["B_hold"], color="green", label=f"B_hold = {p['B_hold']:g}")
    if p.get("B_fail"):
        ax2.axvline(p["B_fail"], color="red", lw=0.8, label=f"B_fail = {p['B_fail']:g}")
    if p.get("B_star") and np.isfinite(p["B_star"]):
        f = verdict.tolerance.get("agreement_factor", AGREEMENT)
        ax2.axvline(p["B_star"], color="purple", ls="--", label=f"predicted B* = {p['B_star']:.4g}")
        ax2.axvspan(p["B_star"] / f, p["B_star"] * f, color="purple", alpha=0.1)
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=8)
    ax2.set_title(f"nsr: {verdict.verdict}")
    fig.tight_layout()
    return fig
