"""Data sets for sweeper: linear regression, teacher–student, MNIST-1D, CIFAR-10/100.

`build_dataset(name, device, dtype, **options)` returns a `Dataset` already on the device; with `cache=True` the
process's shared copy (built once per data spec, device and dtype: `sweeper.data.cache`).
"""

from __future__ import annotations

from typing import Any

import torch

from . import cifar, linreg, mnist1d_data, teacher
from .cache import DATASETS, cache_key
from .cifar import check_cifar_root
from .common import Dataset

DATA_NAMES = ("linreg", "teacher", "mnist1d", "cifar10", "cifar100")

__all__ = ["DATA_NAMES", "Dataset", "build_dataset", "cache_key", "check_cifar_root"]


def build_dataset(name: str, device: torch.device | str, dtype: torch.dtype, *, cache: bool = False,
                  **options: Any) -> Dataset:
    """Build data set `name` on `device`; x in `dtype`. Unknown name/option → ValueError.

    ``cache=True``: the process's cached copy if it has one (the same object each time: read it, never write
    it), else built and kept (``sweeper.data.cache``)."""
    device = torch.device(device)
    if cache:
        key = cache_key(name, device, dtype, options)
        return DATASETS.get(key, lambda: _build(name, device, dtype, options))
    return _build(name, device, dtype, options)


def _build(name: str, device: torch.device, dtype: torch.dtype, options: dict[str, Any]) -> Dataset:
    if name == "linreg":
        return linreg.build(device, dtype, **options)
    if name == "teacher":
        return teacher.build(device, dtype, **options)
    if name == "mnist1d":
        return mnist1d_data.build(device, dtype, **options)
    if name in ("cifar10", "cifar100"):
        return cifar.build(name, device, dtype, **options)
    raise ValueError(f"unknown data set {name!r} (expected one of {', '.join(DATA_NAMES)})")
