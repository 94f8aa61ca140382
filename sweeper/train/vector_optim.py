"""SGD, Adam and RMSprop on K stacked parameter sets at once, each member with its own hyperparameters.

The update is torch.optim's (``torch.optim.SGD`` with momentum/nesterov, ``Adam``, ``RMSprop``; coupled weight decay
added to the gradient, or a decoupled shrink before the step, as ``sweeper.train.optim.Stepper`` does), written on
tensors whose first dimension indexes the member, so a pack of K trials takes one update per step. A member's state
converts to and from its own torch optimizer's ``state_dict`` layout, so a packed trial checkpoints exactly what
its unpacked twin would.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sweeper.train.optim import Stepper


def _col(values: list[float], like: Tensor) -> Tensor:
    """Per-member scalars as a (K, 1, …, 1) tensor broadcasting against ``like`` (K, …)."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).reshape(-1, *([1] * (like.dim() - 1)))


class VectorOptimizer:
    """One optimizer kind (sgd | adam | rmsprop) over stacked parameters ``params[name]`` of shape (K, …).

    Fixed per member for the run: momentum/nesterov (SGD), betas and ε (SVAG-rescaled, from each member's
    ``Stepper``). Per step: raw learning rates and weight decays, one per member, and the members still alive (a
    diverged member's parameters and state are left as they were).
    """

    def __init__(self, steppers: list[Stepper], params: dict[str, Tensor]):
        first = steppers[0].optimizer
        self.kind = {torch.optim.SGD: "sgd", torch.optim.Adam: "adam", torch.optim.RMSprop: "rmsprop"}[type(first)]
        self.decoupled = steppers[0].decoupled
        self.names = list(params)
        groups = [s.optimizer.param_groups[0] for s in steppers]
        self.nesterov = bool(groups[0].get("nesterov", False))
        self.hyper: dict[str, list[float]] = {}
        if self.kind == "sgd":
            self.hyper["momentum"] = [g["momentum"] for g in groups]
        elif self.kind == "adam":
            self.hyper |= {"beta1": [g["betas"][0] for g in groups], "beta2": [g["betas"][1] for g in groups],
                           "eps": [g["eps"] for g in groups]}
        else:
            self.hyper |= {"alpha": [g["alpha"] for g in groups], "eps": [g["eps"] for g in groups]}
        self.steps = 0  # updates taken (the same for every live member)
        self.state: dict[str, dict[str, Tensor]] = {n: {} for n in self.names}

    # -------------------------------------------------------------------------------------------- update

    @torch.no_grad()
    def step(self, params: dict[str, Tensor], grads: dict[str, Tensor], lr: list[float], weight_decay: list[float],
             alive: Tensor) -> None:
        """One update of every live member: ``lr``, ``weight_decay`` per member (raw, SVAG-rescaled lr)."""
        self.steps += 1
        for name in self.names:
            p, g = params[name], grads[name]
            keep = alive.reshape(-1, *([1] * (p.dim() - 1)))
            wd = _col(weight_decay, p)
            if self.decoupled:
                new = p * (1.0 - _col(lr, p) * wd)
            else:
                g = g + wd * p
                new = p
            new = getattr(self, f"_{self.kind}")(name, new, g, lr, keep)
            p.copy_(torch.where(keep, new, p))

    def _sgd(self, name: str, p: Tensor, g: Tensor, lr: list[float], keep: Tensor) -> Tensor:
        m = _col(self.hyper["momentum"], p)
        st = self.state[name]
        if any(self.hyper["momentum"]):
            buf = g.clone() if "momentum_buffer" not in st else st["momentum_buffer"] * m + g
            st["momentum_buffer"] = torch.where(keep, buf, st.get("momentum_buffer", buf))
            g = g + m * buf if self.nesterov else buf
        return p - _col(lr, p) * g

    def _adam(self, name: str, p: Tensor, g: Tensor, lr: list[float], keep: Tensor) -> Tensor:
        st = self.state[name]
        b1, b2, eps = (_col(self.hyper[k], p) for k in ("beta1", "beta2", "eps"))
        m = st.get("exp_avg", torch.zeros_like(p))
        v = st.get("exp_avg_sq", torch.zeros_like(p))
        m = torch.lerp(m, g, 1.0 - b1)
        v = v * b2 + (1.0 - b2) * g * g
        st["exp_avg"], st["exp_avg_sq"] = torch.where(keep, m, st.get("exp_avg", m)), \
            torch.where(keep, v, st.get("exp_avg_sq", v))
        t = self.steps
        step_size = _col([a / (1.0 - beta**t) for a, beta in zip(lr, self.hyper["beta1"])], p)
        bc2_sqrt = _col([math.sqrt(1.0 - beta**t) for beta in self.hyper["beta2"]], p)
        return p - step_size * m / (v.sqrt() / bc2_sqrt + eps)

    def _rmsprop(self, name: str, p: Tensor, g: Tensor, lr: list[float], keep: Tensor) -> Tensor:
        st = self.state[name]
        alpha, eps = _col(self.hyper["alpha"], p), _col(self.hyper["eps"], p)
        sq = st.get("square_avg", torch.zeros_like(p)) * alpha + (1.0 - alpha) * g * g
        st["square_avg"] = torch.where(keep, sq, st.get("square_avg", sq))
        return p - _col(lr, p) * g / (sq.sqrt() + eps)

    # ---------------------------------------------------------------------------- torch.optim state layout

    def export(self, k: int, stepper: Stepper) -> None:
        """Write member k's state into its own torch optimizer (parameters in ``self.names`` order)."""
        opt = stepper.optimizer
        params = opt.param_groups[0]["params"]
        for name, param in zip(self.names, params):
            st = {key: t[k].clone() for key, t in self.state[name].items()}
            if self.kind == "sgd":
                keep = self.hyper["momentum"][k] != 0 and "momentum_buffer" in st
                opt.state[param] = {"momentum_buffer": st["momentum_buffer"] if keep else None}
            elif self.steps:
                opt.state[param] = st | {"step": torch.tensor(float(self.steps))}

    def load(self, steppers: list[Stepper], params: dict[str, Tensor]) -> None:
        """Stack every member's torch optimizer state (all members at the same step count)."""
        states = [[s.optimizer.state.get(p, {}) for p in s.optimizer.param_groups[0]["params"]] for s in steppers]
        steps = {float(st[0]["step"]) for st in states if st and st[0].get("step") is not None}
        if len(steps) > 1:
            raise ValueError(f"packed members at different optimizer steps: {sorted(steps)}")
        self.steps = int(steps.pop()) if steps else 0  # SGD keeps no step count: only its buffers matter
        for j, name in enumerate(self.names):
            keys = {key for st in states for key, v in st[j].items() if key != "step" and v is not None}
            self.state[name] = {}
            for key in keys:
                rows = [st[j].get(key) for st in states]
                zero = torch.zeros_like(params[name][0])
                self.state[name][key] = torch.stack([zero if r is None else r.to(zero) for r in rows])
