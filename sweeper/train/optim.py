"""Build the torch optimizer of a trial and set its per-step lr and weight decay (SVAG-rescaled)."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch

from sweeper.expand import TrialConfig
from sweeper.train.svag import adaptive_hyperparameters

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}


@functools.cache
def _defaults(kind: str) -> dict[str, Any]:
    """The keyword defaults of optimizer ``kind``'s constructor: what torch puts in a param group beside its
    arguments."""
    signature = inspect.signature(OPTIMIZERS[kind].__init__)
    return {n: p.default for n, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}


class Stepper:
    """A torch optimizer plus the SVAG rescaling of its hyperparameters.

    ``step(lr, weight_decay)`` takes the scheduled SGD-equivalent η and λ and applies one raw step with η/l (or
    η/ℓ for adaptive methods). Weight decay is L2 added to the gradient (coupled, the default) or, with
    ``decoupled_weight_decay``, a shrink w ← w(1 − lr·λ) before the update (AdamW-style, for every optimizer).
    """

    def __init__(self, config: TrialConfig, params: list[torch.nn.Parameter]):
        opt, l = config.optimizer, config.svag_l
        self.params: list[torch.Tensor] = list(params)  # the same Parameter objects, as torch._foreach_* take them
        self.decoupled = opt.decoupled_weight_decay
        self.kind = opt.name
        if opt.name == "sgd":
            self.lr_scale = 1.0 / l
            self.hyper: dict[str, Any] = {"lr": config.lr, "momentum": opt.momentum, "nesterov": opt.nesterov}
        else:
            scaled_lr, beta1, beta2, eps = adaptive_hyperparameters(
                1.0, getattr(opt, "beta1", None), opt.beta2, opt.eps, l
            )
            self.lr_scale = scaled_lr
            if opt.name == "adam":
                self.hyper = {"lr": config.lr, "betas": (beta1, beta2), "eps": eps}
            else:
                self.hyper = {"lr": config.lr, "alpha": beta2, "eps": eps}
        self._optimizer: torch.optim.Optimizer | None = None

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The torch optimizer (``self.hyper`` are its arguments), built on first use: a packed member steps with
        ``vector_optim`` and needs it only to export a checkpoint, and building the first torch optimizer in a
        process imports ``torch._dynamo`` (≈ 1 CPU s)."""
        if self._optimizer is None:
            self._optimizer = OPTIMIZERS[self.kind](self.params, **self.hyper)
        return self._optimizer

    def state_dict(self, state: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The torch optimizer's ``state_dict``; given ``state`` (per parameter, in torch.optim's layout: a packed
        member's, from ``vector_optim``), the same dict made without building the optimizer — a pack worker would
        otherwise import ``torch._dynamo`` for its first checkpoint (tests/train/test_optim.py compares the two)."""
        if state is None:
            return self.optimizer.state_dict()
        group = _defaults(self.kind) | self.hyper | {"params": list(range(len(self.params)))}
        return {"state": {i: st for i, st in enumerate(state) if st}, "param_groups": [group]}

    def raw_lr(self, lr: float) -> float:
        """The step size actually used for SGD-equivalent η."""
        return lr * self.lr_scale

    def step(self, lr: float, weight_decay: float) -> None:
        raw_lr = self.raw_lr(lr)
        group = self.optimizer.param_groups[0]
        group["lr"] = raw_lr
        if self.decoupled:
            group["weight_decay"] = 0.0
            if weight_decay:
                with torch.no_grad():
                    # private multi-tensor kernel (one launch for all tensors), as torch.optim uses internally
                    torch._foreach_mul_(self.params, 1.0 - raw_lr * weight_decay)
        else:
            group["weight_decay"] = weight_decay
        self.optimizer.step()
