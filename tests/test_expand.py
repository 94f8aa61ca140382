"""expand(): deterministic grid × scaling path × seeds with stable content ids."""

import math

import pytest

from sweeper.expand import TooManyTrials, check_trial_count, count_trials, expand, find_trial
from tests.helpers import make_spec


def test_grid_size_order_and_stable_ids():
    spec = make_spec(sweep={"batch_size": [8, 16], "lr": [0.1, 0.2], "svag_l": [1, 4]}, seeds=[0, 1, 2])
    trials = expand(spec)
    assert len(trials) == 2 * 2 * 2 * 3
    assert [t.index for t in trials] == list(range(24))
    assert [t.seed for t in trials[:3]] == [0, 1, 2]  # seed is the innermost axis
    again = expand(make_spec(sweep={"batch_size": [8, 16], "lr": [0.1, 0.2], "svag_l": [1, 4]}, seeds=[0, 1, 2]))
    assert [t.trial_id for t in trials] == [t.trial_id for t in again]
    assert len({t.trial_id for t in trials}) == 24


def test_id_depends_on_content_not_position():
    one = expand(make_spec(sweep={"lr": [0.1]}))[0]
    two = expand(make_spec(sweep={"lr": [0.05, 0.1]}))
    assert two[1].trial_id == one.trial_id and two[0].trial_id != one.trial_id
    assert expand(make_spec(sweep={"lr": [0.1]}, data={"noise": 0.5}))[0].trial_id != one.trial_id


def test_linear_scaling_path():
    trials = expand(make_spec(sweep={"batch_size": [8], "lr": [0.05]},
                              scaling={"rule": "linear", "factors": [1, 2, 4]}))
    assert [(t.batch_size, t.lr, t.scaling.kappa) for t in trials] == [(8, 0.05, 1), (16, 0.1, 2), (32, 0.2, 4)]
    assert all(t.scaling.base_batch_size == 8 and t.scaling.base_lr == 0.05 for t in trials)


def test_sqrt_scaling_path_rescales_betas_and_eps():
    spec = make_spec(
        optimizer={"name": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
        sweep={"batch_size": [8], "lr": [1e-3]},
        scaling={"rule": ["sqrt", "linear"], "factors": [1, 4]},
    )
    trials = expand(spec)
    sqrt4 = trials[1]
    assert sqrt4.scaling.rule == "sqrt" and sqrt4.batch_size == 32
    assert math.isclose(sqrt4.lr, 2e-3)
    assert math.isclose(sqrt4.optimizer.beta1, 1 - 4 * 0.1) and math.isclose(sqrt4.optimizer.beta2, 1 - 4 * 0.001)
    assert math.isclose(sqrt4.optimizer.eps, 0.5e-8)
    linear4 = trials[3]
    assert linear4.scaling.rule == "linear" and math.isclose(linear4.lr, 4e-3) and linear4.optimizer.beta1 == 0.9


def test_optimizer_axes_and_hyperparameter_columns():
    trials = expand(make_spec(sweep={"momentum": [0.0, 0.9]}))
    assert [t.optimizer.momentum for t in trials] == [0.0, 0.9]
    cols = trials[1].hyperparameters()
    assert cols["momentum"] == 0.9 and cols["beta1"] is None and cols["kappa"] is None


def test_step_multiplier_is_l_or_ell_squared():
    assert expand(make_spec(sweep={"svag_l": [4]}))[0].step_multiplier == 4
    assert expand(make_spec(optimizer={"name": "adam"}, sweep={"svag_l": [4]}))[0].step_multiplier == 16


def test_find_trial_by_id_or_index():
    trials = expand(make_spec(sweep={"lr": [0.1, 0.2]}))
    assert find_trial(trials, trials[1].trial_id) is trials[1]
    assert find_trial(trials, "0") is trials[0]
    with pytest.raises(KeyError) as exc:
        find_trial(trials, "nope")
    assert "index 0..1" in exc.value.args[0]


def test_count_trials_matches_expand_without_expanding():
    specs = [
        make_spec(sweep={"batch_size": [8, 16], "lr": [0.1, 0.2], "svag_l": [1, 4]}, seeds=[0, 1, 2]),
        make_spec(optimizer={"name": "adam"}, sweep={"lr": [1e-3], "beta2": [0.99, 0.999]},
                  scaling={"rule": ["sqrt", "linear"], "factors": [1, 2, 4]}),
        make_spec(sweep={"momentum": [0.0, 0.5, 0.9], "weight_decay": [0, 1e-4]}),
    ]
    for spec in specs:
        assert count_trials(spec) == len(expand(spec)) == check_trial_count(spec)


def test_a_grid_over_the_limit_is_refused_from_its_axes():
    axes = {"lr": [0.001 * (i + 1) for i in range(100)], "weight_decay": [1e-5 * i for i in range(100)]}
    spec = make_spec(sweep=axes, seeds=list(range(400)))
    with pytest.raises(TooManyTrials) as info:
        check_trial_count(spec)  # would be 4 million TrialConfigs if expanded
    assert str(info.value) == ("the study expands to 4 000 000 trials (100 lr × 100 weight_decay × 400 seeds); the "
                               "limit is 10 000 (shrink the grid, or raise it with --max-trials)")
    assert check_trial_count(spec, max_trials=4_000_000) == 4_000_000


def test_find_trial_takes_only_ascii_indices():
    trials = expand(make_spec())
    with pytest.raises(KeyError):
        find_trial(trials, "²")  # str.isdigit() is true for it, int() is not
