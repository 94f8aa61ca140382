"""CIFAR-10 / CIFAR-100 from a local copy in the standard python-pickle layout (no download).

`root` may be the batch folder itself (CIFAR-10: data_batch_1..5, test_batch, batches.meta;
CIFAR-100: train, test, meta) or its parent holding cifar-10-batches-py/ or cifar-100-python/.
Images are normalised per channel with the mean/std of the *full* training set (so the
normalisation does not depend on the n_train cap); x is (N, 3, 32, 32), y (N,) int64.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .augment import random_crop_flip
from .cifar_layout import check_cifar_root, find_batch_dir, layout
from .common import Dataset, check_positive_int, resolve_options

DEFAULTS: dict[str, Any] = dict(augment=True, n_train=None)
REQUIRED = ("root",)
IMAGE_SHAPE = (3, 32, 32)


class UnsafePickleError(pickle.UnpicklingError):
    """A CIFAR file that is not a plain CIFAR pickle (it asks for code beyond numpy arrays); one-line message."""


_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {(module, "_reconstruct") for module in _NUMPY_CORE[:2]}  # ndarray.__reduce__ (protocols 0-4)
    | {(module, "scalar") for module in _NUMPY_CORE[:2]}  # a numpy scalar, e.g. an np.int64 label
    | {(module, "_frombuffer") for module in _NUMPY_CORE[2:]}  # ndarray.__reduce_ex__ at protocol 5
    | {("numpy", "ndarray"), ("numpy", "dtype")}
    | {("_codecs", "encode")}  # how protocols 0-2 write a bytes object from Python 3
)
"""What the CIFAR python-pickle format needs: numpy arrays (and their dtypes, and numpy scalars) and bytes; dicts,
lists, strings and numbers need no globals. Everything else (os.system, builtins.eval, any class) is refused."""


class _CifarUnpickler(pickle.Unpickler):
    """A pickle reader that builds only the objects of the CIFAR format, so a file cannot run code (see
    ``_ALLOWED_GLOBALS``); ``persistent_load`` is refused by the base class."""

    def __init__(self, file: Any, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"data.root: {self.path} is not a plain CIFAR pickle: it asks for {module}.{name} (only numpy "
                f"arrays, lists, dicts and bytes are loaded); use the original CIFAR files"
            )
        if module.startswith("numpy.core.") and hasattr(np, "_core"):  # numpy ≥ 2 moved numpy.core to numpy._core
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[bytes, Any]:
    """One CIFAR batch file through :class:`_CifarUnpickler`; raises :class:`UnsafePickleError` naming the file for
    anything that is not a plain CIFAR pickle."""
    with open(path, "rb") as f:
        try:
            data = _CifarUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except Exception as exc:  # truncated, corrupt or not a pickle at all
            raise UnsafePickleError(f"data.root: cannot read {path} as a CIFAR pickle: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")) from None
    if not isinstance(data, dict):
        raise UnsafePickleError(f"data.root: {path} holds a {type(data).__name__}, not the dict of a CIFAR batch")
    return data


def _read_split(folder: Path, files: tuple[str, ...], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate batches: data (N, 3072) uint8 channel-major, labels (N,) int64."""
    xs, ys = [], []
    for f in files:
        d = _unpickle(folder / f)
        xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3072))
        ys.append(np.asarray(d[label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def channel_stats(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and std (population) of uint8 images (N, 3072), in pixel units 0..255."""
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for c in range(3):
        counts = np.bincount(data[:, c * 1024:(c + 1) * 1024].ravel(), minlength=256).astype(np.float64)
        n = counts.sum()
        mean = (counts * values).sum() / n
        means.append(mean)
        stds.append(np.sqrt((counts * (values - mean) ** 2).sum() / n))
    return np.asarray(means), np.maximum(np.asarray(stds), 1e-8)


def shape(name: str, **options: Any) -> tuple[tuple[int, ...], int]:
    """(input shape, outputs) of ``name`` (cifar10 | cifar100), without reading it."""
    return IMAGE_SHAPE, 100 if name == "cifar100" else 10


def build(name: str, device: torch.device, dtype: torch.dtype, **options: Any) -> Dataset:
    """Build cifar10/cifar100; meta: mean/std (pixel units, per channel), label_names, batch_dir."""
    lay = layout(name)
    o = resolve_options(name, options, DEFAULTS, REQUIRED)
    problem = check_cifar_root(name, str(o["root"]))
    if problem is not None:
        raise FileNotFoundError(problem)
    folder = find_batch_dir(name, o["root"])
    assert folder is not None
    x_tr, y_tr = _read_split(folder, lay.train_files, lay.label_key)
    x_te, y_te = _read_split(folder, (lay.test_file,), lay.label_key)
    mean, std = channel_stats(x_tr)
    if o["n_train"] is not None:
        n = check_positive_int("n_train", o["n_train"])
        if n > len(y_tr):
            raise ValueError(f"option n_train={n} exceeds the {len(y_tr)} training images in {folder}")
        x_tr, y_tr = x_tr[:n], y_tr[:n]
    names = None
    if (folder / lay.meta_file).is_file():
        names = [s.decode() for s in _unpickle(folder / lay.meta_file).get(lay.names_key, [])] or None

    m = torch.as_tensor(mean, dtype=dtype, device=device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=dtype, device=device).view(1, 3, 1, 1)

    def to_x(a: np.ndarray) -> torch.Tensor:  # uint8 moved first (4x less traffic), then converted
        t = torch.from_numpy(np.ascontiguousarray(a)).to(device).view(-1, *IMAGE_SHAPE)
        return (t.to(dtype) - m) / s

    return Dataset(
        x_train=to_x(x_tr), y_train=torch.from_numpy(y_tr).to(device),
        x_test=to_x(x_te), y_test=torch.from_numpy(y_te).to(device),
        task="classification", num_outputs=lay.num_classes, input_shape=IMAGE_SHAPE,
        augment=random_crop_flip if bool(o["augment"]) else None,
        meta={"mean": mean, "std": std, "label_names": names, "batch_dir": str(folder)},
    )
