"""The per-example loss every part of the sweeper trains on and measures (training step, evaluation, diagnostics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def example_losses(output: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Per-example loss, shape (n,): ½(f(x) − y)² for regression, cross-entropy for classification."""
    if task == "regression":
        return 0.5 * (output.squeeze(-1) - y).square()
    return F.cross_entropy(output, y, reduction="none")
