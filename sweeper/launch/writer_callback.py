"""The driver-side Tune callback that owns the database connection and writes every trial's results."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ray import tune
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db.models import Run
from db.writer import update_run, write_diagnostics, write_points

FINAL = ("completed", "diverged")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class DbWriterCallback(tune.Callback):
    """Writes each reported batch of points and keeps run status current, one transaction per result.

    Writes are idempotent (a re-reported step is skipped), so retried and restored trials never duplicate a
    point. Picklable (Tune saves it with the experiment); the engine is attached with :meth:`bind`.
    """

    def __init__(self, run_ids: dict[str, int], engine: Engine | None = None):
        self.run_ids = run_ids
        self.engine = engine

    def bind(self, engine: Engine) -> DbWriterCallback:
        self.engine = engine
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {"run_ids": self.run_ids, "engine": None}

    def _run_id(self, trial: Any) -> int:
        return self.run_ids[trial.config["trial"]["trial_id"]]

    def _update(self, trial: Any, points: list[dict[str, Any]] | None = None,
                diagnostics: list[dict[str, Any]] | None = None, **fields: Any) -> None:
        if self.engine is None:
            raise RuntimeError("DbWriterCallback used before bind(engine)")
        run_id = self._run_id(trial)
        with Session(self.engine) as session, session.begin():
            if points:
                write_points(session, run_id, points)
            if diagnostics:
                write_diagnostics(session, run_id, diagnostics)
            update_run(session, run_id, **fields)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._update(trial, status="running", started_at=_now(), finished_at=None, attempts=Run.attempts + 1)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A failed attempt that Tune will retry from the last checkpoint (on_trial_start counts the new attempt)."""
        self._update(trial, error=_error_text(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_info = result.get("info", {})
        fields: dict[str, Any] = {
            "steps_done": result["step"], "host": run_info.get("host"), "node_id": run_info.get("node_id"),
            "device": run_info.get("device"),
        }
        if result["status"] in FINAL:
            fields |= {"status": result["status"], "finished_at": _now(), "error": None,
                       "wall_seconds": result.get("time_total_s"), "diverged_step": run_info.get("diverged_step")}
        self._update(trial, result["points"], result.get("diagnostics"), **fields)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._update(trial, status="failed", finished_at=_now(), error=_error_text(trial))


def _error_text(trial: Any) -> str:
    """The trial's error log as Tune wrote it on the driver (all failures so far), at most its last 20 000 chars."""
    path = Path(trial.error_file) if trial.error_file else None
    text = path.read_text(errors="replace") if path and path.exists() else None
    return (text or "trial failed (Ray recorded no error text)").strip()[-20000:]
