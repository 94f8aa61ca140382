"""Spec validation: every invalid value is one line naming the field."""

import pytest

from sweeper.spec import SpecError, load_spec, parse_spec
from sweeper.testing.fake_cifar import write_fake_cifar
from tests.helpers import BASE, REPO_ROOT, make_spec, merged


def error_lines(**changes) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(merged(BASE, changes))
    return info.value.lines


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"sweep": {"lr": [-0.1]}}, "sweep.lr[0]: Input should be greater than 0"),
        ({"sweep": {"lr": 0}}, "sweep.lr[0]: Input should be greater than 0"),
        ({"sweep": {"batch_size": [0]}}, "sweep.batch_size[0]: Input should be greater than 0"),
        ({"sweep": {"batch_size": [4096]}}, "sweep.batch_size: batch size 4096 exceeds data.n_train = 2048"),
        ({"sweep": {"svag_l": [0.5]}}, "sweep.svag_l[0]: Input should be greater than or equal to 1"),
        ({"sweep": {"lr": []}}, "sweep.lr: empty list (give at least one value)"),
        ({"data": {"name": "imagenet"}},
         "data.name: unknown data name 'imagenet'; valid: linreg, teacher, mnist1d, cifar10, cifar100"),
        ({"model": {"name": "resnet"}},
         "model.name: unknown model name 'resnet'; valid: linear, mlp, cnn, preresnet, vgg"),
        ({"optimizer": {"name": "lion"}}, "optimizer.name: unknown optimizer name 'lion'; valid: sgd, adam, rmsprop"),
        ({"data": {"dimm": 3}}, "data.dimm: unknown key"),
        ({"sweeep": {"lr": [1]}}, "sweeep: unknown key"),
        ({"optimizer": {"name": "sgd", "beta1": 0.9}}, "optimizer.beta1: unknown key"),
        ({"scaling": {"rule": "sqrt", "factors": [1, 2]}}, "scaling.rule: 'sqrt' is the rule for adam/rmsprop"),
        ({"scaling": {"rule": "cubic", "factors": [1, 2]}}, "scaling.rule[0]: Input should be 'linear' or 'sqrt'"),
        ({"scaling": {"rule": "linear", "factors": [1, 1.5]}, "sweep": {"batch_size": [5]}},
         "scaling.factors: κ=1.5 × batch_size 5 is not an integer"),
        ({"model": {"name": "mlp", "scale_invariant": True}}, "model.scale_invariant: needs norm = 'bn' or 'gn'"),
        ({"model": {"name": "preresnet", "depth": 33}, "data": {"name": "mnist1d"}}, "model.depth: must be 6n+2"),
        ({"model": {"name": "cnn"}}, "model.name: 'cnn' needs sequence or image data"),
        ({"budget": {"epochs": 1, "steps": 10}},
         "budget: give exactly one of epochs, steps, sde_time (got epochs, steps)"),
        ({"budget": None}, "budget: required field is missing"),
        ({"sweep": {"beta1": [0.9]}}, "sweep.beta1: not an axis of optimizer 'sgd'"),
        ({"schedule": {"lr": {"kind": "multistep"}}}, "schedule.lr: kind = 'multistep' needs milestones"),
        ({"schedule": {"lr": {"kind": "piecewise", "at": [1], "values": [1]}}},
         "schedule.lr: kind = 'piecewise' needs len(values) == len(at) + 1"),
        ({"name": "has space"}, "name: String should match pattern"),
        ({"data": {"name": "cifar10", "root": "/does/not/exist"}, "model": {"name": "cnn"}},
         "data.root: '/does/not/exist'"),
    ],
)
def test_invalid_values_name_the_field(changes, expected):
    lines = error_lines(**changes)
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines[0]


def test_sqrt_rule_rejects_kappa_that_breaks_beta():
    lines = error_lines(optimizer={"name": "rmsprop", "beta2": 0.99}, scaling={"rule": "sqrt", "factors": [1, 100]})
    assert lines == ["scaling.factors: κ=100 makes 1-κ(1-beta2) ≤ 0 for beta2=0.99; use κ < 100 or a larger beta2"]


def test_cifar_root_with_batches_is_accepted(tmp_path):
    root = write_fake_cifar(tmp_path, "cifar10")
    spec = make_spec(data={"name": "cifar10", "root": str(root)}, model={"name": "cnn"}, sweep={"batch_size": [4]})
    assert spec.data.root == str(root)
    lines = error_lines(data={"name": "cifar100", "root": str(tmp_path)}, model={"name": "cnn"})
    assert lines[0].startswith("data.root:") and "CIFAR-100" in lines[0]


def test_scalars_become_axes_and_defaults_fill_in():
    spec = make_spec(sweep={"lr": 0.2, "svag_l": 4}, seeds=3)
    assert spec.sweep.lr == [0.2] and spec.sweep.svag_l == [4.0] and spec.seeds == [3]
    assert spec.optimizer.sampling == "replacement" and spec.schedule.lr.kind == "constant"


def test_readme_example_loads():
    spec = load_spec(REPO_ROOT / "examples" / "lsr-linreg.toml")
    assert spec.name == "lsr-linreg" and spec.scaling.factors == [1, 2, 4, 8]


def test_toml_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[data\n")
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert len(info.value.lines) == 1 and "not valid TOML" in info.value.lines[0]
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "missing.toml")


# ------------------------------------------------------------------ limits: finite, bounded, no bools, sets


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"budget": {"epochs": float("inf")}}, "budget.epochs: Input should be a finite number (got inf)"),
        ({"budget": {"epochs": float("nan")}}, "budget.epochs: Input should be a finite number (got nan)"),
        ({"sweep": {"lr": [float("inf")]}}, "sweep.lr[0]: Input should be a finite number (got inf)"),
        ({"sweep": {"lr": [0.1, float("nan")]}}, "sweep.lr[1]: Input should be a finite number (got nan)"),
        ({"data": {"noise": float("inf")}}, "data.noise: Input should be a finite number"),
        ({"sweep": {"batch_size": [float("inf")]}}, "sweep.batch_size[0]: should be a finite whole number (got inf)"),
        ({"budget": {"epochs": 1e300}}, "budget.epochs: a trial would take 2.56e+302 raw steps (batch size 8, "
                                        "svag_l 1); the limit is 1 000 000 000"),
        ({"budget": {"steps": 10**10}}, "budget.steps: Input should be less than or equal to 1000000000"),
        ({"sweep": {"svag_l": [1, 4000]}, "budget": {"epochs": 10000}},
         "budget.epochs: a trial would take 10 240 000 000 raw steps (batch size 8, svag_l 4000)"),
        ({"optimizer": {"name": "adam"}, "sweep": {"lr": [1e-200]}, "budget": {"sde_time": 1.0}},
         "budget.sde_time: a trial would take"),
        ({"data": {"dim": 1e8}}, "data.dim: Input should be less than or equal to 1000000 (got 100000000"),
        ({"data": {"dim": 1.5}}, "data.dim: should be a whole number (got 1.5)"),
        ({"data": {"n_train": 10**8, "dim": 10**6}, "sweep": {"batch_size": [10**6]}},
         "data.dim: (n_train + n_test) × dim = 100 004 096 000 000 numbers; the limit is 10 000 000 000"),
        ({"log": {"every_epochs": 1e-9}}, "log.every_epochs: 1e-09 asks for 1 000 000 001 points per run; the limit "
                                          "is 1 000 000 (a coarser cadence, every_epochs ≥ 1e-06)"),
        ({"log": {"every_steps": 1, "every_epochs": None}, "budget": {"steps": 10**7}},
         "log.every_steps: 1 asks for 10 000 001 points per run; the limit is 1 000 000"),
        ({"diagnostics": {"noise": {"every_epochs": 1e-9}}},
         "diagnostics.noise.every_epochs: 1e-09 asks for 1 000 000 001 evaluations per run"),
        ({"diagnostics": {"trajectory": {"every_steps": 1}}, "budget": {"steps": 10**8}, "log": {"every_epochs": 10}},
         "diagnostics.trajectory.every_steps: 1 asks for 100 000 001 samples per run; the limit is 10 000 000"),
        ({"sweep": {"batch_size": [True]}}, "sweep.batch_size[0]: should be a number, not a boolean (got true)"),
        ({"sweep": {"lr": [True]}}, "sweep.lr[0]: should be a number, not a boolean (got true)"),
        ({"budget": {"epochs": True}}, "budget.epochs: should be a number, not a boolean (got true)"),
        ({"seeds": [False]}, "seeds[0]: should be a number, not a boolean (got false)"),
        ({"sweep": {"lr": ["0.1"]}}, "sweep.lr[0]: should be a number, not a string (got '0.1'; drop the quotes)"),
        ({"seeds": [2**40]}, "seeds[0]: Input should be less than or equal to 2147483647 (got 1099511627776)"),
        ({"seeds": [1e20]}, "seeds[0]: Input should be less than or equal to 2147483647"),
        ({"seeds": [-1]}, "seeds[0]: Input should be greater than or equal to 0 (got -1)"),
        ({"data": {"seed": 2**63}}, "data.seed: Input should be less than or equal to 2147483647"),
        ({"seeds": []}, "seeds: empty list (give at least one value)"),
        ({"seeds": [0, 0]}, "seeds: 0 is given twice, at [0] and [1] (list each value once)"),
        ({"seeds": [3, 1, 3]}, "seeds: 3 is given twice, at [0] and [2]"),
        ({"sweep": {"lr": [0.05, 0.05]}}, "sweep.lr: 0.05 is given twice, at [0] and [1] (list each value once)"),
        ({"sweep": {"svag_l": [1, 1.0]}}, "sweep.svag_l: 1.0 is given twice"),
        ({"sweep": {"batch_size": [8, 8.0]}}, "sweep.batch_size: 8 is given twice"),
        ({"sweep": {"weight_decay": []}}, "sweep.weight_decay: empty list"),
        ({"scaling": {"rule": "linear", "factors": [1, 2, 2]}}, "scaling.factors: 2.0 is given twice, at [1] and [2]"),
        ({"scaling": {"rule": ["linear", "linear"], "factors": [1, 2]}}, "scaling.rule: 'linear' is given twice"),
        ({"scaling": {"rule": "linear", "factors": []}}, "scaling.factors: empty list"),
        ({"sweep": {"lr": [1e7]}}, "sweep.lr[0]: Input should be less than or equal to 1000000"),
        ({"model": {"name": "mlp", "width": 10**6}}, "model.width: Input should be less than or equal to 65536"),
        ({"model": {"name": "cnn", "depth": 20}, "data": {"name": "mnist1d"}},
         "model.depth: the last of 20 stages would have 1.68e+07 channels"),
        ({"log": {"report_seconds": 1e9}}, "log.report_seconds: Input should be less than or equal to 86400"),
    ],
)
def test_limits_and_sets(changes, expected):
    lines = error_lines(**changes)
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines[0]


def test_whole_floats_are_ints_and_limits_admit_real_studies():
    spec = make_spec(data={"n_train": 1e4, "dim": 16.0}, sweep={"batch_size": [1.6e1]})
    assert spec.data.n_train == 10000 and isinstance(spec.data.dim, int) and spec.sweep.batch_size == [16]
    big = make_spec(data={"n_train": 50000, "dim": 3072}, sweep={"batch_size": [128], "svag_l": [1, 16]},
                    budget={"epochs": 200}, log={"every_steps": 1, "every_epochs": None}, seeds=list(range(16)))
    assert big.seeds[-1] == 15


def test_binary_directory_and_deep_files_are_one_line(tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(128, 256)))
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000)
    for path, needle in ((binary, "is not a text file"), (tmp_path, "is a directory"),
                         (deep, "nested too deeply")):
        with pytest.raises(SpecError) as info:
            load_spec(path)
        assert len(info.value.lines) == 1 and needle in info.value.lines[0], info.value.lines
