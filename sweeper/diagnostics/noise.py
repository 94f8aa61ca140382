"""Gradient-noise scale: signal ‖∇L‖², noise tr Σ and their ratio (docs/theory.md §2, §9).

Σ is the per-example gradient covariance, so a batch-B gradient g_B (sampled with replacement) has
E‖g_B‖² = ‖G‖² + tr Σ/B with G = ∇L. B_simple = tr Σ/‖G‖² (McCandlish et al. 2018) and the noise-to-signal
quantities of docs/theory.md §2 satisfy G_t/N_t = B/B_simple. Units: ‖G‖², tr Σ in (gradient units)²; B_simple
in examples.
All estimates are computed in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "NoiseToSignal",
    "noise_to_signal",
    "BatchGradStats",
    "PerBatchNoise",
    "per_batch_noise",
    "TwoBatchNoiseScale",
]


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """num/den, NaN where den ≤ 0 (an unbiased ‖G‖² estimate can be ≤ 0 when the signal is buried in noise)."""
    return torch.where(den > 0, num / den, torch.full_like(num, math.nan))


@dataclass(frozen=True)
class NoiseToSignal:
    """docs/theory.md §2 from m gradients at batch size B. Tensors of shape ``grads.shape[:-2]`` (0-dim for one set).

    s: S = mean_i ‖g_i‖².  g_t: G_t = (m‖ḡ‖² − S)/(m − 1), unbiased for ‖∇L‖².  n_t: N_t = S − G_t ≈ tr Σ/B.
    ratio: G_t/N_t (≈ B/B_simple; LSR failure threshold ≈ 2).  trace_sigma: B·N_t.  b_simple: B·N_t/G_t.
    """

    m: int
    batch_size: int
    s: Tensor
    g_t: Tensor
    n_t: Tensor
    ratio: Tensor
    trace_sigma: Tensor
    b_simple: Tensor


def _noise_to_signal_from_sums(sum_sq: Tensor, mean_sq: Tensor, m: int, batch_size: int) -> NoiseToSignal:
    if m < 2:
        raise ValueError("need at least 2 batch gradients")
    s = sum_sq / m
    g_t = (m * mean_sq - s) / (m - 1)
    n_t = s - g_t
    return NoiseToSignal(m, batch_size, s, g_t, n_t, _ratio(g_t, n_t), batch_size * n_t, _ratio(batch_size * n_t, g_t))


def noise_to_signal(grads: Tensor, batch_size: int) -> NoiseToSignal:
    """G_t, N_t, G_t/N_t and B_simple from m batch gradients at batch size B; grads shape (..., m, d).

    The m gradients must be independent draws at the same weights (e.g. m = max(200, 12800 // B) batches drawn
    with replacement; BatchNorm: train-mode ``batch_grad`` gives the noise SGD feels). Cost O(m·d).
    """
    g = grads.to(torch.float64)
    m = g.shape[-2]
    return _noise_to_signal_from_sums(g.square().sum((-1, -2)), g.mean(-2).square().sum(-1), m, batch_size)


class BatchGradStats:
    """Streaming version of ``noise_to_signal``: add m batch gradients (d,) one at a time; memory O(d) float64."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.total: Tensor | None = None
        self.sum_sq = torch.zeros((), dtype=torch.float64)
        self.m = 0

    def add(self, g: Tensor) -> None:
        """Accumulate one flattened batch gradient g of shape (d,)."""
        g = g.detach().reshape(-1).to(torch.float64)
        self.total = g.clone() if self.total is None else self.total + g
        self.sum_sq = self.sum_sq.to(g.device) + g.square().sum()
        self.m += 1

    def result(self) -> NoiseToSignal:
        """The estimates over the gradients added so far (needs m ≥ 2)."""
        if self.total is None:
            raise ValueError("no gradients added")
        return _noise_to_signal_from_sums(self.sum_sq, (self.total / self.m).square().sum(), self.m, self.batch_size)


@dataclass(frozen=True)
class PerBatchNoise:
    """From one batch of B per-example gradients. Tensors of shape ``grads.shape[:-2]``.

    trace_sigma: tr Σ̂ = (Σ_i‖g_i‖² − B‖ḡ‖²)/(B − 1), unbiased for tr Σ (per-example covariance, not Σ/B).
    grad_sq: ‖ḡ‖² − tr Σ̂/B, unbiased for ‖∇L‖² (can be negative).
    grad_sq_naive: ‖ḡ‖², biased up by tr Σ/B.   b_simple: trace_sigma/grad_sq (NaN if grad_sq ≤ 0).
    """

    batch_size: int
    trace_sigma: Tensor
    grad_sq: Tensor
    grad_sq_naive: Tensor
    b_simple: Tensor


def per_batch_noise(grads: Tensor) -> PerBatchNoise:
    """Unbiased tr Σ and ‖∇L‖² from per-example gradients of one batch; grads shape (..., B, d), B ≥ 2.

    Examples must be drawn independently (with replacement) for exact unbiasedness; without replacement from N
    examples tr Σ̂ is still unbiased for the finite-population covariance but ‖ḡ‖² carries a factor (1 − B/N).
    Cost O(B·d). For a time series, smooth numerator and denominator separately (``TwoBatchNoiseScale`` style).
    """
    g = grads.to(torch.float64)
    b = g.shape[-2]
    if b < 2:
        raise ValueError("need at least 2 examples")
    mean_sq = g.mean(-2).square().sum(-1)
    trace = (g.square().sum((-1, -2)) - b * mean_sq) / (b - 1)
    grad_sq = mean_sq - trace / b
    return PerBatchNoise(b, trace, grad_sq, mean_sq, _ratio(trace, grad_sq))


class TwoBatchNoiseScale:
    """Online gradient noise scale from two batch sizes b < B′ (McCandlish et al. 2018, docs/theory.md §2).

    Each update takes ‖g_b‖² and ‖g_B′‖² at the same weights and forms the unbiased per-step estimates
        ‖G‖²  ≈ (B′‖g_B′‖² − b‖g_b‖²)/(B′ − b),     tr Σ ≈ (‖g_b‖² − ‖g_B′‖²)/(1/b − 1/B′).
    Only expectations are used, so g_b may be a sub-batch of g_B′ (e.g. one device's share). Numerator and
    denominator are smoothed separately by an EMA with decay ``beta`` (bias-corrected as in Adam), and
    B_simple = EMA(tr Σ)/EMA(‖G‖²) — the ratio of smoothed values, never the average of per-step ratios.
    Cost O(1) per update.
    """

    def __init__(self, small_batch: int, big_batch: int, beta: float = 0.99):
        if not 0 < small_batch < big_batch:
            raise ValueError(f"need 0 < small_batch < big_batch, got {small_batch}, {big_batch}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        self.small_batch, self.big_batch, self.beta = int(small_batch), int(big_batch), float(beta)
        self.ema_grad_sq = 0.0
        self.ema_trace = 0.0
        self.steps = 0

    def estimates(self, small_sq_norm: float, big_sq_norm: float) -> tuple[float, float]:
        """Per-step unbiased (‖G‖², tr Σ) from ‖g_b‖² and ‖g_B′‖² (no smoothing)."""
        b, bb = self.small_batch, self.big_batch
        grad_sq = (bb * big_sq_norm - b * small_sq_norm) / (bb - b)
        trace = (small_sq_norm - big_sq_norm) / (1.0 / b - 1.0 / bb)
        return grad_sq, trace

    def update(self, small_sq_norm: float | Tensor, big_sq_norm: float | Tensor) -> None:
        """Add one pair of squared gradient norms ‖g_b‖², ‖g_B′‖² (floats or 0-dim tensors)."""
        grad_sq, trace = self.estimates(float(small_sq_norm), float(big_sq_norm))
        self.ema_grad_sq = self.beta * self.ema_grad_sq + (1 - self.beta) * grad_sq
        self.ema_trace = self.beta * self.ema_trace + (1 - self.beta) * trace
        self.steps += 1

    def _correction(self) -> float:
        return 1.0 - self.beta**self.steps

    @property
    def grad_sq(self) -> float:
        """Smoothed ‖G‖² (NaN before the first update)."""
        return self.ema_grad_sq / self._correction() if self.steps else math.nan

    @property
    def trace_sigma(self) -> float:
        """Smoothed tr Σ (NaN before the first update)."""
        return self.ema_trace / self._correction() if self.steps else math.nan

    @property
    def b_simple(self) -> float:
        """EMA(tr Σ)/EMA(‖G‖²); NaN before the first update or while the smoothed ‖G‖² ≤ 0."""
        if not self.steps or self.ema_grad_sq <= 0:
            return math.nan
        return self.ema_trace / self.ema_grad_sq

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state (plain floats/ints)."""
        return {
            "small_batch": self.small_batch,
            "big_batch": self.big_batch,
            "beta": self.beta,
            "ema_grad_sq": self.ema_grad_sq,
            "ema_trace": self.ema_trace,
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from ``state_dict``; the batch sizes and beta must match this instance's."""
        for key in ("small_batch", "big_batch", "beta"):
            if state[key] != getattr(self, key):
                raise ValueError(f"state has {key}={state[key]!r}, this estimator has {getattr(self, key)!r}")
        self.ema_grad_sq = float(state["ema_grad_sq"])
        self.ema_trace = float(state["ema_trace"])
        self.steps = int(state["steps"])
