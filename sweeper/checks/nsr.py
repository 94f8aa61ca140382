"""``nsr``: predict the largest batch for which the linear scaling rule holds from a base run's noise-to-signal
ratio, and compare with the largest batch for which it held in the same study (THEORY.md §2).

Prediction. On the base runs (κ = 1, else the smallest κ, of the linear-scaling path, SGD, l = 1) the ``noise``
diagnostic gives G_t (unbiased ‖∇L‖²) and N_t (≈ tr Σ/B0). Both are averaged over a late window *separately*
(THEORY §2, §9: the ratio of averages, never the average of ratios), pooled over the base seeds. Under LSR G_t/N_t
grows ∝ B, so the ratio reaches the failure threshold τ (default 2, THEORY §2) at B* = τ·B0·N_t/G_t
(= 2·B0·N_t/G_t). The window is the last ``window`` (default ½) of the base run's stretch at its base learning rate
(before any decay; THEORY §2 uses epochs 200–250 of a 300-epoch run decayed at 250); step 0 is never in it. The
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

from typing import Any

import numpy as np
import pandas as pd

from sweeper.checks import quantities
from sweeper.checks.base import StudyData, Verdict, inconclusive
from sweeper.checks.defaults import RELATIVE, SEEDS_HINT
from sweeper.checks.lsr import metric_or_none
from sweeper.checks.paths import compare_path
from sweeper.checks.quantities import THRESHOLD, WINDOW, BatchPrediction

NAME = "nsr"
AGREEMENT = 2.0  # prediction and observation agree within this factor (THEORY §2, the paper's figure)


def _classify(b_star: float, b_hold: float, b_fail: float | None, factor: float) -> str:
    """The observed limit lies in [B_hold, B_fail): CONFIRMED if B* is within ×f of all of it, REFUTED if of none."""
    if b_star < b_hold / factor or (b_fail is not None and b_star > factor * b_fail):
        return "REFUTED"
    if b_fail is not None and b_hold >= b_star / factor and b_fail <= factor * b_star:
        return "CONFIRMED"
    return "INCONCLUSIVE"


def _prediction_row(pred: BatchPrediction, seed: int | None) -> dict[str, Any]:
    return {"what": "prediction" + (" (pooled)" if seed is None else " (one seed)"), "seed": seed, "B0": pred.b0,
            "G_t": pred.g_t, "N_t": pred.n_t, "G_over_N_at_B0": pred.g_over_n, "measurements": len(pred.steps),
            "B_star": pred.b_star}


def _predict(data: StudyData, base: pd.DataFrame, threshold: float, window: float
             ) -> tuple[BatchPrediction | None, list[dict[str, Any]]]:
    """The pooled prediction over the base runs (``quantities.predict_batch``), and evidence rows: pooled first,
    then one per base seed."""
    pooled = quantities.predict_batch(data, base, threshold, window)
    if pooled is None:
        return None, []
    rows = [_prediction_row(pooled, None)]
    for rid in pooled.run_ids:
        one = base[base.run_id == rid]
        seed_pred = quantities.predict_batch(data, one, threshold, window)
        assert seed_pred is not None  # the run has window measurements: it is in pooled.run_ids
        rows.append(_prediction_row(seed_pred, int(one.seed.iloc[0])))
    return pooled, rows


def _one_path(data: StudyData, base: dict[str, Any], runs: pd.DataFrame, metric: str, relative: float,
              threshold: float, window: float, factor: float) -> dict[str, Any]:
    """Prediction and observation on one linear path: ``call``, ``text``, ``missing``, ``ratio``, evidence."""
    path = compare_path(data.points, runs, base, arm="linear", rule="linear", metric=metric,
                            relative=relative, axis="sde_time")
    base_runs = quantities.base_runs(runs)
    b0 = float(base_runs.batch_size.iloc[0])
    pooled, pred = _predict(data, base_runs, threshold, window)
    out: dict[str, Any] = {"label": path.label, "B0": b0, "ratio": None, "missing": [],
                           "path": {k: v for k, v in path.as_json().items() if k != "windows"},
                           "rows": path.rows, "evidence": pred + [{"what": "LSR path", **row} for row in path.rows],
                           "window_steps": list(pooled.steps) if pooled else []}
    if pooled is None:
        out.update(call="INCONCLUSIVE", text=f"the base runs (κ = {path.baseline_kappa:g}, B = {b0:g}) have no "
                   "noise diagnostic after step 0 to predict B* from",
                   missing=["[diagnostics.noise] with every_epochs small enough for several measurements in the "
                            "late constant-LR window (e.g. every_epochs = 1)"])
        return out
    g, n, b_star = pooled.g_t, pooled.n_t, pooled.b_star
    if not (g > 0 and n > 0):
        out.update(call="INCONCLUSIVE", text=f"G_t averaged over the window is {g:.3g} ≤ 0: the gradient signal "
                   "is buried in the noise of the estimate, so B* cannot be predicted",
                   missing=["diagnostics.noise.batches: more batch gradients per measurement (m), or more "
                            "measurements in the late window (smaller every_epochs)"])
        return out
    decided = [r for r in path.rows if r["status"] in ("holds", "fails")]
    if not path.rows or (not decided and path.missing):
        out.update(call="INCONCLUSIVE", text=f"B* = {b_star:.4g} predicted, but the lsr comparison could not "
                   f"place the observed limit ({path.note})", missing=path.missing or [SEEDS_HINT])
        return out
    b_hold = b0 * path.largest_holding / path.baseline_kappa
    b_fail = None if path.first_failing is None else b0 * path.first_failing / path.baseline_kappa
    ratio = b_star / b_hold
    call = _classify(b_star, b_hold, b_fail, factor)
    seed_calls = [_classify(r["B_star"], b_hold, b_fail, factor) for r in pred[1:]]
    observed = (f"LSR held up to B = {b_hold:g}" + (f" and failed at B = {b_fail:g}" if b_fail is not None
                                                    else " (no κ failed)") + f" on {metric}")
    text = (f"predicted B* = {b_star:.4g} from G_t/N_t = {g / n:.3g} at B0 = {b0:g}; {observed}: "
            f"B*/B_hold = {ratio:.3g}")
    out.update(ratio=ratio, B_star=b_star, B_hold=b_hold, B_fail=b_fail, seed_calls=seed_calls, call=call)
    if len(seed_calls) >= 2 and any(c != call for c in seed_calls):
        out.update(call="INCONCLUSIVE", text=text + f"; the base seeds' own B* disagree on the call "
                   f"({', '.join(seed_calls)})",
                   missing=["seeds: more base-run seeds, or more noise measurements in the late window"])
    elif call == "CONFIRMED":
        out["text"] = text + f", within ×{factor:g}"
    elif call == "REFUTED":
        early = b_star < b_hold / factor
        out["text"] = text + (f": LSR held well past the prediction (B* < B_hold/{factor:g})" if early else
                              f": LSR failed well before the prediction (B* > {factor:g}·B_fail = {factor * b_fail:g})")
    elif b_fail is None:
        out.update(text=text + "; no κ failed, so the observed limit is only a lower bound",
                   missing=[f"scaling.factors: larger κ, up to at least κ = {2 * b_star / b0:.3g} "
                            f"(B = {2 * b_star:.4g}), so that the observed limit is reached"])
    else:
        out.update(text=text + f"; the observed limit lies between B = {b_hold:g} and {b_fail:g}, too wide a "
                   f"bracket to be within ×{factor:g} of B* throughout",
                   missing=[f"scaling.factors: κ between {path.largest_holding:g} and {path.first_failing:g} to "
                            "place the observed limit more finely"])
    return out


def check(data: StudyData, *, metric: str | None = None, tolerance: float | None = None,
          threshold: float = THRESHOLD, window: float = WINDOW, lsr_relative: float | None = None) -> Verdict:
    """Predicted B* = τ·B0·N_t/G_t against the largest batch for which ``lsr`` finds the rule holding.

    ``metric``: point column ``lsr`` compares (its default, ``test_loss``); ``tolerance``: agreement factor f
    (default 2, THEORY §2); ``threshold``: τ, the G_t/N_t at failure (default 2, THEORY §2); ``window``: late
    fraction of the base-LR stretch averaged (default ½); ``lsr_relative``: lsr's relative tolerance (its default).
    """
    factor = AGREEMENT if tolerance is None else float(tolerance)
    relative = RELATIVE if lsr_relative is None else float(lsr_relative)
    tol = {"agreement_factor": factor, "threshold_G_over_N": threshold, "window": window,
           "lsr_relative": relative,
           "why": f"B* = {threshold:g}·B0·N_t/G_t (THEORY §2: G_t/N_t ≈ {threshold:g} at failure, ∝ B under LSR); "
                  f"agreement within ×{factor:g} as in the paper's figure; the observed limit is where the lsr "
                  f"check (relative tolerance {relative:g}, seed-noise intervals) finds the rule holding / failing"}
    name, bad = metric_or_none(data.points, metric)
    params = {"metric": name, "threshold": threshold, "window": window}
    all_paths = quantities.linear_paths(data)
    if not all_paths:
        return inconclusive(NAME, "No linear-scaling path of SGD runs (l = 1) to observe where LSR fails.",
                            ['[scaling] rule = "linear" with factors reaching past the predicted B*, e.g. '
                             'factors = [1, 2, 4, 8, 16, 32]'], tolerance=tol, parameters=params)
    if bad:
        return inconclusive(NAME, f"Cannot compare: {bad}.", [f"--metric: a recorded point column ({bad})"],
                            tolerance=tol, parameters=params)
    results = [_one_path(data, b, g, name, relative, threshold, window, factor) for b, g in all_paths]
    calls = [r["call"] for r in results]
    verdict = "REFUTED" if "REFUTED" in calls else "INCONCLUSIVE" if "INCONCLUSIVE" in calls else "CONFIRMED"
    lead = next(r for r in results if r["call"] == verdict)
    many = len(results) > 1
    text = "; ".join((f"[{r['label']}] " if many else "") + r["text"] for r in results)
    text = text[0].upper() + text[1:] + "."
    evidence = [({"path": r["label"]} if many else {}) | e for r in results for e in r["evidence"]]
    details = {"paths": [{k: v for k, v in r.items() if k != "evidence"} for r in results]}
    missing = sorted({m for r in results if r["call"] == "INCONCLUSIVE" for m in r["missing"]})
    return Verdict(NAME, verdict, text, lead["ratio"], params, tol, evidence, missing, details)


def figure(data: StudyData, verdict: Verdict) -> Any:
    """Left: G_t/N_t of the (first) path's base runs against epoch, window measurements filled. Right: the path's
    final metric against batch size coloured by lsr's call per κ, with the predicted B* (its ×f band) and B_hold."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    paths_ = verdict.details.get("paths", [])
    p = paths_[0] if paths_ else {}
    diag = data.diagnostics
    base_ids = next((e["run_ids"] for e in p.get("path", {}).get("runs", [])
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
