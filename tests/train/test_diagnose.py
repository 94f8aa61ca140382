"""Diagnostics inside a trial: cadence, no effect on training, known answers, restore, and intrinsic-LR P1."""

import numpy as np
import pytest
import torch

from sweeper.reporter import ListReporter, StopTrial
from sweeper.train.loop import Trial, run_trial
from tests.helpers import make_trial

ALL = {"noise": {"every_epochs": 0.5, "batches": 20}, "covariance": {"every_epochs": 0.5, "samples": 64},
       "sharpness": {"every_epochs": 1.0, "batch_size": 128, "trace_samples": 4},
       "trajectory": {"projections": 4, "every_steps": 2}}


def test_diagnostics_run_at_their_cadence_and_leave_training_alone():
    plain = run_trial(make_trial(budget={"epochs": 1}), ListReporter())
    reporter = ListReporter()
    with_diag = run_trial(make_trial(budget={"epochs": 1}, diagnostics=ALL), reporter)
    assert with_diag.points == plain.points  # same trajectory, bit for bit
    by_kind = {}
    for row in reporter.diagnostics:
        by_kind.setdefault(row["kind"], []).append(row["step"])
        assert row["wall_seconds"] >= 0
    assert by_kind["noise"] == by_kind["covariance"] == [0, 128, 256]
    assert by_kind["sharpness"] == [0, 256]
    assert by_kind["trajectory"] == [0] and by_kind["trajectory_stats"] == [256]
    (traj,) = [r for r in reporter.diagnostics if r["kind"] == "trajectory"]
    assert traj["payload"].shape == (129, 5) and np.array_equal(traj["payload"][:, 0], np.arange(0, 257, 2))


def test_sharpness_and_rank_on_linreg_match_the_closed_form():
    """Full batch: the Hessian of ½MSE is XᵀX/N exactly; the per-example gradient covariance has rank ≤ d."""
    config = make_trial(data={"name": "linreg", "n_train": 256, "dim": 6, "condition": 5.0}, precision="float64",
                        sweep={"batch_size": [8]}, budget={"steps": 4}, log={"every_epochs": None, "every_steps": 4},
                        diagnostics={"sharpness": {"every_epochs": 100, "batch_size": 256, "tolerance": 1e-8,
                                                   "max_iterations": 500},
                                     "covariance": {"every_epochs": 100, "samples": 256}})
    reporter = ListReporter()
    trial = Trial(config)
    trial.run(reporter)
    x = trial.data.x_train
    top = torch.linalg.eigvalsh(x.T @ x / len(x)).max().item()
    sharp = [r for r in reporter.diagnostics if r["kind"] == "sharpness"]
    assert all(abs(r["value"] / top - 1) < 1e-3 for r in sharp)
    cov = [r for r in reporter.diagnostics if r["kind"] == "covariance"]
    assert all(r["summary"]["d"] == 6 and r["summary"]["rank"] == 6 and r["summary"]["bound_kind"] == "dimension"
               for r in cov)


def test_full_dataset_covariance_refuses_large_models():
    config = make_trial(data={"name": "mnist1d"}, model={"name": "mlp", "width": 256},
                        diagnostics={"covariance": {"full_dataset": True}})
    with pytest.raises(ValueError, match="at most 20000 parameters"):
        Trial(config)


def test_restore_with_diagnostics_is_bit_identical():
    config = make_trial(budget={"epochs": 2}, diagnostics=ALL,
                        log={"every_epochs": 0.25, "eval_samples": 64, "report_seconds": 1e-9})
    full = ListReporter()
    run_trial(config, full)
    first = ListReporter(stop_after=3)
    with pytest.raises(StopTrial):
        run_trial(config, first)
    resumed = ListReporter(resume_from=first.last_state)
    run_trial(config, resumed)
    assert first.points + resumed.points == full.points

    def comparable(rows):  # repr: NaN (an undefined B_simple, say) compares equal to itself
        return [repr((r["step"], r["kind"], r.get("value"), r.get("summary"),
                      None if r.get("payload") is None else r["payload"].tolist())) for r in rows]

    assert comparable(first.diagnostics + resumed.diagnostics) == comparable(full.diagnostics)


@pytest.mark.slow
def test_intrinsic_lr_p1_angular_update_reaches_sqrt_2_eta_lambda():
    """docs/theory.md §4 P1: a scale-invariant net, SGD without momentum, λ > 0: angular update² / (2ηλ) ∈ [0.8, 1.25]
    at equilibrium (reached in O(1/(ηλ)) = 2000 steps here); well before equilibrium it is not."""
    lr, wd = 0.1, 5e-3
    config = make_trial(
        data={"name": "mnist1d"},
        model={"name": "mlp", "width": 128, "depth": 2, "norm": "bn", "scale_invariant": True},
        optimizer={"name": "sgd"}, sweep={"batch_size": [64], "lr": [lr], "weight_decay": [wd]}, budget={"steps": 5000},
        log={"every_epochs": None, "every_steps": 250, "eval_samples": 500, "measure_every": 2},
    )
    points = run_trial(config, ListReporter()).points
    ratio = np.array([p["angular_update"] ** 2 / (2 * lr * wd) for p in points[1:]])
    steps = np.array([p["step"] for p in points[1:]])
    late = ratio[steps > 3000].mean()
    assert 0.8 <= late <= 1.25, ratio
    assert ratio[0] < 0.5  # the check can fail: far from equilibrium the ratio is far from 1


@pytest.mark.parametrize("svag_l", [1, 4])
def test_online_noise_scale_matches_the_per_example_truth(svag_l):
    """At (nearly) fixed weights, the two-batch EMA estimates of tr Σ and ‖∇L‖² match the training set's."""
    b = 8
    config = make_trial(
        data={"name": "linreg", "n_train": 1024, "dim": 4, "condition": 2.0, "noise": 0.5}, precision="float64",
        sweep={"batch_size": [b], "lr": [1e-7], "svag_l": [svag_l]}, budget={"steps": 3000 // svag_l},
        log={"every_epochs": None, "every_steps": 3000 // svag_l, "measure_every": 1},
        diagnostics={"online_noise": True},
    )
    trial = Trial(config)
    with torch.no_grad():
        trial.trainable[0].copy_(torch.tensor([[1.0, -1.0, 0.5, 2.0]], dtype=torch.float64))
    last = trial.run(ListReporter()).points[-1]
    x, y = trial.data.x_train, trial.data.y_train
    g = x * (x @ trial.trainable[0].detach().reshape(-1) - y)[:, None]
    trace = (g - g.mean(0)).square().sum(1).mean().item()
    grad_sq = g.mean(0).square().sum().item()
    assert abs(last["noise_trace"] / trace - 1) < 0.1, (last["noise_trace"], trace)
    assert abs(last["grad_sq"] / grad_sq - 1) < 0.1, (last["grad_sq"], grad_sq)
    assert abs(last["noise_scale"] / (trace / grad_sq) - 1) < 0.15


def test_automatic_cadence_spends_the_budget():
    from sweeper.train.clock import make_clock
    from sweeper.train.diagnose import cadence_steps

    clock = make_clock(make_trial(budget={"epochs": 10}), n_train=2048)  # 256 steps per epoch
    # interval = cost / (budget · N) = 2048 / (0.1 · 2048) = 10 epochs: once, at the end
    assert cadence_steps(clock, None, 2048, 0.1) == {clock.total_steps}
    # 5% of a 10-epoch run on a 205-example diagnostic: interval 2 epochs → epochs 2, 4, 6, 8, 10
    assert cadence_steps(clock, None, 0.05 * 2048 * 2, 0.05) == {512, 1024, 1536, 2048, 2560}
    assert cadence_steps(clock, 5.0) == {0, 1280, 2560}
