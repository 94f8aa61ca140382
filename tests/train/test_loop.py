"""The training loop: faithful steps, time axis, divergence, bit-identical restore."""

import math

import pytest
import torch

from db.models import POINT_FIELDS
from sweeper.models import build_model
from sweeper.reporter import ListReporter, StopTrial
from sweeper.testing.fake_cifar import write_fake_cifar
from sweeper.train.divergence import DIVERGENCE_FACTOR
from sweeper.train.loop import Trial, run_trial
from tests.helpers import make_trial


def test_points_carry_every_field_and_the_time_axis():
    config = make_trial(sweep={"batch_size": [8], "lr": [0.1], "svag_l": [2]}, budget={"epochs": 1})
    result = run_trial(config, ListReporter())
    assert result.status == "completed"
    points = result.points
    assert [p["epoch"] for p in points] == [0, 0.25, 0.5, 0.75, 1.0]
    last = points[-1]
    assert set(last) == set(POINT_FIELDS)
    assert last["step"] == 2 * 256 and last["effective_step"] == 256
    assert math.isclose(last["sde_time"], 256 * 0.1)  # SGD: effective_step · η
    assert math.isclose(last["effective_lr"], 0.1 / last["weight_norm"] ** 2)
    assert points[0]["angular_update"] is None and last["angular_update"] > 0 and last["grad_norm"] > 0
    assert last["test_acc"] is None and last["test_loss"] >= 0.5 * 1.0**2  # exact population loss ≥ ½σ²


def test_a_fresh_trial_measures_steps_without_running():
    """The meters exist from construction: ``train_step(measure=True)`` on a new Trial (as benchmarks call it)."""
    trial = Trial(make_trial(sweep={"batch_size": [8], "lr": [0.1]}, budget={"steps": 4}))
    w0 = trial.tracker.norm_tensor().item()
    for _ in range(3):
        trial.train_step(0.1, 0.0, measure=True)
    assert trial.grad_meter.take_rms() > 0
    assert trial.tracker.take_rms() > 0 and trial.tracker.norm_tensor().item() != w0


def test_svag_batches_of_a_batchnorm_model_are_normalised_separately():
    bn = dict(data={"name": "teacher", "n_train": 64, "n_test": 16, "dim": 8, "classes": 3},
              model={"name": "mlp", "width": 8, "depth": 1, "norm": "bn"}, budget={"steps": 1})
    assert Trial(make_trial(**bn, sweep={"svag_l": [2]})).separate_forwards
    assert not Trial(make_trial(**bn, sweep={"svag_l": [1]})).separate_forwards
    assert not Trial(make_trial(**(bn | {"model": {"name": "mlp", "width": 8, "depth": 1}}),
                                sweep={"svag_l": [2]})).separate_forwards


def test_svag_l1_equals_a_hand_written_sgd_loop():
    config = make_trial(
        sweep={"batch_size": [8], "lr": [0.1], "weight_decay": [0.01], "momentum": [0.9]},
        budget={"steps": 50}, precision="float64",
    )
    trial = Trial(config)
    trial.run(ListReporter())
    torch.manual_seed(config.seed)
    model = build_model("linear", (8,), 1).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    gen = torch.Generator().manual_seed(config.seed)
    x, y = trial.data.x_train, trial.data.y_train
    for _ in range(50):
        idx = torch.randint(len(x), (8,), generator=gen)
        loss = 0.5 * (model(x[idx]).squeeze(-1) - y[idx]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(trial.model.state_dict(), model.state_dict(), rtol=1e-12, atol=1e-14)


def test_adam_sqrt_time_axis_and_decoupled_decay_run():
    config = make_trial(
        optimizer={"name": "adam", "decoupled_weight_decay": True},
        sweep={"lr": [0.01], "weight_decay": [0.1], "svag_l": [2]}, budget={"steps": 20},
        log={"every_epochs": None, "every_steps": 10},
    )
    result = run_trial(config, ListReporter())
    last = result.points[-1]
    assert last["step"] == 80 and last["effective_step"] == 20  # ℓ² raw steps per SGD-equivalent step
    assert math.isclose(last["sde_time"], 20 * 0.01**2)  # adaptive: effective_step · η²


def test_divergence_is_an_outcome_not_a_crash():
    config = make_trial(sweep={"lr": [50.0]}, budget={"epochs": 1})
    result = run_trial(config, reporter := ListReporter())
    assert result.status == "diverged"
    assert 0 < result.diverged_step < 256
    assert reporter.reports[-1].status == "diverged"
    assert reporter.reports[-1].info["diverged_step"] == result.diverged_step
    last = result.points[-1]["train_loss"]  # past the bound (sweeper/train/divergence.py) long before NaN
    assert not math.isfinite(last) or last > DIVERGENCE_FACTOR * result.points[0]["train_loss"]


def test_shuffle_sampling_visits_every_example_once_per_epoch():
    config = make_trial(optimizer={"name": "sgd", "sampling": "shuffle"}, sweep={"batch_size": [8]})
    trial = Trial(config)
    seen = torch.cat([trial.sampler.draw() for _ in range(256)])
    assert torch.equal(seen.sort().values, torch.arange(2048))


RESTORE_CASES = {
    "sgd-momentum-shuffle-svag-mlp-bn": dict(
        data={"name": "teacher", "n_train": 512, "n_test": 128, "dim": 8, "classes": 3},
        model={"name": "mlp", "width": 16, "depth": 2, "norm": "bn"},
        optimizer={"name": "sgd", "momentum": 0.9, "sampling": "shuffle"},
        sweep={"batch_size": [16], "lr": [0.05], "weight_decay": [1e-3], "svag_l": [2]},
        schedule={"lr": {"kind": "cosine", "warmup_epochs": 0.5}},
    ),
    "adam-svag-linreg": dict(optimizer={"name": "adam"}, sweep={"lr": [0.01], "svag_l": [2]}),
    "rmsprop-cnn-augment": "cifar",
}


@pytest.mark.parametrize("case", RESTORE_CASES)
def test_restore_from_checkpoint_is_bit_identical(case, tmp_path):
    changes = RESTORE_CASES[case]
    if changes == "cifar":
        root = write_fake_cifar(tmp_path, "cifar10", n_train_per_batch=16, n_test=16)
        changes = dict(
            data={"name": "cifar10", "root": str(root)}, model={"name": "cnn", "width": 4, "depth": 2, "norm": "gn"},
            optimizer={"name": "rmsprop"}, sweep={"batch_size": [8], "lr": [1e-3]}, budget={"epochs": 2},
        )
    config = make_trial(**changes, log={"every_epochs": 0.25, "eval_samples": 64, "report_seconds": 1e-9})
    full = ListReporter()
    run_trial(config, full)
    first = ListReporter(stop_after=2)
    with pytest.raises(StopTrial):
        run_trial(config, first)
    state = first.last_state
    assert 0 < state["step"] < full.points[-1]["step"]
    resumed = ListReporter(resume_from=state)
    run_trial(config, resumed)
    expected = [p for p in full.points if p["step"] > state["step"]]
    assert resumed.points == expected  # exact float equality, every field
