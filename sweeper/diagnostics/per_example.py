"""Per-example and batch gradients of the per-example loss, flattened over the trainable parameters.

Loss convention (``sweeper.models.loss.example_losses``): ½(f(x) − y)² for regression, cross-entropy for
classification; the batch loss is the mean over examples. Gradients are flattened in ``model.parameters()`` order,
over the parameters with ``requires_grad`` only, so column j of every result refers to the same scalar parameter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from sweeper.models.loss import example_losses

__all__ = ["trainable_parameters", "num_trainable", "per_example_grads", "batch_grad", "flatten_grads", "model_mode",
           "cloned_buffers"]


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) for every parameter with ``requires_grad``, in ``model.parameters()`` order."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def num_trainable(model: nn.Module) -> int:
    """d: the number of trainable scalars, i.e. the length of a flattened gradient."""
    return sum(p.numel() for _, p in trainable_parameters(model))


def flatten_grads(grads: Sequence[Tensor | None], params: Sequence[Tensor]) -> Tensor:
    """Concatenate per-parameter gradients into one (d,) vector; a None gradient (unused parameter) counts as 0."""
    flat = [(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params, strict=True)]
    return torch.cat(flat)


@contextmanager
def model_mode(model: nn.Module, mode: str | None) -> Iterator[None]:
    """Put ``model`` in ``mode`` ("eval", "train" or None = leave as is) and restore its previous mode on exit."""
    if mode not in ("eval", "train", None):
        raise ValueError(f"mode must be 'eval', 'train' or None, got {mode!r}")
    was_training = model.training
    if mode is not None:
        model.train(mode == "train")
    try:
        yield
    finally:
        model.train(was_training)


def cloned_buffers(model: nn.Module) -> dict[str, Tensor]:
    """Copies of the buffers, so a train-mode forward (BatchNorm running statistics) leaves the model untouched."""
    return {name: b.clone() for name, b in model.named_buffers()}


def per_example_grads(model: nn.Module, x: Tensor, y: Tensor, task: str, chunk: int = 64) -> Tensor:
    """Gradients of each example's own loss ℓ(f(x_i), y_i) w.r.t. the trainable parameters; shape (n, d).

    The model is put in **eval mode** for the call and restored afterwards: in train mode BatchNorm normalises with
    batch statistics, which couples the examples, so a per-example gradient is not defined (Chaudhari & Soatto use
    eval mode; use GroupNorm, or K independent train-mode batch gradients from ``batch_grad``, to see the noise that
    SGD with BatchNorm actually feels). Dropout is therefore off as well. Buffers are not modified.

    Implementation: ``torch.func.functional_call`` + ``vmap(grad(...))`` over ``chunk`` examples at a time.
    Cost: n forward+backward passes (vectorised); peak extra memory about chunk·d gradient entries plus the
    activations of ``chunk`` examples; the result holds n·d entries in the parameters' dtype and device.
    Units: loss units per parameter unit (½·squared-error or nats).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    named = trainable_parameters(model)
    if not named:
        raise ValueError("model has no trainable parameters")
    names = [name for name, _ in named]
    params = {name: p.detach() for name, p in named}
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    buffers = cloned_buffers(model)

    def loss_one(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        out = functional_call(model, {**p, **frozen, **buffers}, (xi.unsqueeze(0),))
        return example_losses(out, yi.unsqueeze(0), task).sum()

    grad_fn = vmap(grad(loss_one), in_dims=(None, 0, 0))
    n = x.shape[0]
    d = sum(p.numel() for p in params.values())
    first = next(iter(params.values()))
    result = torch.empty(n, d, dtype=first.dtype, device=first.device)
    with model_mode(model, "eval"):
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            g = grad_fn(params, x[start:stop], y[start:stop])
            result[start:stop] = torch.cat([g[name].reshape(stop - start, -1) for name in names], dim=1)
    return result


def batch_grad(model: nn.Module, x: Tensor, y: Tensor, task: str) -> Tensor:
    """Gradient of the mean loss over the batch (x, y) w.r.t. the trainable parameters; shape (d,).

    The model is used in its current mode (train mode: BatchNorm uses batch statistics, as SGD sees them); its
    buffers (BatchNorm running statistics) are not modified and ``.grad`` fields are not touched.
    Cost: one forward and one backward pass on the batch.
    """
    named = trainable_parameters(model)
    if not named:
        raise ValueError("model has no trainable parameters")
    params = [p for _, p in named]
    out = functional_call(model, cloned_buffers(model), (x,))
    loss = example_losses(out, y, task).mean()
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return flatten_grads(list(grads), params).detach()
