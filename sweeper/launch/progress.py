"""A terminal progress bar for a running study: done / running / failed / total and elapsed time."""

from __future__ import annotations

from typing import Any

from ray import tune
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressCallback(tune.Callback):
    """Driver-side Tune callback drawing one rich progress bar on stderr (picklable: the bar is not saved)."""

    def __init__(self, total: int, done: int = 0):
        self.total, self.done, self.failed, self.running = total, done, 0, set()
        self.bar: Progress | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"total": self.total, "done": self.done, "failed": self.failed, "running": set(), "bar": None}

    def setup(self, **info: Any) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=False,
        )
        self.task = self.bar.add_task(self._text(), total=self.total, completed=self.done)
        self.bar.start()

    def _text(self) -> str:
        return f"done {self.done} / running {len(self.running)} / failed {self.failed} / total {self.total}"

    def _refresh(self) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=self._text(), completed=self.done + self.failed)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.done += 1
        self._refresh()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.failed += 1
        self._refresh()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._refresh()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.bar is not None:
            self._refresh()
            self.bar.stop()
            self.bar = None
