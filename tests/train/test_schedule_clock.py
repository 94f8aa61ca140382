"""Schedules and the time axis."""

import math

import pytest

from sweeper.spec import ScheduleSpec
from sweeper.train.clock import make_clock
from sweeper.train.schedule import multiplier
from tests.helpers import make_trial


def test_schedules():
    assert multiplier(ScheduleSpec(), 5, 10) == 1
    step = ScheduleSpec(kind="multistep", milestones=[80, 120], gamma=0.1)
    got = [multiplier(step, e, 160) for e in (0, 79.9, 80, 119, 120, 159)]
    assert got == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    piece = ScheduleSpec(kind="piecewise", at=[50], values=[1.0, 10.0])
    assert multiplier(piece, 49, 100) == 1.0 and multiplier(piece, 50, 100) == 10.0
    cos = ScheduleSpec(kind="cosine", min_factor=0.1)
    assert multiplier(cos, 0, 10) == 1 and math.isclose(multiplier(cos, 10, 10), 0.1)
    assert math.isclose(multiplier(cos, 5, 10), 0.55)
    warm = ScheduleSpec(kind="constant", warmup_epochs=5)
    assert multiplier(warm, 0, 10) == 0 and multiplier(warm, 2.5, 10) == 0.5 and multiplier(warm, 5, 10) == 1


def test_clock_counts_sgd_equivalent_epochs():
    config = make_trial(sweep={"batch_size": [8], "svag_l": [4]}, budget={"epochs": 2}, log={"every_epochs": 0.5})
    clock = make_clock(config, n_train=2048)
    assert clock.total_steps == 2 * 256 * 4
    assert clock.log_steps == (0, 512, 1024, 1536, 2048)
    assert clock.epoch(1024) == 1.0 and clock.effective_step(1024) == 256


def test_clock_budget_in_sde_time_and_steps():
    config = make_trial(sweep={"lr": [0.1]}, budget={"sde_time": 10.0})
    assert make_clock(config, 2048).total_steps == 100
    adam = make_trial(optimizer={"name": "adam"}, sweep={"lr": [0.1], "svag_l": [2]}, budget={"sde_time": 1.0})
    assert make_clock(adam, 2048).total_steps == 100 * 4
    steps = make_trial(budget={"steps": 30}, log={"every_epochs": None, "every_steps": 7})
    assert make_clock(steps, 2048).log_steps == (0, 7, 14, 21, 30)  # 28 would leave a 2-step sliver
