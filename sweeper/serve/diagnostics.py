"""Diagnostics over training as JSON traces (``diagnostics`` rows; README "Diagnostics" names the kinds):

* ``noise`` — G_t/N_t (the row's value) with the failure threshold τ (docs/theory.md §2), and
  the noise scale B_simple = B·N_t/G_t with the B* predicted for each linear path (``quantities.path_predictions``,
  the ``nsr`` check's prediction);
* ``sharpness`` — λ_max over training; ``trajectory_stats`` — the Lévy-area statistics (z, p, low-frequency
  ratio, …) over training and as a table;
* ``covariance`` — the top-k eigenvalue spectrum of each measurement of one run.

A diagnostic is placed on the time axis by interpolating its step between the run's stored points just before and
just after it (two index seeks per row), so no trajectory is read.
"""

from __future__ import annotations

import io
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from db.models import Diagnostic, Point
from db.queries import diagnostics_frame, ids_in, runs_frame, study_spec
from sweeper.checks import quantities
from sweeper.checks.base import StudyData
from sweeper.serve.colours import palette
from sweeper.serve.trajectories import value

KINDS = ("noise", "sharpness", "trajectory_stats", "covariance")
LEVY_FIELDS = ("levy_statistic", "levy_z", "levy_p", "low_freq_ratio", "low_freq_p", "acf_fraction_outside",
               "msd_exponent")


def kinds(conn: Connection, run_ids: list[int]) -> list[str]:
    """The diagnostic kinds stored for these runs."""
    found = set(conn.scalars(sa.select(Diagnostic.kind).where(ids_in(Diagnostic.run_id, run_ids)).distinct()))
    return [k for k in KINDS if k in found]


def _neighbour(axis: str, after: bool) -> tuple[Any, Any]:
    """Correlated subqueries: step and ``axis`` of the run's point at or before (``after``: at or after) the
    diagnostic's step."""
    x = getattr(Point, axis)
    near = Point.step >= Diagnostic.step if after else Point.step <= Diagnostic.step
    order = Point.step.asc() if after else Point.step.desc()
    base = sa.select(Point.step, x).where(Point.run_id == Diagnostic.run_id, near).order_by(order).limit(1)
    step = base.with_only_columns(Point.step).correlate(Diagnostic).scalar_subquery()
    return step, base.with_only_columns(x).correlate(Diagnostic).scalar_subquery()


def rows(conn: Connection, run_ids: list[int], kind: str, axis: str, payload: bool = False) -> pd.DataFrame:
    """``run_id, step, x, value, summary`` (and ``payload`` arrays) of one kind for the runs, by run and step;
    ``x`` is the step on ``axis`` (NaN where the run has no point on either side)."""
    cols: list[Any] = [Diagnostic.run_id, Diagnostic.step, Diagnostic.value, Diagnostic.summary]
    if payload:
        cols.append(Diagnostic.payload)
    if axis != "step":
        (s0, x0), (s1, x1) = _neighbour(axis, False), _neighbour(axis, True)
        cols += [s0.label("s0"), x0.label("x0"), s1.label("s1"), x1.label("x1")]
    stmt = (sa.select(*cols).where(ids_in(Diagnostic.run_id, run_ids), Diagnostic.kind == kind)
            .order_by(Diagnostic.run_id, Diagnostic.step))
    result = conn.execute(stmt)
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    if frame.empty:
        return frame.assign(x=pd.Series(dtype=float))
    if axis == "step":
        frame["x"] = frame.step.astype(float)
    else:
        s0, s1, x0, x1 = (frame[c].astype(float).to_numpy() for c in ("s0", "s1", "x0", "x1"))
        with np.errstate(all="ignore"):
            t = np.where(s1 > s0, (frame.step.to_numpy() - s0) / (s1 - s0), 0.0)
        frame["x"] = np.where(np.isnan(x1), x0, np.where(np.isnan(x0), x1, x0 + t * (x1 - x0)))
        frame = frame.drop(columns=["s0", "x0", "s1", "x1"])
    frame["value"] = frame.value.astype(float)
    if payload:
        frame["payload"] = [None if p is None else np.load(io.BytesIO(p), allow_pickle=False) for p in frame.payload]
    return frame


def _field(frame: pd.DataFrame, field: str) -> np.ndarray:
    if field == "value":
        return frame.value.to_numpy(float)
    return np.array([(s or {}).get(field, np.nan) for s in frame.summary], dtype=float)


def traces(frame: pd.DataFrame, runs: pd.DataFrame, field: str, colour: str,
           colours: dict[Hashable, str]) -> list[dict[str, Any]]:
    """One trace per run of ``field`` (``value`` or a summary key) against ``x``, finite points only."""
    by_id = runs.set_index("run_id")
    out = []
    for run_id, group in frame.groupby("run_id", sort=True):
        x, y = group.x.to_numpy(float), _field(group, field)
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any() or run_id not in by_id.index:
            continue
        c = value(by_id.loc[run_id, colour])
        out.append({"name": str(by_id.loc[run_id, "trial_id"]), "run_ids": [int(run_id)], "colour": colours[c],
                    "x": x[ok].tolist(), "y": y[ok].tolist()})
    return out


def _scheduled_lr(engine: Engine, run_ids: list[int]) -> pd.DataFrame:
    """``run_id, step, lr_t`` (the scheduled learning rate at each point) of the runs: all ``late_noise`` reads of
    the points."""
    stmt = (sa.select(Point.run_id, Point.step, Point.lr.label("lr_t")).where(ids_in(Point.run_id, run_ids))
            .order_by(Point.run_id, Point.step))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame(result.all(), columns=list(result.keys())).astype({"lr_t": float})


def predictions(engine: Engine, name: str) -> list[dict[str, float]]:
    """The B* of each linear path whose base runs have noise measurements (``quantities.path_predictions`` on the
    runs, the base runs' scheduled lr and their noise rows only)."""
    runs = runs_frame(engine, name)
    empty = StudyData(name, {}, runs, pd.DataFrame(), pd.DataFrame())
    base_ids = [int(r) for _, g in quantities.linear_paths(empty) for r in quantities.base_runs(g).run_id]
    if not base_ids:
        return []
    data = StudyData(name, study_spec(engine, name), runs, _scheduled_lr(engine, base_ids),
                     diagnostics_frame(engine, name, "noise", base_ids))
    return [{"b0": p.b0, "b_star": p.b_star, "g_over_n": p.g_over_n, "threshold": quantities.THRESHOLD}
            for p in quantities.path_predictions(data)]


def study_view(engine: Engine, name: str, runs: pd.DataFrame, axis: str, colour: str) -> dict[str, Any]:
    """The diagnostics panels of a study for ``runs`` (rows of the runs table)."""
    ids = [int(r) for r in runs.run_id]
    colours = palette(value(v) for v in runs[colour])
    out: dict[str, Any] = {"x": axis, "colour": colour, "kinds": []}
    with engine.connect() as conn:
        present = kinds(conn, ids) if ids else []
        frames = {k: rows(conn, ids, k, axis) for k in present if k != "covariance"}
    out["kinds"] = present
    if "noise" in frames:
        out["noise"] = {"g_over_n": traces(frames["noise"], runs, "value", colour, colours),
                        "b_simple": traces(frames["noise"], runs, "b_simple", colour, colours),
                        "threshold": quantities.THRESHOLD, "predictions": predictions(engine, name)}
    if "sharpness" in frames:
        out["sharpness"] = {"lambda_max": traces(frames["sharpness"], runs, "value", colour, colours)}
    if "trajectory_stats" in frames:
        f = frames["trajectory_stats"]
        out["levy"] = {"levy_z": traces(f, runs, "levy_z", colour, colours), "table": levy_table(f)}
    if "covariance" in present:
        with engine.connect() as conn:
            counts = conn.execute(sa.select(Diagnostic.run_id, sa.func.count())
                                  .where(ids_in(Diagnostic.run_id, ids), Diagnostic.kind == "covariance")
                                  .group_by(Diagnostic.run_id).order_by(Diagnostic.run_id)).all()
        out["covariance_runs"] = [{"run_id": int(r), "measurements": int(n)} for r, n in counts]
    return out


def levy_table(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Each run's last ``trajectory_stats`` row: step, the p-value (value) and the Lévy-area summary fields."""
    last = frame.sort_values("step").groupby("run_id").tail(1)
    return [{"run_id": int(r.run_id), "step": int(r.step), "p_value": r.value,
             **{k: (r.summary or {}).get(k) for k in LEVY_FIELDS}} for r in last.itertuples()]


def spectra(engine: Engine, run_id: int, axis: str) -> dict[str, Any]:
    """One run's covariance measurements: each step's top-k eigenvalues (positive, finite) coloured early → late,
    and the summary scalars."""
    with engine.connect() as conn:
        frame = rows(conn, [run_id], "covariance", axis, payload=True)
    colours = palette(list(frame.step)) if len(frame) else {}
    out = []
    for r in frame.itertuples():
        eig = np.asarray(r.payload if r.payload is not None else [], dtype=float).ravel()
        eig = eig[np.isfinite(eig) & (eig > 0)]
        out.append({"step": int(r.step), "x": None if pd.isna(r.x) else float(r.x), "colour": colours[r.step],
                    "index": list(range(1, len(eig) + 1)), "eigenvalues": eig.tolist(),
                    "value": r.value, "summary": r.summary or {}})
    return {"run_id": run_id, "x": axis, "measurements": out}


def run_view(engine: Engine, run: dict[str, Any], axis: str) -> dict[str, Any]:
    """A run's diagnostics: every kind's traces (colour: the run's) and its covariance spectra."""
    runs = pd.DataFrame([{"run_id": run["run_id"], "trial_id": run["trial_id"], "lr": run["lr"]}])
    view = study_view(engine, run["study"], runs, axis, "lr")
    if "covariance" in view["kinds"]:
        view["spectra"] = spectra(engine, int(run["run_id"]), axis)
    return view
