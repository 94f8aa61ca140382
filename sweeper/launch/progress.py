"""A terminal progress bar for a running study: done / running / failed / total and elapsed time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray import tune
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sweeper.launch.experiment import member_ids

if TYPE_CHECKING:
    from ray.tune.stopper import Stopper

FINAL = ("completed", "diverged")


class ProgressCallback(tune.Callback):
    """Driver-side Tune callback drawing one rich progress bar on stderr (picklable: the bar is not saved).

    Counts sweeper trials, not Tune trials (a Tune trial may run a pack of them): ``finished`` holds the trial ids
    already final when the launch began and those reported final since, so a resumed study counts each trial once.
    """

    def __init__(self, total: int, finished: set[str] | None = None):
        self.total, self.finished = total, set(finished or ())
        self.failed: set[str] = set()
        self.running: set[str] = set()
        self.bar: Progress | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"total": self.total, "finished": self.finished, "failed": self.failed, "running": set(),
                "bar": None}

    @property
    def done(self) -> int:
        return len(self.finished)

    def setup(self, stop: Stopper | None = None, num_samples: int | None = None,
              total_num_samples: int | None = None, **info: Any) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=False,
        )
        self.task = self.bar.add_task(self._text(), total=self.total, completed=self.done)
        self.bar.start()

    def _text(self) -> str:
        return (f"done {self.done} / running {len(self.running)} / failed {len(self.failed)} / "
                f"total {self.total}")

    def _refresh(self) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=self._text(), completed=self.done + len(self.failed))

    @staticmethod
    def _members(trial: Any) -> set[str]:
        return set(member_ids(trial.config))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running |= self._members(trial) - self.finished
        self._refresh()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        final = {tid for tid, m in result.get("members", {}).items() if m.get("status") in FINAL}
        self.finished |= final
        self.running -= final
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running -= self._members(trial)
        self._refresh()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        lost = self._members(trial) - self.finished
        self.running -= lost
        self.failed |= lost
        self._refresh()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._refresh()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.bar is not None:
            self._refresh()
            self.bar.stop()
            self.bar = None
