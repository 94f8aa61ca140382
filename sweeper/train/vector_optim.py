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


class VectorOptimizer:
    """One optimizer kind (sgd | adam | rmsprop) over stacked parameters ``params[name]`` of shape (K, …).

    Fixed per member for the run: momentum/nesterov (SGD), betas and ε (SVAG-rescaled, from each member's
    ``Stepper``). Per step: raw learning rates and weight decays, a (K,) tensor each, and the members still alive (a
    diverged member's parameters and state are left as they were). Updates are in place, in torch.optim's order
    of operations.
    """

    def __init__(self, steppers: list[Stepper], params: dict[str, Tensor]):
        self.kind = steppers[0].kind
        self.decoupled = steppers[0].decoupled
        self.names = list(params)
        groups = [s.hyper for s in steppers]  # each member's torch optimizer arguments (it is never built here)
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
        self._columns: dict[tuple[object, ...], Tensor] = {}
        self._decay: tuple[Tensor | None, bool] = (None, False)  # the last weight-decay tensor, and any nonzero

    # -------------------------------------------------------------------------------------------- update

    @torch.no_grad()
    def step(self, params: dict[str, Tensor], grads: dict[str, Tensor], lr: Tensor, weight_decay: Tensor,
             live: list[bool]) -> None:
        """One update of every live member (in place): ``lr``, ``weight_decay`` of shape (K,) in the parameters'
        dtype (raw, SVAG-rescaled lr; ``grads`` are consumed). Dead members' rows are put back afterwards, so they
        stay as they were."""
        self.steps += 1
        dead = [k for k, alive in enumerate(live) if not alive]
        saved = {n: (params[n][dead].clone(), {key: t[dead].clone() for key, t in self.state[n].items()})
                 for n in self.names} if dead else {}
        if weight_decay is not self._decay[0]:  # a new tensor: the caller's hyperparameters changed
            self._decay = (weight_decay, bool(weight_decay.any()))
        decay = self._decay[1]
        for name in self.names:
            p, g = params[name], grads[name]
            shape = (-1, *([1] * (p.dim() - 1)))
            lr_c, wd_c = lr.reshape(shape), weight_decay.reshape(shape)
            if decay:
                if self.decoupled:
                    p.mul_(1.0 - lr_c * wd_c)
                else:
                    g.addcmul_(p, wd_c)
            getattr(self, f"_{self.kind}")(name, p, g, lr_c, shape)
            if dead:
                p[dead] = saved[name][0]
                for key, rows in saved[name][1].items():
                    self.state[name][key][dead] = rows

    def _cols(self, key: str, like: Tensor, shape: tuple[int, ...]) -> Tensor:
        """The members' fixed hyperparameter ``key`` as a (K, 1, …) column, built once per dtype and shape."""
        at = (key, like.dtype, like.device, shape)
        if at not in self._columns:
            self._columns[at] = torch.tensor(self.hyper[key], dtype=like.dtype, device=like.device).reshape(shape)
        return self._columns[at]

    def _sgd(self, name: str, p: Tensor, g: Tensor, lr: Tensor, shape: tuple[int, ...]) -> None:
        if any(self.hyper["momentum"]):
            m = self._cols("momentum", p, shape)
            st = self.state[name]
            if "momentum_buffer" not in st:
                st["momentum_buffer"] = g.clone()
            else:
                st["momentum_buffer"].mul_(m).add_(g)
            buf = st["momentum_buffer"]
            g = g.addcmul_(m, buf) if self.nesterov else buf
        p.addcmul_(g, lr, value=-1.0)

    def _adam(self, name: str, p: Tensor, g: Tensor, lr: Tensor, shape: tuple[int, ...]) -> None:
        st = self.state[name]
        b1, b2, eps = (self._cols(k, p, shape) for k in ("beta1", "beta2", "eps"))
        m = st.setdefault("exp_avg", torch.zeros_like(p))
        v = st.setdefault("exp_avg_sq", torch.zeros_like(p))
        m.lerp_(g, 1.0 - b1)
        v.mul_(b2).addcmul_(g, g * (1.0 - b2))
        t = self.steps
        bc1 = torch.tensor([1.0 - beta**t for beta in self.hyper["beta1"]], dtype=p.dtype, device=p.device)
        bc2 = torch.tensor([math.sqrt(1.0 - beta**t) for beta in self.hyper["beta2"]], dtype=p.dtype,
                           device=p.device)
        denom = (v.sqrt() / bc2.reshape(shape)).add_(eps)
        p.addcdiv_(m * (lr / bc1.reshape(shape)), denom, value=-1.0)

    def _rmsprop(self, name: str, p: Tensor, g: Tensor, lr: Tensor, shape: tuple[int, ...]) -> None:
        st = self.state[name]
        alpha, eps = self._cols("alpha", p, shape), self._cols("eps", p, shape)
        sq = st.setdefault("square_avg", torch.zeros_like(p))
        sq.mul_(alpha).addcmul_(g, g * (1.0 - alpha))
        p.addcdiv_(g * lr, sq.sqrt().add_(eps), value=-1.0)

    # ---------------------------------------------------------------------------- torch.optim state layout

    def member_state(self, k: int) -> list[dict[str, Any]]:
        """Member k's state per parameter (``self.names`` order) in torch.optim's layout (``Stepper.state_dict``)."""
        out: list[dict[str, Any]] = []
        for name in self.names:
            st = {key: t[k].clone() for key, t in self.state[name].items()}
            if self.kind == "sgd":
                keep = self.hyper["momentum"][k] != 0 and "momentum_buffer" in st
                out.append({"momentum_buffer": st["momentum_buffer"] if keep else None})
            else:
                out.append(st | {"step": torch.tensor(float(self.steps))} if self.steps else {})
        return out

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
