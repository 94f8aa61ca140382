"""When a run has diverged: the one rule, applied by the training loop (sweeper/train/loop.py).

A run **diverges** at the first step t at which

* its training minibatch loss ℓ_t — the loss of the batch(es) drawn for raw step t, SVAG-mixed, the quantity the
  optimizer differentiates — is non-finite or |ℓ_t| > DIVERGENCE_FACTOR · L₀, checked every raw step t ≥ 1; or
* at a logged point (step 0 included), its evaluated ``train_loss`` or ``test_loss`` is non-finite or exceeds
  DIVERGENCE_FACTOR · L₀ (the test loss is not the quantity checked per step: for the linear model it is the
  closed-form population loss),

where L₀ is the larger of the run's first point's ``train_loss`` (the initial model on the ``log.eval_samples``
training examples) and ``test_loss`` — the larger, because a train loss on a handful of examples can start near 0
(with ``eval_samples = 1`` an SVAG(16) run was cut at once by a bound 1000× one example's loss). DIVERGENCE_FACTOR =
1e3. Start values that are not finite and positive set no bound (only the non-finite test applies). The run then
ends ``diverged`` with ``diverged_step = t`` and its last point at the step where the loop stopped: t on CPU; on an
accelerator the test runs on the device every step and the host reads the first bad step every
CHECK_EVERY_ACCELERATOR steps and at every logged point (no extra sync), so the last point may lie up to
CHECK_EVERY_ACCELERATOR − 1 steps after t, while ``diverged_step`` is still t.

The start values are taken once, from the step-0 point, and saved in the checkpoint, so a resumed trial applies the
same bound and diverges at the same step. The bound can be read off the stored points: DIVERGENCE_FACTOR × the
larger of the step-0 point's train_loss and test_loss.

The minibatch loss is an unbiased estimate of the train loss (SVAG's weights c₁ + c₂ = 1), so a healthy run's batch
losses stay within a small multiple of L₀ (at most √(2l − 1) × the batch means for SVAG(l)); a run past 1000× its
start is growing without bound (e.g. SGD on linear regression beyond the stability limit grows geometrically).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

DIVERGENCE_FACTOR = 1e3
"""A loss past DIVERGENCE_FACTOR × its value at the run's start (step 0) is diverged."""

METRICS = ("train_loss", "test_loss")
"""The evaluated point metrics the rule applies to at logged points."""


def bound(start: float | None) -> float:
    """DIVERGENCE_FACTOR × ``start``; ∞ (no bound, only the non-finite test) where ``start`` is not finite and > 0."""
    if start is None or not math.isfinite(start) or start <= 0:
        return math.inf
    return DIVERGENCE_FACTOR * start


def exceeds(value: float | None, limit: float) -> bool:
    """Whether ``value`` is non-finite or |value| > ``limit`` (a value of None is not checked)."""
    return value is not None and (not math.isfinite(value) or abs(value) > limit)


def exceeds_tensor(loss: torch.Tensor, limit: float | torch.Tensor) -> torch.Tensor:
    """:func:`exceeds` elementwise on a tensor of losses (a float limit, or one per loss), on its device (no host
    sync)."""
    return ~torch.isfinite(loss) | (loss.abs() > limit)


@dataclass(frozen=True)
class Start:
    """The run's start values L₀ (the step-0 point's metrics) and the bounds they set."""

    values: dict[str, float | None]

    @classmethod
    def from_point(cls, point: dict[str, Any]) -> Start:
        return cls({m: point.get(m) for m in METRICS})

    @property
    def scale(self) -> float | None:
        """L₀: the larger of the start train_loss and test_loss (finite, > 0) — robust to a train loss evaluated
        on a handful of examples (``log.eval_samples``), which can start near 0."""
        ok = [v for v in self.values.values() if v is not None and math.isfinite(v) and v > 0]
        return max(ok) if ok else None

    @property
    def batch_bound(self) -> float:
        """The bound on |minibatch loss| per step: DIVERGENCE_FACTOR × L₀."""
        return bound(self.scale)

    def point_diverged(self, point: dict[str, Any]) -> bool:
        """Whether a logged point's train_loss or test_loss breaks the rule (each against DIVERGENCE_FACTOR × L₀)."""
        limit = bound(self.scale)
        return any(exceeds(point.get(m), limit) for m in METRICS)

    def state_dict(self) -> dict[str, float | None]:
        return dict(self.values)
