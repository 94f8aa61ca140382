"""What every check shares: the study's data as DataFrames, the Verdict it returns, and how verdicts are stored.

A check is a pure function ``check(data: StudyData, *, metric=None, tolerance=None) -> Verdict``: it reads runs,
points and diagnostics frames (``db.queries``), never the database itself, so it is tested on constructed frames
whose right verdict is known. It says INCONCLUSIVE, naming exactly what to add to the spec, when the study lacks
what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

Outcome = Literal["CONFIRMED", "REFUTED", "INCONCLUSIVE"]


class StudyData:
    """A study's results. ``runs``: one row per run (``run_id``, ``trial_id``, ``status``, hyperparameter columns
    ``optimizer, batch_size, lr, weight_decay, svag_l, seed, momentum, beta1, beta2, eps, scaling_rule, kappa``,
    ``config`` dicts); ``points``: one row per (run, step) with the run's hyperparameters and the point columns
    (``step, effective_step, epoch, sde_time, lr_t, weight_decay_t, train_loss, train_acc, test_loss, test_acc,
    weight_norm, effective_lr, angular_update, grad_norm, noise_trace, grad_sq, noise_scale``); ``diagnostics``:
    one row per (run, step, kind) with ``value``, ``summary.<key>`` columns and decoded ``payload`` arrays.

    Loaded from the database (:meth:`load`), ``points`` and ``diagnostics`` are read when first used, and
    :meth:`point_columns` reads only the point columns a check compares.
    """

    def __init__(self, name: str, spec: dict[str, Any], runs: pd.DataFrame, points: pd.DataFrame | None = None,
                 diagnostics: pd.DataFrame | None = None, *, engine: Any = None):
        self.name, self.spec, self.runs = name, spec, runs
        self._points, self._diagnostics, self._engine = points, diagnostics, engine
        self._columns: dict[tuple[str, ...], pd.DataFrame] = {}

    @classmethod
    def load(cls, engine: Any, study: str) -> StudyData:
        """The study's spec and runs from the database (``db.queries``); points and diagnostics on first use."""
        from db.queries import runs_frame, study_spec

        return cls(study, study_spec(engine, study), runs_frame(engine, study), engine=engine)

    @property
    def points(self) -> pd.DataFrame:
        if self._points is None:
            from db.queries import points_frame

            self._points = points_frame(self._engine, self.name)
        return self._points

    @points.setter
    def points(self, frame: pd.DataFrame) -> None:
        self._points, self._columns = frame, {}

    @property
    def diagnostics(self) -> pd.DataFrame:
        if self._diagnostics is None:
            from db.queries import diagnostics_frame

            self._diagnostics = diagnostics_frame(self._engine, self.name, decode_payload=True)
        return self._diagnostics

    @diagnostics.setter
    def diagnostics(self, frame: pd.DataFrame) -> None:
        self._diagnostics = frame

    def point_columns(self, *names: str) -> pd.DataFrame:
        """``run_id``, ``step`` and those of ``names`` that are point columns (as named in ``points``), one row per
        (run, step) sorted by run and step; read from the database alone when ``points`` is not loaded yet."""
        if self._points is not None or self._engine is None:
            return self.points[[c for c in dict.fromkeys(("run_id", "step", *names)) if c in self.points.columns]]
        if names not in self._columns:
            from db.queries import POINT_COLUMNS, point_columns

            known = [n for n in dict.fromkeys(names) if n in POINT_COLUMNS]
            self._columns[names] = point_columns(self._engine, self.name, known)
        return self._columns[names]

    def finished_runs(self) -> pd.DataFrame:
        """Runs that completed or diverged (diverged runs are outcomes: the checks decide what they mean)."""
        return self.runs[self.runs.status.isin(["completed", "diverged"])]


@dataclass
class Verdict:
    """A check's answer with its evidence.

    ``statistic``: the headline number the verdict rests on; ``tolerance``: every threshold used, with why
    (``{"name": value, ..., "why": "..."}``); ``evidence``: the table (a list of row dicts); ``missing``: for
    INCONCLUSIVE, what to add to the spec, one item per need; ``details``: anything else worth keeping (a figure's
    data). ``summary`` is one sentence a researcher reads first.
    """

    check: str
    verdict: Outcome
    summary: str
    statistic: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    tolerance: dict[str, Any] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "verdict": self.verdict, "summary": self.summary, "statistic": self.statistic,
                "parameters": self.parameters, "tolerance": self.tolerance, "evidence": self.evidence,
                "missing": self.missing, "details": self.details}


def inconclusive(check: str, summary: str, missing: list[str], **kw: Any) -> Verdict:
    return Verdict(check, "INCONCLUSIVE", summary, missing=missing, **kw)


def store(engine: Any, study: str, verdict: Verdict) -> None:
    """Append the verdict to the study's ``verdicts`` rows (``db.writer.store_verdict``; earlier verdicts are kept:
    a history). The row's ``evidence`` holds summary, tolerance, evidence, missing and details."""
    from db.writer import store_verdict

    payload = verdict.as_json()
    store_verdict(engine, study, verdict.check, verdict.verdict, statistic=verdict.statistic,
                  parameters=verdict.parameters,
                  evidence={k: payload[k] for k in ("summary", "tolerance", "evidence", "missing", "details")})
