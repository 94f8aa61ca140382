"""One time axis for runs of different B, η and l: raw step → effective step, epoch and SDE time."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sweeper.expand import TrialConfig

DEFAULT_POINTS = 50


@dataclass(frozen=True)
class Clock:
    """Step bookkeeping of one trial.

    ``multiplier`` = raw steps per SGD-equivalent step (l, or ℓ² for adaptive methods). ``total_steps`` and
    ``log_steps`` are raw optimizer steps; ``log_steps`` starts at 0 and ends at ``total_steps``.
    """

    n_train: int
    batch_size: int
    multiplier: float
    total_steps: int
    log_steps: tuple[int, ...]

    def effective_step(self, step: int) -> float:
        return step / self.multiplier

    def epoch(self, step: int) -> float:
        """SGD-equivalent epochs: effective samples seen / n_train."""
        return self.effective_step(step) * self.batch_size / self.n_train

    @property
    def total_epochs(self) -> float:
        return self.epoch(self.total_steps)


def make_clock(config: TrialConfig, n_train: int) -> Clock:
    """Budget and log cadence of ``config`` in raw steps."""
    b, m, budget = config.batch_size, config.step_multiplier, config.budget
    steps_per_epoch = n_train / b
    if budget.epochs is not None:
        sgd_steps = math.ceil(budget.epochs * steps_per_epoch - 1e-9)
    elif budget.steps is not None:
        sgd_steps = budget.steps
    else:  # SDE time at a constant lr: t = k·η (SGD family) or k·η² (adaptive)
        per_step = config.lr**2 if config.optimizer.name in ("adam", "rmsprop") else config.lr
        assert budget.sde_time is not None, "BudgetSpec holds exactly one of epochs, steps, sde_time"
        sgd_steps = math.ceil(budget.sde_time / per_step - 1e-9)
    total = math.ceil(sgd_steps * m - 1e-9)
    log = config.log
    if log.every_epochs is not None:
        interval = log.every_epochs * steps_per_epoch
    elif log.every_steps is not None:
        interval = float(log.every_steps)
    else:
        interval = sgd_steps / DEFAULT_POINTS
    raw_interval = max(interval * m, 1.0)
    count = int(total / raw_interval + 1e-9)
    steps = {min(round(k * raw_interval), total) for k in range(count + 1)}
    last = max(steps)
    if last and total - last < raw_interval / 2:  # rounding of the budget left a sliver: end there instead
        steps.discard(last)
    return Clock(n_train, b, m, total, tuple(sorted(steps | {0, total})))
