"""The process-wide data-set cache: one build per data spec per process, shared read-only, results unchanged."""

from __future__ import annotations

import mnist1d.data
import pytest
import torch

from sweeper.data import build_dataset, cache_key, disk_cache
from sweeper.data.cache import DATASETS, SIZE_ENV
from sweeper.reporter import ListReporter
from sweeper.testing.fake_cifar import write_fake_cifar
from sweeper.train.loop import Trial, run_trial
from tests.helpers import make_trial

MNIST1D = {"name": "mnist1d", "n_train": 200, "n_test": 100}
CNN = {"name": "cnn", "width": 4, "depth": 1}


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(SIZE_ENV, raising=False)
    monkeypatch.setenv(disk_cache.DIR_ENV, str(tmp_path / "files"))  # and an empty file cache: builds are counted
    DATASETS.clear()
    yield
    DATASETS.clear()


@pytest.fixture
def make_dataset_calls(monkeypatch) -> list[int]:
    """Counts mnist1d's make_dataset calls (the expensive part of building MNIST-1D)."""
    calls: list[int] = []
    real = mnist1d.data.make_dataset

    def counting(args):
        calls.append(args.seed)
        return real(args)

    monkeypatch.setattr(mnist1d.data, "make_dataset", counting)
    return calls


def mnist_trial(**data):
    return make_trial(data=MNIST1D | data, model=CNN, sweep={"batch_size": [16], "lr": [0.05]},
                      budget={"steps": 20}, log={"every_epochs": None, "every_steps": 10, "eval_samples": 64})


def test_two_trials_of_one_data_spec_build_it_once(make_dataset_calls):
    first = run_trial(mnist_trial(), ListReporter())
    second = run_trial(mnist_trial(), ListReporter())
    assert len(make_dataset_calls) == 1
    assert DATASETS.info().hits == 1 and DATASETS.info().builds == 1
    assert first.points == second.points


def test_different_data_specs_build_twice(make_dataset_calls):
    run_trial(mnist_trial(), ListReporter())
    run_trial(mnist_trial(seed=7), ListReporter())
    assert make_dataset_calls == [42, 7]
    # the same spec again (either one) is a hit
    Trial(mnist_trial(seed=7))
    assert len(make_dataset_calls) == 2


def test_results_are_those_of_a_fresh_build(make_dataset_calls):
    config = mnist_trial()
    cached = [run_trial(config, ListReporter()).points for _ in range(2)]
    fresh_data = build_dataset("mnist1d", "cpu", torch.float32, **config.data.model_dump(exclude={"name"}))
    fresh = Trial(config, data=fresh_data).run(ListReporter()).points
    assert cached[0] == cached[1] == fresh


def test_key_is_spec_device_and_dtype():
    opts = {"n_train": 64, "dim": 4}
    assert cache_key("linreg", "cpu", torch.float32, opts) == cache_key("linreg", torch.device("cpu"), torch.float32,
                                                                        dict(reversed(opts.items())))
    assert cache_key("linreg", "cpu", torch.float32, opts) != cache_key("linreg", "cpu", torch.float64, opts)
    assert cache_key("linreg", "cpu", torch.float32, opts) != cache_key("linreg", "cpu", torch.float32,
                                                                        opts | {"dim": 5})
    a = build_dataset("linreg", "cpu", torch.float32, cache=True, **opts)
    assert build_dataset("linreg", "cpu", torch.float32, cache=True, **opts) is a
    assert build_dataset("linreg", "cpu", torch.float64, cache=True, **opts) is not a
    assert build_dataset("linreg", "cpu", torch.float32, **opts) is not a  # without cache=True: always fresh


def test_bounded_least_recently_used(monkeypatch):
    built = [build_dataset("linreg", "cpu", torch.float32, cache=True, n_train=64, dim=d) for d in range(1, 5)]
    assert build_dataset("linreg", "cpu", torch.float32, cache=True, n_train=64, dim=1) is built[0]  # now newest
    build_dataset("linreg", "cpu", torch.float32, cache=True, n_train=64, dim=5)  # evicts dim=2, the oldest
    assert DATASETS.info().entries == 4
    assert build_dataset("linreg", "cpu", torch.float32, cache=True, n_train=64, dim=1) is built[0]
    assert build_dataset("linreg", "cpu", torch.float32, cache=True, n_train=64, dim=2) is not built[1]
    monkeypatch.setenv(SIZE_ENV, "0")  # off: every call builds
    DATASETS.clear()
    one = build_dataset("linreg", "cpu", torch.float32, cache=True, n_train=64, dim=1)
    assert build_dataset("linreg", "cpu", torch.float32, cache=True, n_train=64, dim=1) is not one
    assert DATASETS.info().entries == 0


def test_data_written_in_place_is_rebuilt_not_shared():
    opts = {"n_train": 64, "dim": 4}
    data = build_dataset("linreg", "cpu", torch.float32, cache=True, **opts)
    original = data.y_train.clone()
    data.y_train[:8] = float("nan")  # through a view, as a careless trial might
    again = build_dataset("linreg", "cpu", torch.float32, cache=True, **opts)
    assert again is not data and torch.equal(again.y_train, original)
    assert DATASETS.info().rebuilt_after_mutation == 1


def test_trials_do_not_write_into_cached_data(tmp_path):
    """Augmented CIFAR with SVAG, online noise and diagnostics: the cached tensors are unchanged afterwards."""
    write_fake_cifar(tmp_path, "cifar10", n_train_per_batch=8, n_test=8)
    config = make_trial(
        data={"name": "cifar10", "root": str(tmp_path), "augment": True}, model=CNN,
        sweep={"batch_size": [4], "lr": [0.05], "svag_l": [2]}, budget={"steps": 6},
        log={"every_epochs": None, "every_steps": 3, "eval_samples": 16},
        diagnostics={"online_noise": True, "noise": {"every_epochs": 0.5, "batches": 2}},
    )
    trial = Trial(config)
    data = trial.data
    before = [t.clone() for t in (data.x_train, data.y_train, data.x_test, data.y_test)]
    versions = [t._version for t in (data.x_train, data.y_train, data.x_test, data.y_test)]
    trial.run(ListReporter())
    after = (data.x_train, data.y_train, data.x_test, data.y_test)
    assert [t._version for t in after] == versions
    assert all(torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert Trial(config).data is data
