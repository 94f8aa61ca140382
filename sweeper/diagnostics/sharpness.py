"""Sharpness: top Hessian eigenvalue (power iteration) and Hessian trace (Hutchinson) of the mean batch loss.

The Hessian is that of L(w) = mean_i ℓ(f(x_i; w), y_i) over one *fixed* batch (x, y) w.r.t. the trainable
parameters, in one fixed normalisation mode (eval by default: BatchNorm uses running statistics) for every
Hessian-vector product (THEORY.md §9). Units: loss per parameter unit squared. Hessian-vector products use double
backprop on a graph built once, so each costs about two backward passes of the batch; the graph (activations and
first-order gradient) is kept alive while the operator is in use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from sweeper.diagnostics.per_example import _cloned_buffers, flatten_grads, model_mode, trainable_parameters
from sweeper.train.metrics import example_losses

__all__ = [
    "TopEigenvalue",
    "HessianTrace",
    "hessian_vector_product",
    "power_iteration",
    "top_eigenvalue",
    "top_hessian_eigenvalue",
    "hutchinson_trace",
    "hessian_trace",
]

MatVec = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class TopEigenvalue:
    """eigenvalue: the top *algebraic* eigenvalue λ_max (if ``algebraic``; else the largest-|λ| one).
    largest_magnitude: the eigenvalue of largest |λ| found by plain power iteration (may be negative).
    iterations: operator applications used in total (both runs when shifted).
    converged: every run met |λ_k − λ_{k−1}| ≤ tol·|λ_k| within max_iter (for the shifted run λ is the shifted
        eigenvalue λ_max − λ_min, so its absolute error is about tol·(λ_max − λ_min)).
    shifted: whether a second run on H − λ_min I was needed because the largest-|λ| eigenvalue was negative.
    """

    eigenvalue: float
    largest_magnitude: float
    iterations: int
    converged: bool
    shifted: bool
    tol: float


@dataclass(frozen=True)
class HessianTrace:
    """Hutchinson estimate of tr H: mean of vᵀHv over Rademacher v, its standard error, sample count."""

    mean: float
    stderr: float
    n_samples: int


def hessian_vector_product(
    model: nn.Module, x: Tensor, y: Tensor, task: str, mode: str | None = "eval"
) -> tuple[MatVec, int]:
    """(v ↦ Hv, d) for the Hessian of the mean loss on the fixed batch (x, y); v and Hv are (d,) vectors in the
    parameters' dtype/device, flattened in ``model.parameters()`` order over trainable parameters.

    The forward pass runs once in ``mode`` ("eval", "train", or None = as is; the model's mode is restored at
    once, buffers are not modified); every product reuses that graph, so the batch, the mode and any dropout mask
    are the same for all products. Cost per product: one double-backward pass.
    """
    params = [p for _, p in trainable_parameters(model)]
    if not params:
        raise ValueError("model has no trainable parameters")
    with model_mode(model, mode):
        out = functional_call(model, _cloned_buffers(model), (x,))
    loss = example_losses(out, y, task).mean()
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    sizes = [p.numel() for p in params]
    d = sum(sizes)
    live = [(i, g) for i, g in enumerate(grads) if g is not None and g.requires_grad]

    def hvp(v: Tensor) -> Tensor:
        if not live:  # loss at most linear in the parameters: H = 0
            return torch.zeros_like(v)
        parts = v.split(sizes)
        dot = sum((g * parts[i].view_as(g)).sum() for i, g in live)
        hv = torch.autograd.grad(dot, params, retain_graph=True, allow_unused=True)
        return flatten_grads(list(hv), params).detach()

    return hvp, d


def _start_vector(d: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(d, generator=gen, dtype=torch.float64)
    return (v / v.norm()).to(dtype=dtype, device=device)


def power_iteration(
    matvec: MatVec,
    d: int,
    *,
    shift: float = 0.0,
    tol: float = 1e-4,
    max_iter: int = 1000,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[float, int, bool]:
    """Dominant (largest-|μ|) eigenvalue μ of the symmetric operator v ↦ matvec(v) − shift·v.

    Rayleigh quotient μ_k = v_kᵀ(A v_k) with v normalised each step; stops when |μ_k − μ_{k−1}| ≤ tol·|μ_k|.
    Start vector: N(0, I) from a CPU generator seeded with ``seed``. Returns (μ, iterations, converged).
    Caveat: if two eigenvalues of equal |μ| and opposite sign dominate, the quotient need not converge to either.
    """
    v = _start_vector(d, seed, dtype, device)
    prev = math.nan
    for k in range(1, max_iter + 1):
        w = matvec(v)
        if shift:
            w = w - shift * v
        mu = float(torch.dot(v.double(), w.double()))
        norm = float(w.double().norm())
        if norm == 0.0:
            return 0.0, k, True
        if k > 1 and abs(mu - prev) <= tol * abs(mu):
            return mu, k, True
        prev = mu
        v = w / norm
    return prev, max_iter, False


def top_eigenvalue(
    matvec: MatVec,
    d: int,
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
    seed: int = 0,
    algebraic: bool = True,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> TopEigenvalue:
    """Top algebraic eigenvalue of a symmetric operator: power iteration, then — if the largest-|λ| eigenvalue
    λ₁ is negative and ``algebraic`` — power iteration on A − λ₁I (eigenvalues λ − λ₁ ≥ 0, the largest being
    λ_max − λ₁, since λ₁ ≈ λ_min) and λ_max = μ + λ₁. Cost: one or two runs of ≤ max_iter products each."""
    lam, iters, conv = power_iteration(matvec, d, tol=tol, max_iter=max_iter, seed=seed, dtype=dtype, device=device)
    if not algebraic or lam >= 0:
        return TopEigenvalue(lam, lam, iters, conv, False, tol)
    mu, iters2, conv2 = power_iteration(
        matvec, d, shift=lam, tol=tol, max_iter=max_iter, seed=seed + 1, dtype=dtype, device=device
    )
    return TopEigenvalue(mu + lam, lam, iters + iters2, conv and conv2, True, tol)


def top_hessian_eigenvalue(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    task: str,
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
    seed: int = 0,
    mode: str | None = "eval",
    algebraic: bool = True,
) -> TopEigenvalue:
    """Top algebraic Hessian eigenvalue (sharpness) of the mean loss on the fixed batch (x, y), in ``mode``.

    Power iteration on Hessian-vector products to relative tolerance ``tol`` (default 1e-4) within ``max_iter``
    products, seeded start vector; shifted second run when the largest-|λ| eigenvalue is negative (THEORY §9).
    Cost: ``iterations`` double-backward passes on the batch.
    """
    hvp, d = hessian_vector_product(model, x, y, task, mode)
    p = next(q for _, q in trainable_parameters(model))
    return top_eigenvalue(
        hvp, d, tol=tol, max_iter=max_iter, seed=seed, algebraic=algebraic, dtype=p.dtype, device=p.device
    )


def hutchinson_trace(
    matvec: MatVec,
    d: int,
    *,
    n_samples: int = 100,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> HessianTrace:
    """tr A ≈ mean_k v_kᵀ A v_k with Rademacher v_k (±1 entries, CPU generator seeded with ``seed``); standard
    error = sample std/√n_samples. Cost: n_samples operator applications."""
    if n_samples < 2:
        raise ValueError("need n_samples >= 2 for a standard error")
    gen = torch.Generator().manual_seed(seed)
    vals = torch.empty(n_samples, dtype=torch.float64)
    for k in range(n_samples):
        v = (torch.randint(0, 2, (d,), generator=gen) * 2 - 1).to(dtype=dtype, device=device)
        vals[k] = torch.dot(v.double(), matvec(v).double()).cpu()
    return HessianTrace(float(vals.mean()), float(vals.std() / math.sqrt(n_samples)), n_samples)


def hessian_trace(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    task: str,
    *,
    n_samples: int = 100,
    seed: int = 0,
    mode: str | None = "eval",
) -> HessianTrace:
    """Hutchinson estimate of tr H of the mean loss on the fixed batch (x, y) in ``mode`` (see
    ``hutchinson_trace``). Cost: n_samples double-backward passes."""
    hvp, d = hessian_vector_product(model, x, y, task, mode)
    p = next(q for _, q in trainable_parameters(model))
    return hutchinson_trace(hvp, d, n_samples=n_samples, seed=seed, dtype=p.dtype, device=p.device)
