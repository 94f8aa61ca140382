"""Data sets for sweeper: linear regression, teacher–student, MNIST-1D, CIFAR-10/100.

`build_dataset(name, device, dtype, **options)` returns a `Dataset` already on the device; with `cache=True` the
process's shared copy (built once per data spec, device and dtype: `sweeper.data.cache`).

Importing this package does not import torch: the torch modules load on first use (`build_dataset`, `Dataset`,
`cache_key`), so the spec and the CLI can validate names and CIFAR folders cheaply.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sweeper.names import DATA_NAMES

from .cifar_layout import check_cifar_root

if TYPE_CHECKING:
    import torch

    from .cache import cache_key
    from .common import Dataset

__all__ = ["DATA_NAMES", "Dataset", "build_dataset", "cache_key", "check_cifar_root"]

_LAZY = {"Dataset": "sweeper.data.common", "cache_key": "sweeper.data.cache"}


def __getattr__(name: str) -> Any:
    """The torch-backed exports (`Dataset`, `cache_key`), imported when first asked for."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_dataset(name: str, device: torch.device | str, dtype: torch.dtype, *, cache: bool = False,
                  **options: Any) -> Dataset:
    """Build data set `name` on `device`; x in `dtype`. Unknown name/option → ValueError.

    ``cache=True``: the process's cached copy if it has one (the same object each time: read it, never write
    it), else built and kept (``sweeper.data.cache``)."""
    import torch

    from .cache import DATASETS, cache_key

    device = torch.device(device)
    if cache:
        key = cache_key(name, device, dtype, options)
        return DATASETS.get(key, lambda: _build(name, device, dtype, options))
    return _build(name, device, dtype, options)


def _build(name: str, device: torch.device, dtype: torch.dtype, options: dict[str, Any]) -> Dataset:
    from . import cifar, linreg, mnist1d_data, teacher

    if name == "linreg":
        return linreg.build(device, dtype, **options)
    if name == "teacher":
        return teacher.build(device, dtype, **options)
    if name == "mnist1d":
        return mnist1d_data.build(device, dtype, **options)
    if name in ("cifar10", "cifar100"):
        return cifar.build(name, device, dtype, **options)
    raise ValueError(f"unknown data set {name!r} (expected one of {', '.join(DATA_NAMES)})")
