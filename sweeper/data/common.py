"""The `Dataset` container and helpers shared by the data-set builders."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

Task = Literal["regression", "classification"]
Augment = Callable[[Tensor, torch.Generator], Tensor]


@dataclass(frozen=True)
class Dataset:
    """A fully materialised train/test split, already on the target device.

    x_train: (N, *input_shape), x_test: (N_test, *input_shape), in the requested dtype.
    y_train: (N,), y_test: (N_test,): int64 class indices for classification,
    requested dtype targets for regression.
    augment: maps a batch (B, *input_shape) to an augmented batch of the same shape and
    device, drawing randomness only from the given generator; None = no augmentation.
    exact_test_loss: linreg only; population test loss (½·MSE convention) of the linear
    predictor x ↦ xᵀw for w of shape (d,), computed in closed form in float64.
    meta: data-set specific extras (see each builder).
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    task: Task
    num_outputs: int
    input_shape: tuple[int, ...]
    augment: Augment | None = None
    exact_test_loss: Callable[[Tensor], float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if tuple(x.shape[1:]) != tuple(self.input_shape):
                raise ValueError(f"x_{split} has shape {tuple(x.shape)}, expected (N, *{self.input_shape})")
            if y.shape != (x.shape[0],):
                raise ValueError(f"y_{split} has shape {tuple(y.shape)}, expected ({x.shape[0]},)")
        if self.task not in ("regression", "classification"):
            raise ValueError(f"task must be 'regression' or 'classification', got {self.task!r}")

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return int(self.x_test.shape[0])


def resolve_options(
    name: str, options: Mapping[str, Any], defaults: Mapping[str, Any], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Merge `options` over `defaults`; ValueError naming any unknown or missing option."""
    allowed = set(defaults) | set(required)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"unknown option(s) for data set {name!r}: {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    missing = [k for k in required if k not in options]
    if missing:
        raise ValueError(f"data set {name!r} requires option(s): {', '.join(missing)}")
    return {**defaults, **options}


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return `value` as an int, or raise ValueError if it is not an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"option {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def cpu_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed` (data are drawn on CPU so any device gets the same data)."""
    return torch.Generator(device="cpu").manual_seed(int(seed))
