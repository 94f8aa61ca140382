"""The driver-side Tune callback that owns the database connection and writes every trial's results.

A Tune trial runs a pack of sweeper trials (one, or K packed: ``sweeper.train.pack``); its config holds them as
``pack.trials`` and each result holds ``members``, per trial id. Runs are written per member: the database cannot tell
a packed run from an unpacked one.

The callback also keeps the study's heartbeat (``studies.heartbeat_at``) current: at most one UPDATE every
``heartbeat_s`` from :meth:`DbWriterCallback.on_step_end`, so a study whose driver died reads as interrupted.

Every write goes through a :class:`~sweeper.launch.resilient_writer.ResilientWriter`: while the database is down
the batches wait (in memory, then in the study's journal file) and training goes on; once the writer stops (a
permanent fault, or an outage too long) :class:`WriterStopper` ends the Tune experiment and the runner reports it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ray import tune
from sqlalchemy import Engine

from db.journal import Batch, Journal
from db.models import HEARTBEAT_S
from db.writer import RunWrite, write_heartbeat
from sweeper.launch.experiment import member_ids
from sweeper.launch.resilient_writer import OutagePolicy, ResilientWriter

FINAL = ("completed", "diverged")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


_clock = time.monotonic
"""The heartbeat's clock (tests replace it)."""


class DbWriterCallback(tune.Callback):
    """Writes each reported batch of points and keeps run status current.

    Writes are idempotent (a re-reported step is skipped), so retried and restored trials never duplicate a
    point. Picklable (Tune saves it with the experiment); the engine is attached with :meth:`bind`, which also
    opens the writer on ``journal_path`` (the study's outage journal) with ``policy``.

    Driver work per trial is kept small: a trial's start (status, started_at, attempts) is written in the same
    transaction as its first result, or on its own once it is ``start_delay_s`` old without one (checked at every
    Tune step, starts batched in one transaction), so the database never lags a running trial by much more. Once a
    result's points and diagnostics are handed to the writer they are dropped from the result (Tune lets callbacks
    change it), leaving their counts: Tune keeps each trial's last result and writes it into every experiment
    checkpoint, which would otherwise re-serialise a trajectory per trial each time. The runs already final
    (``final_run_ids``, and those reported final since) are known here, not read back, so a restarted pack never
    reopens them even while the database is down.

    The study's heartbeat (whose first beat the runner writes as the study starts running) is written again at the
    first Tune step ``heartbeat_s`` after the last one: one UPDATE when due and the database keeps up, else nothing.
    """

    START_DELAY_S = 1.0
    HEARTBEAT_S = HEARTBEAT_S

    def __init__(self, run_ids: dict[str, int], journal_path: str | Path, study_id: int,
                 engine: Engine | None = None, final_run_ids: Iterable[int] = (),
                 start_delay_s: float = START_DELAY_S, heartbeat_s: float = HEARTBEAT_S,
                 policy: OutagePolicy | None = None):
        self.run_ids = run_ids
        self.journal_path = str(journal_path)
        self.study_id = study_id
        self.final = set(final_run_ids)
        self.start_delay_s = start_delay_s
        self.heartbeat_s = heartbeat_s
        self.policy = policy or OutagePolicy()
        self._starts: dict[int, tuple[float, dict[str, Any]]] = {}  # run id → (when, its start's fields)
        self._last_beat = _clock()  # of the last heartbeat: the runner writes one just before Tune starts
        self.writer: ResilientWriter | None = None
        if engine is not None:
            self.bind(engine)

    def bind(self, engine: Engine) -> DbWriterCallback:
        self.writer = ResilientWriter(engine, Journal(self.journal_path), self.policy)
        return self

    @property
    def stopped(self) -> str | None:
        """Why the writer stopped (one line), or None."""
        return self.writer.stopped if self.writer is not None else None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("writer", "_starts", "_last_beat")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state | {"writer": None, "_starts": {}, "_last_beat": _clock()})

    def _run_ids(self, trial: Any) -> list[int]:
        """The runs of the Tune trial's pack."""
        return [self.run_ids[i] for i in member_ids(trial.config)]

    def _submit(self, batch: Batch) -> None:
        if self.writer is None:
            raise RuntimeError("DbWriterCallback used before bind(engine)")
        self.writer.submit(batch)

    def _with_start(self, write: RunWrite) -> RunWrite:
        """``write`` preceded by its run's pending start (which it takes out of the pending ones)."""
        pending = self._starts.pop(write.run_id, None)
        if pending is not None:
            write.fields = pending[1] | write.fields
            write.attempts_added += 1
        return write

    def _unfinished(self, run_ids: list[int]) -> list[int]:
        """The runs not yet final (a restarted pack never reopens a finished member)."""
        return [r for r in run_ids if r not in self.final]

    def _flush_starts(self, older_than_s: float) -> None:
        """Write the pending starts at least ``older_than_s`` old, all in one transaction."""
        now = time.monotonic()
        due = [run_id for run_id, (since, _) in self._starts.items() if now - since >= older_than_s]
        if due:
            self._submit([self._with_start(RunWrite(run_id)) for run_id in due])

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_ids = self._unfinished(self._run_ids(trial))
        if any(run_id in self._starts for run_id in run_ids):  # an earlier attempt's start not yet written
            self._flush_starts(0.0)
        for run_id in run_ids:
            self._starts[run_id] = (time.monotonic(), {"status": "running", "started_at": _now(),
                                                       "finished_at": None})

    def _heartbeat(self) -> None:
        """Write the study's heartbeat if ``heartbeat_s`` have passed since the last one."""
        now = _clock()
        if now - self._last_beat < self.heartbeat_s:
            return
        if self.writer is None:
            raise RuntimeError("DbWriterCallback used before bind(engine)")
        if self.writer.beat(lambda engine: write_heartbeat(engine, self.study_id)):
            self._last_beat = now

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._starts:
            self._flush_starts(self.start_delay_s)
        if self.writer is not None:
            self.writer.poll()
        self._heartbeat()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Write the pending starts, then wait until everything is written or the writer stops."""
        if self._starts:
            self._flush_starts(0.0)
        if self.writer is not None:
            self.writer.drain()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A failed attempt that Tune will retry from the last checkpoint (on_trial_start counts the new attempt)."""
        error = _error_text(trial)
        self._submit([self._with_start(RunWrite(run_id, fields={"error": error}))
                      for run_id in self._unfinished(self._run_ids(trial))])

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        batch = []
        for trial_id, member in result["members"].items():
            run_info = member.get("info", {})
            fields: dict[str, Any] = {
                "steps_done": member["step"], "host": run_info.get("host"), "node_id": run_info.get("node_id"),
                "device": run_info.get("device"),
            }
            run_id = self.run_ids[trial_id]
            if member["status"] in FINAL:
                fields |= {"status": member["status"], "finished_at": _now(), "error": None,
                           "wall_seconds": result.get("time_total_s"), "diverged_step": run_info.get("diverged_step")}
                self.final.add(run_id)
            batch.append(self._with_start(RunWrite(run_id, list(member.get("points") or ()),
                                                   list(member.get("diagnostics") or ()), fields)))
        self._submit(batch)
        for member in result["members"].values():  # handed over: Tune need not keep (and checkpoint) them
            member["points"], member["diagnostics"] = len(member.get("points") or ()), \
                len(member.get("diagnostics") or ())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if any(run_id in self._starts for run_id in self._run_ids(trial)):  # ended without a result
            self._flush_starts(0.0)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        fields = {"status": "failed", "finished_at": _now(), "error": _error_text(trial)}
        self._submit([self._with_start(RunWrite(run_id, fields=dict(fields)))
                      for run_id in self._unfinished(self._run_ids(trial))])

    def close(self) -> None:
        """Spill what the writer still holds in memory to the journal and release its connections."""
        if self.writer is not None:
            self.writer.close()
            self.writer.engine.dispose()


class WriterStopper(tune.Stopper):
    """Ends the whole Tune experiment once the callback's writer has stopped (its trials are stopped)."""

    def __init__(self, callback: DbWriterCallback):
        self.callback = callback

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.callback.stopped is not None


def _error_text(trial: Any) -> str:
    """The trial's error log as Tune wrote it on the driver (all failures so far), at most its last 20 000 chars."""
    path = Path(trial.error_file) if trial.error_file else None
    text = path.read_text(errors="replace") if path and path.exists() else None
    return (text or "trial failed (Ray recorded no error text)").strip()[-20000:]
