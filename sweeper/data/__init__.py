"""Data sets for sweeper: linear regression, teacher–student, MNIST-1D, CIFAR-10/100.

`build_dataset(name, device, dtype, **options)` returns a `Dataset` already on the device.
"""

from __future__ import annotations

from typing import Any

import torch

from . import cifar, linreg, mnist1d_data, teacher
from .cifar import check_cifar_root
from .common import Dataset

DATA_NAMES = ("linreg", "teacher", "mnist1d", "cifar10", "cifar100")

__all__ = ["DATA_NAMES", "Dataset", "build_dataset", "check_cifar_root"]


def build_dataset(name: str, device: torch.device | str, dtype: torch.dtype, **options: Any) -> Dataset:
    """Build data set `name` on `device`; x in `dtype`. Unknown name/option → ValueError."""
    device = torch.device(device)
    if name == "linreg":
        return linreg.build(device, dtype, **options)
    if name == "teacher":
        return teacher.build(device, dtype, **options)
    if name == "mnist1d":
        return mnist1d_data.build(device, dtype, **options)
    if name in ("cifar10", "cifar100"):
        return cifar.build(name, device, dtype, **options)
    raise ValueError(f"unknown data set {name!r} (expected one of {', '.join(DATA_NAMES)})")
