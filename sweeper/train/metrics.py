"""Trajectory quantities: losses and accuracy on fixed subsets, weight norm and angular update."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sweeper.models.loss import example_losses

# torch._foreach_* (private): the multi-tensor kernels torch.optim itself steps with — one launch for all parameter
# tensors instead of one per tensor, which is what keeps a measured step cheap on a GPU. Public equivalents exist
# only from torch 2.6 (torch.nn.utils.get_total_norm), and the project supports torch ≥ 2.2.


def squared_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ‖t‖² over ``tensors`` as a float64 0-d tensor on their device (no host sync)."""
    return torch.stack(torch._foreach_norm(list(tensors))).double().square().sum()


def global_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """‖(t₁, …, t_k)‖: the Euclidean norm of all ``tensors`` as one vector, float64 0-d, on their device."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(tensors)))).double()


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, chunk: int = 4096):
    """(mean loss, accuracy or None) of ``model`` in eval mode over (x, y), in chunks of ``chunk`` examples."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), chunk):
        out = model(x[start : start + chunk])
        yb = y[start : start + chunk]
        loss_sum += example_losses(out, yb, task).double().sum().item()
        if task == "classification":
            correct += (out.argmax(-1) == yb).sum().item()
    model.train(was_training)
    n = len(x)
    return loss_sum / n, (correct / n if task == "classification" else None)


class WeightTracker:
    """Norm ‖w‖ and the angular update ‖ŵ_{t+1} − ŵ_t‖ (ŵ = w/‖w‖) of one parameter set, on sampled steps.

    ``before_step``/``after_step`` bracket a measured step. Uses ‖ŵ' − ŵ‖² = (‖Δ‖² − (‖w'‖ − ‖w‖)²)/(‖w‖‖w'‖),
    Δ = w' − w, which avoids the cancellation of 2 − 2cos. Accumulates on the device; ``take_rms()`` syncs once.
    """

    def __init__(self, params: Sequence[torch.Tensor]):
        self.params = list(params)  # as torch._foreach_* take them
        self.prev = [p.detach().clone() for p in params]
        self.prev_norm = self.norm_tensor()
        self.sum_sq = torch.zeros((), dtype=torch.float64, device=params[0].device)
        self.count = 0

    def norm_tensor(self) -> torch.Tensor:
        return global_norm(self.params)

    def before_step(self) -> None:
        torch._foreach_copy_(self.prev, self.params)
        self.prev_norm = self.norm_tensor()

    def after_step(self) -> None:
        torch._foreach_sub_(self.prev, self.params)  # prev ← −Δ
        delta_sq = squared_norm(self.prev)
        new_norm = self.norm_tensor()
        self.sum_sq += (delta_sq - (new_norm - self.prev_norm).square()) / (new_norm * self.prev_norm)
        self.count += 1

    def take_rms(self) -> float | None:
        """RMS angular update over the steps since the last call (None if no step)."""
        if self.count == 0:
            return None
        rms = (self.sum_sq / self.count).clamp_min(0).sqrt().item()
        self.sum_sq.zero_()
        self.count = 0
        return rms


class GradNormMeter:
    """RMS over steps of the minibatch gradient norm ‖∇L_batch‖ (the mixed SVAG gradient, weight decay excluded)."""

    def __init__(self, params: list[torch.nn.Parameter]):
        self.params = params
        self.sum_sq = torch.zeros((), dtype=torch.float64, device=params[0].device)
        self.count = 0

    def add(self) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        self.sum_sq += squared_norm(grads)
        self.count += 1

    def take_rms(self) -> float | None:
        if self.count == 0:
            return None
        rms = (self.sum_sq / self.count).sqrt().item()
        self.sum_sq.zero_()
        self.count = 0
        return rms
