"""Linear regression with Gaussian design at a fixed weight, the closed-form case of docs/theory.md §8.

x ~ N(0, H), H = diag(h); y = xᵀw* + σε; per-example loss ½(xᵀw − y)², error e = w − w*. Per-example gradient
g = x(xᵀe − σε); population: ∇L = He, Σ(e) = H e eᵀ H + (eᵀHe) H + σ² H (Gaussian fourth moments).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor


@dataclass
class LinRegPopulation:
    h: Tensor  # (d,) float64
    w_star: Tensor
    e: Tensor
    sigma: float

    @property
    def d(self) -> int:
        return self.h.numel()

    @property
    def w(self) -> Tensor:
        return self.w_star + self.e

    def grad(self) -> Tensor:
        """Population gradient ∇L = He, shape (d,)."""
        return self.h * self.e

    def sigma_matrix(self) -> Tensor:
        """Per-example gradient covariance Σ(e), shape (d, d)."""
        he = self.h * self.e
        hmat = torch.diag(self.h)
        return torch.outer(he, he) + float(self.e @ he) * hmat + self.sigma**2 * hmat

    def trace_sigma(self) -> float:
        return float(torch.trace(self.sigma_matrix()))

    def sample(self, shape: tuple[int, ...], gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """x of shape (*shape, d) and y of shape shape, float64."""
        x = torch.randn(*shape, self.d, generator=gen, dtype=torch.float64) * self.h.sqrt()
        y = x @ self.w_star + self.sigma * torch.randn(*shape, generator=gen, dtype=torch.float64)
        return x, y

    def example_grads(self, x: Tensor, y: Tensor) -> Tensor:
        """Closed form x(xᵀw − y), shape x.shape."""
        return x * (x @ self.w - y).unsqueeze(-1)


@pytest.fixture
def linreg() -> LinRegPopulation:
    d = 6
    gen = torch.Generator().manual_seed(123)
    h = torch.logspace(0, -1, d, dtype=torch.float64)  # 1 … 0.1
    w_star = torch.randn(d, generator=gen, dtype=torch.float64) / d**0.5
    e = 0.4 * torch.randn(d, generator=gen, dtype=torch.float64)
    return LinRegPopulation(h, w_star, e, sigma=0.7)
