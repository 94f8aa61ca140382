"""The driver-side Tune callback that owns the database connection and writes every trial's results."""

from __future__ import annotations

import datetime as dt
import time
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
    """Writes each reported batch of points and keeps run status current.

    Writes are idempotent (a re-reported step is skipped), so retried and restored trials never duplicate a
    point. Picklable (Tune saves it with the experiment); the engine is attached with :meth:`bind`.

    Driver work per trial is kept small: a trial's start (status, started_at, attempts) is written in the same
    transaction as its first result, or on its own once it is ``start_delay_s`` old without one (checked at every
    Tune step, starts batched in one transaction), so the database never lags a running trial by much more. Once a
    result's points and diagnostics are in the database they are dropped from the result (Tune lets callbacks
    change it), leaving their counts: Tune keeps each trial's last result and writes it into every experiment
    checkpoint, which would otherwise re-serialise a trajectory per trial each time.
    """

    START_DELAY_S = 1.0

    def __init__(self, run_ids: dict[str, int], engine: Engine | None = None, start_delay_s: float = START_DELAY_S):
        self.run_ids = run_ids
        self.engine = engine
        self.start_delay_s = start_delay_s
        self._starts: dict[int, tuple[float, dict[str, Any]]] = {}  # run id → (when, its start's fields)

    def bind(self, engine: Engine) -> DbWriterCallback:
        self.engine = engine
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {"run_ids": self.run_ids, "engine": None, "start_delay_s": self.start_delay_s, "_starts": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"start_delay_s": self.START_DELAY_S, "_starts": {}} | state)

    def _run_id(self, trial: Any) -> int:
        return self.run_ids[trial.config["trial"]["trial_id"]]

    def _session(self) -> Session:
        if self.engine is None:
            raise RuntimeError("DbWriterCallback used before bind(engine)")
        return Session(self.engine)

    def _update(self, trial: Any, points: list[dict[str, Any]] | None = None,
                diagnostics: list[dict[str, Any]] | None = None, **fields: Any) -> None:
        """One transaction: the points, the diagnostics, and the run's fields (after its pending start's)."""
        run_id = self._run_id(trial)
        pending = self._starts.get(run_id)
        with self._session() as session, session.begin():
            if points:
                write_points(session, run_id, points)
            if diagnostics:
                write_diagnostics(session, run_id, diagnostics)
            update_run(session, run_id, **((pending[1] if pending else {}) | fields))
        self._starts.pop(run_id, None)

    def _flush_starts(self, older_than_s: float) -> None:
        """Write the pending starts at least ``older_than_s`` old, all in one transaction."""
        now = time.monotonic()
        due = [run_id for run_id, (since, _) in self._starts.items() if now - since >= older_than_s]
        if not due:
            return
        with self._session() as session, session.begin():
            for run_id in due:
                update_run(session, run_id, **self._starts[run_id][1])
        for run_id in due:
            self._starts.pop(run_id, None)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self._run_id(trial)
        if run_id in self._starts:  # an earlier attempt's start not yet written: it happened, count it
            self._flush_starts(0.0)
        self._starts[run_id] = (time.monotonic(), {"status": "running", "started_at": _now(), "finished_at": None,
                                                   "attempts": Run.attempts + 1})

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._starts:
            self._flush_starts(self.start_delay_s)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._starts:
            self._flush_starts(0.0)

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
        points, diagnostics = result.get("points"), result.get("diagnostics")
        self._update(trial, points, diagnostics, **fields)
        # written: Tune need not keep (and checkpoint) them; their counts stay in the result
        result["points"], result["diagnostics"] = len(points or ()), len(diagnostics or ())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self._run_id(trial) in self._starts:  # a trial that ended without a result (nothing else to write)
            self._flush_starts(0.0)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._update(trial, status="failed", finished_at=_now(), error=_error_text(trial))


def _error_text(trial: Any) -> str:
    """The trial's error log as Tune wrote it on the driver (all failures so far), at most its last 20 000 chars."""
    path = Path(trial.error_file) if trial.error_file else None
    text = path.read_text(errors="replace") if path and path.exists() else None
    return (text or "trial failed (Ray recorded no error text)").strip()[-20000:]
