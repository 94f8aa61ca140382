"""Packed trials: a packed member equals its unpacked twin to float tolerance at every logged point.

In float64 the twins agree to 1e-9 relative: the same arithmetic, rounded differently by batched kernels. In
float32 that rounding is amplified by some dynamics (Adam's m/√v on near-zero gradient coordinates: 3% in
gradient norm after 48 steps of an MLP, while SGD stays within 1e-6), so the cases run in float64 and one float32
case checks the default precision on SGD."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from sweeper.expand import expand
from sweeper.reporter import ListReporter, StopTrial
from sweeper.train.loop import run_trial
from sweeper.train.pack import ListPackReporter, PackedTrial, pack_key, packs
from tests.helpers import make_spec

COMPARED = ("step", "epoch", "sde_time", "lr", "weight_decay", "train_loss", "train_acc", "test_loss", "test_acc",
            "weight_norm", "effective_lr", "angular_update", "grad_norm")

TEACHER = {"name": "teacher", "n_train": 512, "n_test": 256, "dim": 20, "classes": 4}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_twins(spec_changes: dict[str, Any], rtol: float = 1e-9) -> dict[str, Any]:
    """Run every trial of the spec unpacked and all of them as one pack (float64 unless the spec says);
    compare every logged point."""
    trials = expand(make_spec(**({"precision": "float64"} | spec_changes)))
    assert len({pack_key(t) for t in trials}) == 1 and len(trials) >= 2
    packed = ListPackReporter()
    results = PackedTrial(trials).run(packed)
    for t in trials:
        alone = run_trial(t, ListReporter())
        got = packed.points(t.trial_id)
        assert results[t.trial_id].status == alone.status, t.trial_id
        assert results[t.trial_id].diverged_step == alone.diverged_step
        assert [p["step"] for p in got] == [p["step"] for p in alone.points]
        for a, b in zip(alone.points, got, strict=True):
            for key in COMPARED:
                if a[key] is None or b[key] is None:
                    assert a[key] is None and b[key] is None, (key, a[key], b[key])
                elif math.isfinite(a[key]):
                    assert b[key] == pytest.approx(a[key], rel=rtol, abs=1e-7), (t.trial_id, key, a["step"])
    return results


def test_pack_key_groups_what_can_share_a_step():
    trials = expand(make_spec(seeds=[0, 1], sweep={"batch_size": [8, 16], "lr": [0.05, 0.1],
                                                   "weight_decay": [0.0, 1e-3]}))
    assert len({pack_key(t) for t in trials}) == 2  # one per batch size
    groups = packs(trials, 4)
    assert sorted(len(g) for g in groups) == [4, 4, 4, 4]
    assert all(len({t.batch_size for t in g}) == 1 for g in groups)
    assert packs(trials, 4) == groups and packs(trials, 1) == [[t] for t in trials]
    assert sorted(len(g) for g in packs(trials, "auto", slots=3)) == [2, 2, 3, 3, 3, 3]  # 8 per key, 3 workers
    traj = expand(make_spec(seeds=[0, 1], diagnostics={"trajectory": {"projections": 4}}))
    assert pack_key(traj[0]) is None and packs(traj, 8) == [[t] for t in traj]


def test_sgd_learning_rates_weight_decay_and_seeds():
    assert_twins({"seeds": [0, 1], "sweep": {"batch_size": [8], "lr": [0.05, 0.2], "weight_decay": [0.0, 0.01]}})


def test_float32_sgd_on_an_mlp():
    assert_twins({"precision": "float32", "seeds": [0, 1], "data": TEACHER, "model": {"name": "mlp", "width": 32},
                  "sweep": {"batch_size": [16], "lr": [0.05, 0.1]}, "budget": {"epochs": 2}}, rtol=1e-4)


def test_momentum_and_a_schedule():
    assert_twins({"seeds": [0, 1], "optimizer": {"name": "sgd", "momentum": 0.9},
                  "sweep": {"batch_size": [8], "lr": [0.02, 0.05]},
                  "schedule": {"lr": {"kind": "multistep", "milestones": [0.5], "gamma": 0.1}}})


def test_svag_l4():
    assert_twins({"seeds": [0, 1, 2], "sweep": {"batch_size": [8], "lr": [0.1], "svag_l": [4]}})


def test_decoupled_weight_decay():
    assert_twins({"seeds": [0, 1], "optimizer": {"name": "sgd", "decoupled_weight_decay": True},
                  "sweep": {"batch_size": [8], "lr": [0.1], "weight_decay": [0.0, 0.05]}})


@pytest.mark.parametrize("optimizer", [{"name": "adam", "beta1": 0.9}, {"name": "rmsprop", "beta2": 0.99}])
def test_adaptive_on_an_mlp(optimizer):
    assert_twins({"seeds": [0, 1], "data": TEACHER, "model": {"name": "mlp", "width": 32},
                  "optimizer": optimizer, "sweep": {"batch_size": [16], "lr": [1e-3, 3e-3], "weight_decay": [0, 1e-3]},
                  "budget": {"epochs": 2}})


def test_batchnorm_in_train_mode_with_svag_two_forwards():
    assert_twins({"seeds": [0, 1], "data": TEACHER, "model": {"name": "mlp", "width": 32, "norm": "bn"},
                  "sweep": {"batch_size": [16], "lr": [0.05, 0.1], "svag_l": [2]}, "budget": {"epochs": 2}})


def test_a_diverging_member_is_masked_and_the_others_go_on():
    results = assert_twins({"seeds": [0], "sweep": {"batch_size": [8], "lr": [0.1, 2.4, 0.2]}})
    statuses = sorted(r.status for r in results.values())
    assert statuses == ["completed", "completed", "diverged"]


def test_kill_and_resume_of_a_pack_continues_every_member():
    trials = expand(make_spec(seeds=[0, 1], optimizer={"name": "sgd", "momentum": 0.5}, precision="float64",
                              sweep={"batch_size": [8], "lr": [0.05, 2.4]}, log={"every_epochs": 0.125,
                                                                                 "report_seconds": 1e-9}))
    whole = ListPackReporter()
    PackedTrial(trials).run(whole)
    first = ListPackReporter(stop_after=3)
    with pytest.raises(StopTrial):
        PackedTrial(trials).run(first)
    second = ListPackReporter(resume_from=dict(first.last_states))
    PackedTrial(trials).run(second)
    for t in trials:
        stitched = first.points(t.trial_id) + second.points(t.trial_id)
        assert [p["step"] for p in stitched] == [p["step"] for p in whole.points(t.trial_id)], t.trial_id
        for a, b in zip(whole.points(t.trial_id), stitched, strict=True):
            assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-12) or not math.isfinite(a["test_loss"])


def test_a_packed_members_checkpoint_resumes_unpacked():
    trials = expand(make_spec(seeds=[0, 1], optimizer={"name": "adam"}, data=TEACHER, precision="float64",
                              model={"name": "mlp", "width": 16}, sweep={"batch_size": [16], "lr": [1e-3]},
                              log={"every_epochs": 0.25, "report_seconds": 1e-9}, budget={"epochs": 1}))
    first = ListPackReporter(stop_after=2)
    with pytest.raises(StopTrial):
        PackedTrial(trials).run(first)
    t = trials[1]
    resumed = run_trial(t, ListReporter(resume_from=first.last_states[t.trial_id]))
    alone = run_trial(t, ListReporter())
    end = {p["step"]: p for p in alone.points}
    for p in resumed.points:
        assert p["train_loss"] == pytest.approx(end[p["step"]]["train_loss"], rel=1e-9)


def test_auto_pack_size_from_model_size_and_device(monkeypatch):
    from sweeper.train import pack as pack_mod

    small = expand(make_spec(seeds=[0]))[0]
    assert pack_mod.model_size(small) == (8, 9)  # 8 weights; activations: flatten 8 + output 1
    assert pack_mod.auto_pack_size(small, 8, 9) == pack_mod.MAX_PACK_CPU
    big = expand(make_spec(seeds=[0], data={"name": "mnist1d"}, model={"name": "mlp", "width": 256},
                           sweep={"batch_size": [128], "lr": [0.1]}))[0]
    n_params, acts = pack_mod.model_size(big)
    assert n_params == 40 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert pack_mod.auto_pack_size(big, n_params, acts) == 1  # compute-bound on a CPU: no packing
    gpu = big.model_copy(update={"device": "cuda"})
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (8 * 2**30, 80 * 2**30))
    per_member = 4 * (4 * n_params + 3 * 128 * acts)
    expected = min(pack_mod.MAX_PACK_CUDA, int(0.5 * 8 * 2**30 // per_member))
    assert pack_mod.auto_pack_size(gpu, n_params, acts) == expected


def test_a_linear_relu_chain_steps_by_batched_matmuls_and_anything_else_by_vmap():
    from sweeper.models import build_model
    from sweeper.train.pack import linear_chain

    mlp = build_model("mlp", (20,), 4, width=8, depth=2)
    assert linear_chain(mlp) == [("1.weight", "1.bias"), None, ("4.weight", "4.bias"), None, ("7.weight", "7.bias")]
    assert linear_chain(build_model("mlp", (20,), 4, width=8, norm="bn")) is None  # BatchNorm: vmap, per member
    assert linear_chain(build_model("mlp", (20,), 4, width=8, scale_invariant=True, norm="gn")) is None
