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


@dataclass
class StudyData:
    """A study's results. ``runs``: one row per run (``run_id``, ``trial_id``, ``status``, hyperparameter columns
    ``optimizer, batch_size, lr, weight_decay, svag_l, seed, momentum, beta1, beta2, eps, scaling_rule, kappa``,
    ``config`` dicts); ``points``: one row per (run, step) with the run's hyperparameters and the point columns
    (``step, effective_step, epoch, sde_time, lr_t, weight_decay_t, train_loss, train_acc, test_loss, test_acc,
    weight_norm, effective_lr, angular_update, grad_norm, noise_trace, grad_sq, noise_scale``); ``diagnostics``:
    one row per (run, step, kind) with ``value``, ``summary.<key>`` columns and decoded ``payload`` arrays."""

    name: str
    spec: dict[str, Any]
    runs: pd.DataFrame
    points: pd.DataFrame
    diagnostics: pd.DataFrame

    @classmethod
    def load(cls, engine: Any, study: str) -> StudyData:
        """The study's spec and frames from the database (``db.queries.study_frames``)."""
        from db.queries import study_frames

        return cls(study, *study_frames(engine, study))

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
