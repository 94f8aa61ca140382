"""Gaussian-design linear regression with a closed-form population test loss (docs/theory.md §8).

x ~ N(0, H), H = diag(h), h_i = condition^(-i/(dim-1)) (geometric from 1 to 1/condition);
y = xᵀw* + noise·ε, ε ~ N(0, 1), w* ~ N(0, I/dim). Loss convention: ½·mean squared error,
so the population loss of w is ½((w − w*)ᵀH(w − w*) + noise²).

``hetero`` > 0 makes the label noise depend on x along u = (1, …, 1)/√d, not an eigenvector of H:
noise(x)² = noise²·(1 + hetero·(uᵀx)²). The gradient-noise covariance at w* is then
noise²·(H + hetero·(2 H u uᵀ H + (uᵀHu) H)), which does not commute with H: SGD's stationary state carries a
probability current (docs/theory.md §9), the known non-equilibrium case. The population loss gains noise²·hetero·uᵀHu/2.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .common import Dataset, check_positive_int, cpu_generator, resolve_options

DEFAULTS: dict[str, Any] = dict(n_train=16384, dim=16, condition=10.0, noise=1.0, n_test=4096, seed=0, hetero=0.0)


def spectrum(dim: int, condition: float) -> Tensor:
    """Eigenvalues h of the input covariance, shape (dim,), float64, from 1 down to 1/condition."""
    if dim == 1:
        return torch.ones(1, dtype=torch.float64)
    i = torch.arange(dim, dtype=torch.float64)
    return float(condition) ** (-i / (dim - 1))


def noise_direction(dim: int) -> Tensor:
    """u = (1, …, 1)/√d, float64: the direction along which ``hetero`` label noise grows."""
    return torch.full((dim,), dim**-0.5, dtype=torch.float64)


def population_loss(w: Tensor, h: Tensor, w_star: Tensor, noise: float, hetero: float = 0.0) -> float:
    """½((w − w*)ᵀ diag(h) (w − w*) + noise²(1 + hetero·uᵀHu)) in float64; w of shape (d,) (any device/dtype)."""
    w64 = w.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    if w64.shape != w_star.shape:
        raise ValueError(f"w has {w64.numel()} entries, expected {w_star.numel()}")
    diff = w64 - w_star
    u = noise_direction(h.numel())
    mean_noise_sq = float(noise) ** 2 * (1.0 + float(hetero) * float((h * u * u).sum()))
    return 0.5 * (float((h * diff * diff).sum()) + mean_noise_sq)


def sample(n: int, h: Tensor, w_star: Tensor, noise: float, gen: torch.Generator,
           hetero: float = 0.0) -> tuple[Tensor, Tensor]:
    """Draw n examples in float64 on CPU: x (n, d), y (n,)."""
    x = torch.randn(n, h.numel(), generator=gen, dtype=torch.float64) * h.sqrt()
    scale = float(noise) * torch.sqrt(1.0 + float(hetero) * (x @ noise_direction(h.numel())) ** 2)
    y = x @ w_star + scale * torch.randn(n, generator=gen, dtype=torch.float64)
    return x, y


def shape(**options: Any) -> tuple[tuple[int, ...], int]:
    """(input shape, outputs) of the data set these options build, without building it."""
    return (int(options.get("dim", DEFAULTS["dim"])),), 1


def build(device: torch.device, dtype: torch.dtype, **options: Any) -> Dataset:
    """Build the linreg data set; meta holds h, w_star (float64, CPU), noise, condition."""
    o = resolve_options("linreg", options, DEFAULTS)
    n_train, n_test = check_positive_int("n_train", o["n_train"]), check_positive_int("n_test", o["n_test"])
    dim = check_positive_int("dim", o["dim"])
    condition, noise, hetero = float(o["condition"]), float(o["noise"]), float(o["hetero"])
    if hetero < 0.0:
        raise ValueError(f"option hetero must be >= 0, got {hetero}")
    if condition < 1.0:
        raise ValueError(f"option condition must be >= 1, got {condition}")
    if noise < 0.0:
        raise ValueError(f"option noise must be >= 0, got {noise}")

    gen = cpu_generator(o["seed"])
    h = spectrum(dim, condition)
    # Draw order (w*, test, train) keeps w* and the test set independent of n_train.
    w_star = torch.randn(dim, generator=gen, dtype=torch.float64) / dim**0.5
    x_test, y_test = sample(n_test, h, w_star, noise, gen, hetero)
    x_train, y_train = sample(n_train, h, w_star, noise, gen, hetero)

    def exact_test_loss(w: Tensor) -> float:
        return population_loss(w, h, w_star, noise, hetero)

    def put(t: Tensor) -> Tensor:
        return t.to(device=device, dtype=dtype)

    return Dataset(
        x_train=put(x_train), y_train=put(y_train),
        x_test=put(x_test), y_test=put(y_test),
        task="regression", num_outputs=1, input_shape=(dim,),
        augment=None, exact_test_loss=exact_test_loss,
        meta={"h": h, "w_star": w_star, "noise": noise, "condition": condition, "hetero": hetero},
    )
