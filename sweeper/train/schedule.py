"""Schedules: a multiplier of a base hyperparameter as a function of SGD-equivalent epochs."""

from __future__ import annotations

import bisect
import math

from sweeper.spec import ScheduleSpec


def multiplier(spec: ScheduleSpec, epoch: float, total_epochs: float) -> float:
    """Factor applied to the base value at ``epoch`` (SGD-equivalent epochs) of a ``total_epochs`` run."""
    if spec.kind == "constant":
        factor = 1.0
    elif spec.kind == "multistep":
        factor = spec.gamma ** bisect.bisect_right(spec.milestones, epoch)
    elif spec.kind == "piecewise":
        factor = spec.values[bisect.bisect_right(spec.at, epoch)]
    else:  # cosine
        progress = min(max(epoch / total_epochs, 0.0), 1.0)
        factor = spec.min_factor + (1 - spec.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    if spec.warmup_epochs > 0 and epoch < spec.warmup_epochs:
        factor *= epoch / spec.warmup_epochs
    return factor
