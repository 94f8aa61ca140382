"""The divergence rule (sweeper/train/divergence.py) as the loop applies it: blow-ups past the bound, NaN, restores."""

import math

import pytest
import torch

from sweeper.reporter import ListReporter, StopTrial
from sweeper.train import divergence
from sweeper.train.divergence import DIVERGENCE_FACTOR, Start, bound, exceeds
from sweeper.train.loop import Trial, run_trial
from tests.helpers import make_trial

# SGD on the test linreg (λ_max(H) = 1) at η = 2.2 > 2: the stiff direction grows geometrically (≈ 2× per step in
# loss), past 1000× the start within ~13 steps, yet still finite after the 60-step budget.
BLOWUP = dict(sweep={"batch_size": [8], "lr": [2.2]}, budget={"steps": 60},
              log={"every_epochs": None, "every_steps": 2, "eval_samples": 512})


def first_batch_loss_past_bound(config) -> int | None:
    """The first raw step whose minibatch loss breaks the rule, by stepping a fresh Trial by hand."""
    trial = Trial(config)
    train_loss, _, test_loss, _ = trial.losses()
    limit = DIVERGENCE_FACTOR * max(train_loss, test_loss)
    while trial.step < trial.clock.total_steps:
        loss = trial.train_step(*trial.hyperparameters()).item()
        if not math.isfinite(loss) or abs(loss) > limit:
            return trial.step
    return None


def test_the_rule():
    assert bound(0.5) == 500.0 and bound(0.0) == math.inf and bound(math.nan) == math.inf and bound(None) == math.inf
    assert exceeds(501.0, 500.0) and exceeds(-501.0, 500.0) and not exceeds(500.0, 500.0)
    assert exceeds(math.nan, math.inf) and exceeds(math.inf, math.inf) and not exceeds(None, 1.0)
    start = Start({"train_loss": 1.0, "test_loss": 2.0})
    assert start.scale == 2.0 and start.batch_bound == 2e3  # L₀: the larger start value
    assert not start.point_diverged({"train_loss": 1999.0, "test_loss": 1999.0})
    assert start.point_diverged({"train_loss": 1.0, "test_loss": 2001.0})
    tiny = Start({"train_loss": 1e-6, "test_loss": 0.5})  # a train loss on one example can start near 0
    assert tiny.batch_bound == 500.0 and not tiny.point_diverged({"train_loss": 0.01, "test_loss": 0.5})
    assert Start({"train_loss": None, "test_loss": math.nan}).batch_bound == math.inf


def test_a_finite_geometric_blowup_diverges_at_the_first_step_past_the_bound(monkeypatch):
    config = make_trial(**BLOWUP)
    result = run_trial(config, reporter := ListReporter())
    expected = first_batch_loss_past_bound(config)
    assert result.status == "diverged" and reporter.reports[-1].status == "diverged"
    assert expected is not None and 1 < expected < 60
    assert result.diverged_step == expected == reporter.reports[-1].info["diverged_step"]
    assert result.steps_done == expected and result.points[-1]["step"] == expected  # the points stop there
    assert all(p["step"] < expected for p in result.points[:-1])
    start = max(result.points[0]["train_loss"], result.points[0]["test_loss"])
    assert all(p["train_loss"] <= DIVERGENCE_FACTOR * start for p in result.points[:-1])

    # Without the bound (only NaN/inf) the same run stays finite to the end of its budget: it used to be `completed`.
    monkeypatch.setattr(divergence, "DIVERGENCE_FACTOR", math.inf)
    unbounded = run_trial(config, ListReporter())
    assert unbounded.status == "completed" and unbounded.steps_done == 60
    assert math.isfinite(unbounded.points[-1]["test_loss"]) and unbounded.points[-1]["test_loss"] > 1e6 * start


def test_a_stable_run_completes():
    config = make_trial(**(BLOWUP | {"sweep": {"batch_size": [8], "lr": [0.5]}}))
    result = run_trial(config, ListReporter())
    assert result.status == "completed" and result.diverged_step is None
    assert result.steps_done == 60 and result.points[-1]["step"] == 60


def test_the_test_loss_is_checked_at_logged_points(monkeypatch):
    """The evaluated test loss (here the closed-form population loss) is held to the rule at every point too."""
    config = make_trial(**BLOWUP)
    monkeypatch.setattr(Start, "batch_bound", property(lambda self: math.inf))  # only the points' check remains
    result = run_trial(config, ListReporter())
    start = max(result.points[0]["train_loss"], result.points[0]["test_loss"])
    assert result.status == "diverged" and result.diverged_step == result.points[-1]["step"]
    assert max(result.points[-1]["test_loss"], result.points[-1]["train_loss"]) > DIVERGENCE_FACTOR * start
    assert all(p["test_loss"] <= DIVERGENCE_FACTOR * start for p in result.points[:-1])


@pytest.mark.parametrize("legacy", [False, True], ids=["checkpoint", "checkpoint-without-start"])
def test_a_trial_restored_before_the_blowup_diverges_at_the_same_step(legacy):
    config = make_trial(**(BLOWUP | {"log": BLOWUP["log"] | {"report_seconds": 1e-9}}))
    full = run_trial(config, ListReporter())
    first = ListReporter(stop_after=2)
    with pytest.raises(StopTrial):
        run_trial(config, first)
    state = dict(first.last_state)
    assert 0 < state["step"] < full.diverged_step
    assert state["divergence_start"]["train_loss"] == full.points[0]["train_loss"]
    if legacy:  # a checkpoint written before the rule: the start is recomputed from the fresh trial's initial model
        del state["divergence_start"]
    resumed = run_trial(config, ListReporter(resume_from=state))
    assert resumed.status == "diverged" and resumed.diverged_step == full.diverged_step
    assert resumed.points == [p for p in full.points if p["step"] > state["step"]]


def test_a_nan_loss_still_diverges():
    """A NaN target (outside the evaluated examples) makes the first batch that draws it NaN: diverged there."""
    config = make_trial(sweep={"batch_size": [8], "lr": [0.1]}, budget={"epochs": 1})
    trial = Trial(config)
    trial.data.y_train[2000] = math.nan  # eval_samples = 512: the step-0 point stays finite
    result = trial.run(ListReporter())
    assert result.status == "diverged" and 0 < result.diverged_step < 256
    assert result.points[-1]["step"] == result.diverged_step and not math.isfinite(result.points[-1]["train_loss"])
    gen = torch.Generator().manual_seed(config.seed)  # the sampler's draws: the first batch holding example 2000
    first = next(t for t in range(1, 257) if (torch.randint(2048, (8,), generator=gen) == 2000).any())
    assert result.diverged_step == first


def test_the_accelerator_check_finds_the_same_first_step():
    """Checked on the host only every few steps (as on an accelerator), the first bad step kept on the device is the
    same step; the loop stops at the next check."""
    config = make_trial(**(BLOWUP | {"log": BLOWUP["log"] | {"every_steps": 20}}))
    on_cpu = run_trial(config, ListReporter())
    trial = Trial(config)
    trial.check_every = 8
    deferred = trial.run(ListReporter())
    assert deferred.status == "diverged" and deferred.diverged_step == on_cpu.diverged_step
    assert deferred.steps_done == deferred.points[-1]["step"] == -(-on_cpu.diverged_step // 8) * 8
