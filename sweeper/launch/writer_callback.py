"""The driver-side Tune callback that owns the database connection and writes every trial's results.

A Tune trial runs a pack of sweeper trials (one, or K packed: ``sweeper.train.pack``); its config holds them as
``pack.trials`` and each result holds ``members``, per trial id. Runs are written per member: the database cannot tell
a packed run from an unpacked one.

The callback also keeps the study's heartbeat (``studies.heartbeat_at``) current: at most one UPDATE every
``heartbeat_s`` from :meth:`DbWriterCallback.on_step_end`, so a study whose driver died reads as interrupted.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from ray import tune
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db.models import HEARTBEAT_S, Run
from db.writer import update_run, write_diagnostics, write_heartbeat, write_points
from sweeper.launch.experiment import member_ids

FINAL = ("completed", "diverged")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


_clock = time.monotonic
"""The heartbeat's clock (tests replace it)."""


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

    The study's heartbeat (whose first beat the runner writes as the study starts running) is written again at the
    first Tune step ``heartbeat_s`` after the last one: one UPDATE when due, nothing otherwise.
    """

    START_DELAY_S = 1.0
    HEARTBEAT_S = HEARTBEAT_S

    def __init__(self, run_ids: dict[str, int], engine: Engine | None = None, start_delay_s: float = START_DELAY_S,
                 heartbeat_s: float = HEARTBEAT_S):
        self.run_ids = run_ids
        self.engine = engine
        self.start_delay_s = start_delay_s
        self.heartbeat_s = heartbeat_s
        self._starts: dict[int, tuple[float, dict[str, Any]]] = {}  # run id → (when, its start's fields)
        self._study_id: int | None = None  # looked up from a run at the first heartbeat
        self._last_beat = _clock()  # of the last heartbeat: the runner writes one just before Tune starts

    def bind(self, engine: Engine) -> DbWriterCallback:
        self.engine = engine
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {"run_ids": self.run_ids, "engine": None, "start_delay_s": self.start_delay_s, "_starts": {},
                "heartbeat_s": self.heartbeat_s, "_study_id": self._study_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"start_delay_s": self.START_DELAY_S, "_starts": {}, "heartbeat_s": self.HEARTBEAT_S,
                              "_study_id": None} | state | {"_last_beat": _clock()})

    def _run_ids(self, trial: Any) -> list[int]:
        """The runs of the Tune trial's pack."""
        return [self.run_ids[i] for i in member_ids(trial.config)]

    def _session(self) -> Session:
        if self.engine is None:
            raise RuntimeError("DbWriterCallback used before bind(engine)")
        return Session(self.engine)

    def _write(self, rows: dict[int, tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None,
                                          dict[str, Any]]]) -> None:
        """One transaction: per run, its points, diagnostics and fields (after its pending start's)."""
        with self._session() as session, session.begin():
            for run_id, (points, diagnostics, fields) in rows.items():
                if points:
                    write_points(session, run_id, points)
                if diagnostics:
                    write_diagnostics(session, run_id, diagnostics)
                pending = self._starts.get(run_id)
                update_run(session, run_id, **((pending[1] if pending else {}) | fields))
        for run_id in rows:
            self._starts.pop(run_id, None)

    def _unfinished(self, run_ids: list[int]) -> list[int]:
        """The runs not yet final in the database (a restarted pack never reopens a finished member)."""
        with self._session() as session:
            final = set(session.scalars(select(Run.id).where(Run.id.in_(run_ids), Run.status.in_(FINAL))))
        return [r for r in run_ids if r not in final]

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
        run_ids = self._unfinished(self._run_ids(trial))
        if any(run_id in self._starts for run_id in run_ids):  # an earlier attempt's start not yet written
            self._flush_starts(0.0)
        for run_id in run_ids:
            self._starts[run_id] = (time.monotonic(), {"status": "running", "started_at": _now(),
                                                       "finished_at": None, "attempts": Run.attempts + 1})

    def _heartbeat(self) -> None:
        """Write the study's heartbeat if ``heartbeat_s`` have passed since the last one."""
        now = _clock()
        if now - self._last_beat < self.heartbeat_s:
            return
        if self._study_id is None:
            if not self.run_ids:
                return
            any_run = next(iter(self.run_ids.values()))
            with self._session() as session:
                self._study_id = session.scalar(select(Run.study_id).where(Run.id == any_run))
            if self._study_id is None:
                return
        if self.engine is None:
            raise RuntimeError("DbWriterCallback used before bind(engine)")
        write_heartbeat(self.engine, self._study_id)
        self._last_beat = now

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._starts:
            self._flush_starts(self.start_delay_s)
        self._heartbeat()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._starts:
            self._flush_starts(0.0)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A failed attempt that Tune will retry from the last checkpoint (on_trial_start counts the new attempt)."""
        error = _error_text(trial)
        self._write({run_id: (None, None, {"error": error}) for run_id in self._unfinished(self._run_ids(trial))})

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        rows = {}
        for trial_id, member in result["members"].items():
            run_info = member.get("info", {})
            fields: dict[str, Any] = {
                "steps_done": member["step"], "host": run_info.get("host"), "node_id": run_info.get("node_id"),
                "device": run_info.get("device"),
            }
            if member["status"] in FINAL:
                fields |= {"status": member["status"], "finished_at": _now(), "error": None,
                           "wall_seconds": result.get("time_total_s"), "diverged_step": run_info.get("diverged_step")}
            rows[self.run_ids[trial_id]] = (member.get("points"), member.get("diagnostics"), fields)
        self._write(rows)
        for member in result["members"].values():  # written: Tune need not keep (and checkpoint) them
            member["points"], member["diagnostics"] = len(member.get("points") or ()), \
                len(member.get("diagnostics") or ())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if any(run_id in self._starts for run_id in self._run_ids(trial)):  # ended without a result
            self._flush_starts(0.0)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        fields = {"status": "failed", "finished_at": _now(), "error": _error_text(trial)}
        self._write({run_id: (None, None, fields) for run_id in self._unfinished(self._run_ids(trial))})


def _error_text(trial: Any) -> str:
    """The trial's error log as Tune wrote it on the driver (all failures so far), at most its last 20 000 chars."""
    path = Path(trial.error_file) if trial.error_file else None
    text = path.read_text(errors="replace") if path and path.exists() else None
    return (text or "trial failed (Ray recorded no error text)").strip()[-20000:]
