"""Tests for option handling and dispatch of build_dataset."""

from pathlib import Path

import pytest
import torch

from sweeper.data import DATA_NAMES, Dataset, build_dataset
from sweeper.testing.fake_cifar import write_fake_cifar

CPU = torch.device("cpu")


@pytest.mark.parametrize("name", DATA_NAMES)
def test_unknown_option_is_named(name: str, tmp_path: Path) -> None:
    extra = {"root": str(tmp_path)} if name.startswith("cifar") else {}
    with pytest.raises(ValueError, match="bogus_opt"):
        build_dataset(name, CPU, torch.float32, bogus_opt=1, **extra)


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="imagenet"):
        build_dataset("imagenet", CPU, torch.float32)


@pytest.mark.parametrize("opts", [dict(n_train=0), dict(dim=2.5), dict(noise=-1.0), dict(condition=0.5)])
def test_bad_linreg_values(opts: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(opts))):
        build_dataset("linreg", CPU, torch.float32, **opts)


def test_bad_teacher_values() -> None:
    with pytest.raises(ValueError, match="label_noise"):
        build_dataset("teacher", CPU, torch.float32, label_noise=1.5)
    with pytest.raises(ValueError, match="classes"):
        build_dataset("teacher", CPU, torch.float32, classes=1)


def test_dataset_validates_shapes_and_n_train(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path, "cifar100", n_train_per_batch=3, n_test=2)
    d = build_dataset("cifar100", "cpu", torch.float32, root=str(tmp_path))
    assert isinstance(d, Dataset) and d.n_train == 3
    with pytest.raises(ValueError, match="x_train"):
        Dataset(torch.zeros(4, 3), torch.zeros(4), torch.zeros(2, 3), torch.zeros(2), "regression", 1, (2,))
    with pytest.raises(ValueError, match="y_test"):
        Dataset(torch.zeros(4, 3), torch.zeros(4), torch.zeros(2, 3), torch.zeros(3), "regression", 1, (3,))
