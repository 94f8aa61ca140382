"""The standard figures of a study report, each drawn only when the study's data has what it needs.

Every builder takes a :class:`~sweeper.checks.base.StudyData` and returns a :class:`StudyFigure`: the matplotlib
``Figure`` (Figure API only, no pyplot global state, so it is safe under the Agg backend and in threads) or, when the
data lacks what the figure needs, ``figure=None`` with ``missing`` saying what to add to the spec.

Figures (column names as in ``StudyData``'s docstring):

* ``metric_kappa`` / ``metric_l`` — ``test_loss`` and ``train_loss`` (one panel each) against SDE time
  (``points.sde_time``), mean over seeds (bold) and each seed (thin), coloured by κ (runs on a scaling path) or by
  ``svag_l``. The κ figure shows the runs at the smallest l, the l figure those at the smallest κ, so that one colour
  is one setting.
* ``noise_ratio`` — each run's Ḡ_t/N̄_t (``noise`` diagnostics' ``summary.g_t`` and ``summary.n_t``, each averaged
  over the run's late window, ``quantities.late_noise``) against batch size (log axes; G/N linear when an estimate
  is ≤ 0), with the failure threshold (docs/theory.md §2, default G/N = 2) and, for each linear-scaling path, the LSR
  line G/N ∝ B through its base runs and the predicted largest good batch B* = threshold·B0·N̄_t/Ḡ_t — the nsr
  check's prediction (``quantities.path_predictions``), so figure and verdict show the same B*.
* ``lr_angular`` — effective LR (``points.effective_lr``) and angular update (``points.angular_update``) against
  SDE time, one line per run, coloured by setting.
* ``covariance_spectra`` — top-k eigenvalues of the per-example gradient covariance (``covariance`` diagnostics'
  ``payload``), log scale: each run's last spectrum, and one run's spectra over training when measured more than once.
* ``sharpness`` — each completed run's final λ_max (``quantities.final_sharpness``, the values the sharpness check
  fits) against the temperature η/B (``runs.lr`` / ``runs.batch_size``), log–log.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from db.models import RUN_HPARAMS
from sweeper.checks import quantities
from sweeper.checks.base import StudyData

HYPER = [k for k in RUN_HPARAMS if k not in ("model", "dataset")]
"""The run columns that are hyperparameters (``runs`` and every points/diagnostics row carry them)."""

DEFAULT_NSR_THRESHOLD = quantities.THRESHOLD
"""G_t/N_t above which LSR is predicted to fail (docs/theory.md §2, the paper's figure)."""

_STYLES = ["-", "--", ":", "-."]


@dataclass
class StudyFigure:
    """One standard figure: ``key`` (file stem), ``title``, ``caption``; ``figure`` None with ``missing`` when the
    data lacks what it needs."""

    key: str
    title: str
    caption: str
    figure: Figure | None = None
    missing: str = ""


def standard_figures(data: StudyData, *, nsr_threshold: float = DEFAULT_NSR_THRESHOLD) -> list[StudyFigure]:
    """All standard figures of ``data`` in page order (drawn or with what is missing)."""
    builders: list[Callable[[StudyData], StudyFigure]] = [
        lambda d: metric_figure(d, "kappa"),
        lambda d: metric_figure(d, "svag_l"),
        lambda d: noise_ratio_figure(d, threshold=nsr_threshold),
        lr_angular_figure,
        covariance_figure,
        sharpness_figure,
    ]
    return [build(data) for build in builders]


# --- helpers -------------------------------------------------------------------------------------------------------

def _finite(frame: pd.DataFrame, *cols: str) -> pd.DataFrame:
    """Rows where every column in ``cols`` is a finite number."""
    keep = pd.Series(True, index=frame.index)
    for col in cols:
        if col not in frame:
            return frame.iloc[0:0]
        keep &= np.isfinite(pd.to_numeric(frame[col], errors="coerce"))
    return frame[keep]


def _colours(values: Sequence[float], cmap: str = "viridis") -> dict[float, tuple[float, float, float, float]]:
    """A colour per distinct value, spread by rank over the colormap (κ and l are usually geometric)."""
    distinct = sorted(set(values))
    colormap = colormaps[cmap]
    if len(distinct) == 1:
        return {distinct[0]: colormap(0.2)}
    return {v: colormap(0.9 * i / (len(distinct) - 1)) for i, v in enumerate(distinct)}


def _num(value: object) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.integer, np.floating)) else str(value)


def _varying(frame: pd.DataFrame, exclude: Sequence[str]) -> list[str]:
    """Hyperparameter columns (not in ``exclude``) that take more than one value in ``frame``."""
    return [c for c in HYPER if c in frame and c not in exclude and frame[c].nunique(dropna=False) > 1]


def _setting_label(row: pd.Series, cols: Sequence[str]) -> str:
    return ", ".join(f"{c}={_num(row[c])}" for c in cols) if cols else "all runs"


def _run_settings(frame: pd.DataFrame) -> tuple[dict[Hashable, str], list[str]]:
    """``{run_id: label}`` naming each run's setting by the hyperparameters that vary (seed excluded)."""
    cols = _varying(frame, exclude=["seed"])
    firsts = frame.groupby("run_id").first()
    return {rid: _setting_label(row, cols) for rid, row in firsts.iterrows()}, cols


def _setting_colours(labels: dict[Hashable, str]) -> dict[str, tuple]:
    """One tab10 colour per distinct setting label, in sorted order (cycling after ten)."""
    return {label: colormaps["tab10"](i % 10) for i, label in enumerate(sorted(set(labels.values())))}


def _legend_handles(colours: dict[str, tuple]) -> list[Line2D]:
    return [Line2D([0], [0], color=c, lw=2, label=label) for label, c in colours.items()]


# --- metric against SDE time ----------------------------------------------------------------------------------------

def metric_figure(data: StudyData, by: str) -> StudyFigure:
    """Metrics against SDE time coloured by ``by`` (``"kappa"`` or ``"svag_l"``)."""
    name = "κ" if by == "kappa" else "l"
    key = "metric_kappa" if by == "kappa" else "metric_l"
    title = f"Loss against SDE time by {name}"
    other = "svag_l" if by == "kappa" else "kappa"
    pts = data.points
    need = ('a [scaling] section, e.g. rule = "linear" and factors = [1, 2, 4, 8] (runs on a scaling path)'
            if by == "kappa" else "svag_l = [1, 4] to [sweep] (two or more values)")
    if pts.empty or by not in pts or "sde_time" not in pts or pts[by].dropna().nunique() < 2:
        return StudyFigure(key, title, "", missing=f"needs runs at two or more {name}: add {need}")
    pts = pts[pts[by].notna()]
    if other in pts and pts[other].notna().any():
        pts = pts[pts[other] == pts[other].min()]
    metrics = [m for m in ("test_loss", "train_loss") if m in pts and _finite(pts, "sde_time", m).shape[0] > 0]
    if not metrics:
        return StudyFigure(key, title, "", missing="needs test_loss or train_loss on the points (a [log] cadence)")
    colours = _colours(pts[by].astype(float).tolist())
    rest = _varying(pts, exclude=["seed", by, "batch_size", "lr"])
    styles = {tuple(k): _STYLES[i % len(_STYLES)] for i, (k, _) in enumerate(pts.groupby(rest, dropna=False))} \
        if rest else {}
    fig = Figure(figsize=(5.2 * len(metrics), 4.0), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        ok = _finite(pts, "sde_time", metric)
        positive = bool((ok[metric] > 0).all())
        for setting, group in ok.groupby([by, *rest], dropna=False):
            colour = colours[float(setting[0])]
            style = styles.get(tuple(setting[1:]), "-")
            for _, run in group.sort_values("step").groupby("run_id"):
                ax.plot(run.sde_time, run[metric], color=colour, lw=0.7, alpha=0.35, ls=style)
            mean = group.groupby("step").agg(t=("sde_time", "mean"), y=(metric, "mean")).sort_values("t")
            ax.plot(mean.t, mean.y, color=colour, lw=2.0, ls=style)
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel("SDE time")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    handles = _legend_handles({f"{name} = {_num(v)}": c for v, c in colours.items()})
    if rest:
        for k, style in styles.items():
            label = ", ".join(f"{c}={_num(v)}" for c, v in zip(rest, k, strict=True))
            handles.append(Line2D([0], [0], color="grey", ls=style, label=label))
    axes[0].legend(handles=handles, fontsize=8)
    shown = f"runs at {other} = {_num(pts[other].min())}; " if other in pts and pts[other].notna().any() else ""
    caption = (f"{', '.join(metrics)} against SDE time, coloured by {name} ({shown}bold: mean over seeds, thin: each "
               f"seed). Under the {'scaling rule' if by == 'kappa' else 'SDE approximation'} the curves coincide.")
    return StudyFigure(key, title, caption, fig)


# --- noise-to-signal ratio against batch size -----------------------------------------------------------------------

def _noise_ratios(data: StudyData) -> pd.DataFrame:
    """Per run with late-window noise measurements (``quantities.late_noise``): ``run_id``, ``batch_size``,
    ``svag_l`` and ``ratio`` = Ḡ_t/N̄_t over that window (NaN when N̄_t ≤ 0)."""
    out = []
    for run in data.runs.itertuples():
        late = quantities.late_noise(data, int(run.run_id))
        if late.empty or not late["summary.g_t"].notna().any():
            continue
        g, n = float(late["summary.g_t"].mean()), float(late["summary.n_t"].mean())
        out.append({"run_id": int(run.run_id), "batch_size": float(run.batch_size),
                    "svag_l": float(run.svag_l) if pd.notna(run.svag_l) else 1.0,
                    "ratio": g / n if n > 0 else np.nan})
    return _finite(pd.DataFrame(out, columns=["run_id", "batch_size", "svag_l", "ratio"]), "ratio", "batch_size")


def noise_ratio_figure(data: StudyData, threshold: float = DEFAULT_NSR_THRESHOLD) -> StudyFigure:
    key, title = "noise_ratio", "Noise-to-signal ratio G/N against batch size"
    per_run = _noise_ratios(data)
    if per_run.empty:
        return StudyFigure(key, title, "", missing="needs noise diagnostics: add [diagnostics.noise]")
    predictions = quantities.path_predictions(data, threshold)
    stars = [p.b_star for p in predictions if np.isfinite(p.b_star)]
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    colours = _colours(per_run.svag_l.tolist(), "plasma")
    for l_value, group in per_run.groupby("svag_l"):
        ax.scatter(group.batch_size, group.ratio, color=colours[l_value], s=28, zorder=3,
                   label=f"runs, l = {_num(l_value)}")
    positive = bool((per_run.ratio > 0).all())
    ax.set_xscale("log", base=2)
    if positive:
        ax.set_yscale("log")
    ax.axhline(threshold, color="crimson", ls="--", lw=1.2, label=f"threshold G/N = {_num(threshold)}")
    xs = np.geomspace(per_run.batch_size.min() / 1.5, max([per_run.batch_size.max(), *stars]) * 1.5, 50)
    for i, p in enumerate(predictions):
        style = _STYLES[i % len(_STYLES)]
        if p.g_over_n > 0:
            ax.plot(xs, p.g_over_n * xs / p.b0, color="grey", ls=style, lw=1.2,
                    label=f"LSR: G/N ∝ B from B0 = {_num(p.b0)}")
        if np.isfinite(p.b_star):
            ax.axvline(p.b_star, color="black", ls=style, lw=1.2, label=f"predicted B* = {p.b_star:.4g}")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("G_t / N_t")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    caption = (f"Each run's Ḡ_t/N̄_t (noise diagnostic; G_t and N_t each averaged over the last "
               f"{quantities.WINDOW:.0%} of the steps of its base-LR stretch, step 0 excluded) against its batch "
               f"size; dashed red: the failure threshold {_num(threshold)} (docs/theory.md §2); "
               f"{_prediction_text(predictions, threshold)}.")
    return StudyFigure(key, title, caption, fig)


def _prediction_text(predictions: Sequence[quantities.BatchPrediction], threshold: float) -> str:
    """The caption's account of the nsr check's B* predictions (or why there is none)."""
    if not predictions:
        return ("no B* prediction: it needs a linear-scaling path of SGD runs at l = 1 ([scaling] rule = "
                "\"linear\") whose base runs have noise measurements")
    return "; ".join(
        f"predicted largest good batch B* = {_num(threshold)}·B0·N̄/Ḡ = {p.b_star:.4g} (B0 = {_num(p.b0)})"
        if np.isfinite(p.b_star) else f"no B* from B0 = {_num(p.b0)}: the base runs' mean G_t is not > 0"
        for p in predictions)


# --- effective LR and angular update --------------------------------------------------------------------------------

def lr_angular_figure(data: StudyData) -> StudyFigure:
    key, title = "lr_angular", "Effective learning rate and angular update"
    pts = data.points
    cols = [c for c in ("effective_lr", "angular_update")
            if c in pts and not pts.empty and _finite(pts, "sde_time", c).shape[0] > 0]
    if not cols:
        return StudyFigure(key, title, "", missing="needs effective_lr or angular_update on the points (a [log] "
                                                     "cadence; both are measured on every logged step)")
    labels, _ = _run_settings(pts)
    colours = _setting_colours(labels)
    fig = Figure(figsize=(5.2 * len(cols), 4.0), layout="constrained")
    axes = fig.subplots(1, len(cols), squeeze=False)[0]
    for ax, col in zip(axes, cols, strict=True):
        ok = _finite(pts, "sde_time", col)
        for run_id, run in ok.sort_values("step").groupby("run_id"):
            ax.plot(run.sde_time, run[col], color=colours[labels[run_id]], lw=1.0, alpha=0.8)
        if bool((ok[col] > 0).all()):
            ax.set_yscale("log")
        ax.set_xlabel("SDE time")
        ax.set_ylabel(col)
        ax.set_title(col)
        ax.grid(alpha=0.3)
    if len(colours) <= 12:
        axes[0].legend(handles=_legend_handles(colours), fontsize=7)
    caption = (f"{' and '.join(cols)} of every run against SDE time, one line per run, coloured by setting. The "
               f"intrinsic-LR view (docs/theory.md) predicts angular update² ≈ 2ηλ at equilibrium.")
    return StudyFigure(key, title, caption, fig)


# --- covariance spectra ---------------------------------------------------------------------------------------------

def _spectrum(payload: object) -> np.ndarray:
    values = np.asarray(payload, dtype=float).ravel() if payload is not None else np.empty(0)
    return values[np.isfinite(values) & (values > 0)]


def covariance_figure(data: StudyData) -> StudyFigure:
    key, title = "covariance_spectra", "Gradient-noise covariance spectra"
    diag = data.diagnostics
    rows = diag[diag.kind == "covariance"] if "kind" in diag and "payload" in diag else diag.iloc[0:0]
    rows = rows[[len(_spectrum(p)) > 0 for p in rows.payload]] if not rows.empty else rows
    if rows.empty:
        return StudyFigure(key, title, "", missing="needs covariance diagnostics with eigenvalues: add "
                                                     "[diagnostics.covariance]")
    labels, _ = _run_settings(rows)
    colours = _setting_colours(labels)
    counts = rows.groupby("run_id").size()
    over_time = counts[counts > 1]
    fig = Figure(figsize=(5.2 * (2 if len(over_time) else 1), 4.0), layout="constrained")
    axes = fig.subplots(1, 2 if len(over_time) else 1, squeeze=False)[0]
    ax = axes[0]
    for run_id, run in rows.sort_values("step").groupby("run_id"):
        eig = _spectrum(run.payload.iloc[-1])
        ax.plot(np.arange(1, len(eig) + 1), eig, color=colours[labels[run_id]], lw=1.0, marker=".", alpha=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue index")
    ax.set_ylabel("eigenvalue of D")
    ax.set_title("last spectrum of each run")
    ax.grid(alpha=0.3, which="both")
    if len(colours) <= 12:
        ax.legend(handles=_legend_handles(colours), fontsize=7)
    extra = ""
    if len(over_time):
        run_id = over_time.index[0]
        run = rows[rows.run_id == run_id].sort_values("step")
        cmap = colormaps["viridis"]
        for i, (_, row) in enumerate(run.iterrows()):
            eig = _spectrum(row.payload)
            axes[1].plot(np.arange(1, len(eig) + 1), eig, color=cmap(0.9 * i / max(len(run) - 1, 1)), lw=1.0,
                         label=f"step {int(row.step)}")
        axes[1].set_yscale("log")
        axes[1].set_xlabel("eigenvalue index")
        axes[1].set_title(f"run {run_id} over training")
        axes[1].grid(alpha=0.3, which="both")
        axes[1].legend(fontsize=7)
        extra = f"; right: run {run_id}'s spectra over training (dark: early, light: late)"
    caption = ("Top eigenvalues of the per-example gradient covariance (covariance diagnostic payload), log scale; "
               f"left: each run's last measurement, coloured by setting{extra}.")
    return StudyFigure(key, title, caption, fig)


# --- sharpness against temperature ----------------------------------------------------------------------------------

def sharpness_figure(data: StudyData) -> StudyFigure:
    key, title = "sharpness", "Sharpness against temperature η/B"
    final, left_out = quantities.final_sharpness(data)
    if final.empty:
        return StudyFigure(key, title, "", missing="needs sharpness diagnostics on completed runs: add "
                                                     "[diagnostics.sharpness]")
    by = "optimizer" if final.optimizer.nunique() > 1 else "svag_l"
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    colours = {v: colormaps["tab10"](i % 10) for i, v in enumerate(sorted(final[by].unique(), key=str))}
    for value, group in final.groupby(by):
        ax.scatter(group.temperature, group.lambda_max, s=28, color=colours[value],
                   label=f"{'l' if by == 'svag_l' else by} = {_num(value)}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("temperature η/B")
    ax.set_ylabel("final λ_max (last sharpness measurement)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    dropped = f"; {len(left_out)} run(s) left out (diverged, or last λ_max ≤ 0)" if left_out else ""
    caption = ("Each completed run's final top Hessian eigenvalue (its last sharpness diagnostic, as the sharpness "
               "check uses it) against η/B (run lr over batch size), log–log. The Fokker–Planck view predicts "
               f"flatter minima (smaller λ_max) at higher temperature{dropped}.")
    return StudyFigure(key, title, caption, fig)
