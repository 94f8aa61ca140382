"""MNIST-1D (Greydanus 2020), generated procedurally by the `mnist1d` package (no download)."""

from __future__ import annotations

import random
from importlib.metadata import version
from typing import Any

import numpy as np
import torch

from .common import Dataset, check_positive_int, resolve_options
from .disk_cache import cached_arrays

DEFAULTS: dict[str, Any] = dict(n_train=4000, n_test=1000, seed=42)
NUM_CLASSES = 10
SEQ_LEN = 40


def generate(n_train: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x (n_train + n_test, 40) float, y (n_train + n_test,) int of MNIST-1D with generator seed ``seed``: made by
    :func:`make` once per machine, then read from the data file cache (``sweeper.data.disk_cache``)."""
    params = {"n_train": n_train, "n_test": n_test, "seed": seed}
    arrays = cached_arrays("mnist1d", params, version("mnist1d"), lambda: make(n_train, n_test, seed))
    return arrays["x"], arrays["y"]


def make(n_train: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    """Run mnist1d.data.make_dataset; return {"x": (n_train + n_test, 40) float, "y": (n_train + n_test,) int}.

    make_dataset reseeds numpy's and Python's global RNGs; their states are restored afterwards.
    It makes num_samples // 10 examples per class, so num_samples is rounded up to a multiple of 10
    and the surplus is dropped from the end of the (shuffled) test part.
    """
    from mnist1d.data import get_dataset_args, make_dataset  # heavy import (scipy, matplotlib)

    total = n_train + n_test
    args = get_dataset_args()
    args.num_samples = -(-total // NUM_CLASSES) * NUM_CLASSES
    args.train_split = n_train / args.num_samples
    args.seed = int(seed)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    # Re-split at n_train ourselves: int(len * train_split) may round the wrong way.
    x = np.concatenate([d["x"], d["x_test"]])[:total]
    y = np.concatenate([d["y"], d["y_test"]])[:total]
    return {"x": x, "y": y}


def shape(**options: Any) -> tuple[tuple[int, ...], int]:
    """(input shape, outputs) of the data set, without building it."""
    return (1, SEQ_LEN), NUM_CLASSES


def build(device: torch.device, dtype: torch.dtype, **options: Any) -> Dataset:
    """Build MNIST-1D: x (N, 1, 40) in `dtype` (standardised by mnist1d), y (N,) int64 in 0..9."""
    o = resolve_options("mnist1d", options, DEFAULTS)
    n_train, n_test = check_positive_int("n_train", o["n_train"]), check_positive_int("n_test", o["n_test"])
    x, y = generate(n_train, n_test, int(o["seed"]))
    xt = torch.from_numpy(np.ascontiguousarray(x)).reshape(-1, 1, SEQ_LEN).to(device=device, dtype=dtype)
    yt = torch.from_numpy(np.ascontiguousarray(y)).to(device=device, dtype=torch.long)
    return Dataset(
        x_train=xt[:n_train], y_train=yt[:n_train], x_test=xt[n_train:], y_test=yt[n_train:],
        task="classification", num_outputs=NUM_CLASSES, input_shape=(1, SEQ_LEN),
        meta={"seed": int(o["seed"])},
    )
