"""SVAG (Li, Malladi, Arora 2021): mix two independent batch gradients so the noise covariance is l·Σ/B.

x ← x − (η/l)(c1·∇L_γ1 + c2·∇L_γ2), c1,2 = (1 ± √(2l−1))/2: c1 + c2 = 1, c1² + c2² = l.
For adaptive methods (Malladi et al. 2022) with parameter ℓ: η → η/ℓ, 1 − β → (1 − β)/ℓ², ε → ε·ℓ and the
gradients are mixed with l = ℓ²; both families take ``step_multiplier`` (l or ℓ²) raw steps per SGD-equivalent step.
"""

from __future__ import annotations

import math

import torch


def coefficients(l: float) -> tuple[float, float]:
    """(c1, c2) for SVAG parameter l ≥ 1; (1, 0) at l = 1."""
    root = math.sqrt(2 * l - 1)
    return (1 + root) / 2, (1 - root) / 2


def mixing_l(optimizer_name: str, svag_l: float) -> float:
    """The l of the gradient mixing: l itself for the SGD family, ℓ² for adam/rmsprop."""
    return svag_l**2 if optimizer_name in ("adam", "rmsprop") else svag_l


def example_weights(l: float, batch_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Per-example loss weights, shape (B,) at l = 1 or (2B,) for two concatenated batches [γ1; γ2]."""
    if l == 1:
        return torch.full((batch_size,), 1.0 / batch_size, device=device, dtype=dtype)
    c1, c2 = coefficients(l)
    return torch.cat(
        [torch.full((batch_size,), c / batch_size, device=device, dtype=dtype) for c in (c1, c2)]
    )


def adaptive_hyperparameters(lr: float, beta1: float | None, beta2: float, eps: float, ell: float):
    """(η/ℓ, β1', β2', ε·ℓ) with 1 − β → (1 − β)/ℓ²: the adaptive SVAG rescaling (ℓ = 1 is the identity)."""
    rescale = lambda beta: None if beta is None else 1 - (1 - beta) / ell**2  # noqa: E731
    return lr / ell, rescale(beta1), rescale(beta2), eps * ell
