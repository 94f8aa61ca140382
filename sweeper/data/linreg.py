"""Gaussian-design linear regression with a closed-form population test loss (THEORY.md §8).

x ~ N(0, H), H = diag(h), h_i = condition^(-i/(dim-1)) (geometric from 1 to 1/condition);
y = xᵀw* + noise·ε, ε ~ N(0, 1), w* ~ N(0, I/dim). Loss convention: ½·mean squared error,
so the population loss of w is ½((w − w*)ᵀH(w − w*) + noise²).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .common import Dataset, check_positive_int, cpu_generator, resolve_options

DEFAULTS: dict[str, Any] = dict(n_train=16384, dim=16, condition=10.0, noise=1.0, n_test=4096, seed=0)


def spectrum(dim: int, condition: float) -> Tensor:
    """Eigenvalues h of the input covariance, shape (dim,), float64, from 1 down to 1/condition."""
    if dim == 1:
        return torch.ones(1, dtype=torch.float64)
    i = torch.arange(dim, dtype=torch.float64)
    return float(condition) ** (-i / (dim - 1))


def population_loss(w: Tensor, h: Tensor, w_star: Tensor, noise: float) -> float:
    """½((w − w*)ᵀ diag(h) (w − w*) + noise²) in float64; w of shape (d,) (any device/dtype)."""
    w64 = w.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    if w64.shape != w_star.shape:
        raise ValueError(f"w has {w64.numel()} entries, expected {w_star.numel()}")
    diff = w64 - w_star
    return 0.5 * (float((h * diff * diff).sum()) + float(noise) ** 2)


def sample(n: int, h: Tensor, w_star: Tensor, noise: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw n examples in float64 on CPU: x (n, d), y (n,)."""
    x = torch.randn(n, h.numel(), generator=gen, dtype=torch.float64) * h.sqrt()
    y = x @ w_star + float(noise) * torch.randn(n, generator=gen, dtype=torch.float64)
    return x, y


def build(device: torch.device, dtype: torch.dtype, **options: Any) -> Dataset:
    """Build the linreg data set; meta holds h, w_star (float64, CPU), noise, condition."""
    o = resolve_options("linreg", options, DEFAULTS)
    n_train, n_test = check_positive_int("n_train", o["n_train"]), check_positive_int("n_test", o["n_test"])
    dim = check_positive_int("dim", o["dim"])
    condition, noise = float(o["condition"]), float(o["noise"])
    if condition < 1.0:
        raise ValueError(f"option condition must be >= 1, got {condition}")
    if noise < 0.0:
        raise ValueError(f"option noise must be >= 0, got {noise}")

    gen = cpu_generator(o["seed"])
    h = spectrum(dim, condition)
    # Draw order (w*, test, train) keeps w* and the test set independent of n_train.
    w_star = torch.randn(dim, generator=gen, dtype=torch.float64) / dim**0.5
    x_test, y_test = sample(n_test, h, w_star, noise, gen)
    x_train, y_train = sample(n_train, h, w_star, noise, gen)

    def exact_test_loss(w: Tensor) -> float:
        return population_loss(w, h, w_star, noise)

    put = dict(device=device, dtype=dtype)
    return Dataset(
        x_train=x_train.to(**put), y_train=y_train.to(**put),
        x_test=x_test.to(**put), y_test=y_test.to(**put),
        task="regression", num_outputs=1, input_shape=(dim,),
        augment=None, exact_test_loss=exact_test_loss,
        meta={"h": h, "w_star": w_star, "noise": noise, "condition": condition},
    )
