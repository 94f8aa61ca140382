"""Spec validation: every invalid value is one line naming the field."""

import pytest

from sweeper.data.fake_cifar import write_fake_cifar
from sweeper.spec import SpecError, load_spec, parse_spec
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
        ({"sweep": {"lr": []}}, "sweep: lr is an empty list"),
        ({"data": {"name": "imagenet"}}, "data.name: unknown data name 'imagenet'; valid: linreg, teacher, mnist1d, cifar10, cifar100"),
        ({"model": {"name": "resnet"}}, "model.name: unknown model name 'resnet'; valid: linear, mlp, cnn, preresnet, vgg"),
        ({"optimizer": {"name": "lion"}}, "optimizer.name: unknown optimizer name 'lion'; valid: sgd, adam, rmsprop"),
        ({"data": {"dimm": 3}}, "data.dimm: unknown key"),
        ({"sweeep": {"lr": [1]}}, "sweeep: unknown key"),
        ({"optimizer": {"name": "sgd", "beta1": 0.9}}, "optimizer.beta1: unknown key"),
        ({"scaling": {"rule": "sqrt", "factors": [1, 2]}}, "scaling.rule: 'sqrt' is the rule for adam/rmsprop"),
        ({"scaling": {"rule": "cubic", "factors": [1, 2]}}, "scaling.rule[0]: Input should be 'linear' or 'sqrt'"),
        ({"scaling": {"rule": "linear", "factors": [1, 1.5]}, "sweep": {"batch_size": [5]}}, "scaling.factors: κ=1.5 × batch_size 5 is not an integer"),
        ({"model": {"name": "mlp", "scale_invariant": True}}, "model.scale_invariant: needs norm = 'bn' or 'gn'"),
        ({"model": {"name": "preresnet", "depth": 33}, "data": {"name": "mnist1d"}}, "model.depth: must be 6n+2"),
        ({"model": {"name": "cnn"}}, "model.name: 'cnn' needs sequence or image data"),
        ({"budget": {"epochs": 1, "steps": 10}}, "budget: give exactly one of epochs, steps, sde_time (got epochs, steps)"),
        ({"budget": None}, "budget: required field is missing"),
        ({"sweep": {"beta1": [0.9]}}, "sweep.beta1: not an axis of optimizer 'sgd'"),
        ({"schedule": {"lr": {"kind": "multistep"}}}, "schedule.lr: kind = 'multistep' needs milestones"),
        ({"schedule": {"lr": {"kind": "piecewise", "at": [1], "values": [1]}}}, "schedule.lr: kind = 'piecewise' needs len(values) == len(at) + 1"),
        ({"name": "has space"}, "name: String should match pattern"),
        ({"data": {"name": "cifar10", "root": "/does/not/exist"}, "model": {"name": "cnn"}}, "data.root: '/does/not/exist'"),
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
