"""Packed trials: K trials that can share a step train as one vectorized pack in one process.

Members share the model architecture, the data set, the batch size, SVAG l, the optimizer kind and flags, the
budget, the log cadence and the diagnostics (``pack_key``); they differ in η, λ, momentum / betas / ε, schedules
and seed. Each member is a full :class:`~sweeper.train.loop.Trial` — its own initialisation (from its seed), its own
generator and sampler drawing exactly the batches its unpacked twin draws, its own clock, schedule, divergence rule,
points, diagnostics and checkpoint — but the parameters of all members are stacked (K, …) and one step computes
every member's forward and backward pass at once (batched matmuls for a Linear/ReLU chain such as the MLP,
closed-form ones for linear regression, else ``torch.func.vmap`` over ``functional_call``) and one vectorized
optimizer update (``vector_optim``). BatchNorm runs per member in train mode (its running statistics are stacked
buffers). A member that diverges is masked — its parameters and optimizer state stop changing — and reported
``diverged`` at its step while the others go on.

Per-member work happens on the member's own module, synchronised from the stack when needed: the diagnostics at their
steps (then copied back, since a diagnostic may move BatchNorm statistics), evaluation losses (for linear regression
all members at once) and checkpoints (the member's ``Trial.state_dict`` with its optimizer state in torch.optim's
layout: the same as its unpacked twin's, so either can resume from the other's checkpoint). Points are measured for
every member at once (norms, meters). Not packed (``pack_key`` is None): the per-step ``trajectory`` diagnostic and
the online noise scale, which need every step per member.

A packed member equals its unpacked twin to float tolerance at every logged point (tests/train/test_pack.py); not
bit for bit, since a batched kernel may round differently from the single-model one.
"""

from __future__ import annotations

import copy
import functools
import json
import operator
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.func import functional_call, grad_and_value, vmap

from sweeper.data import Dataset
from sweeper.expand import TrialConfig
from sweeper.models.loss import example_losses
from sweeper.reporter import Report, Status
from sweeper.train.divergence import Start, exceeds_tensor
from sweeper.train.loop import Measures, Trial, TrialResult
from sweeper.train.schedule import multiplier
from sweeper.train.vector_optim import VectorOptimizer

# What members of a pack may differ in: everything else of a TrialConfig must be equal.
VARYING = ("trial_id", "index", "lr", "weight_decay", "seed", "scaling", "schedule")
VARYING_OPTIMIZER = ("momentum", "beta1", "beta2", "eps")


def pack_key(config: TrialConfig) -> str | None:
    """What trials must share to step together (equal keys pack); None if the trial cannot be packed."""
    if config.diagnostics.online_noise or config.diagnostics.trajectory is not None:
        return None
    d = config.model_dump(mode="json", exclude=set(VARYING))
    d["optimizer"] = {k: v for k, v in d["optimizer"].items() if k not in VARYING_OPTIMIZER}
    return json.dumps(d, sort_keys=True)


def packs(trials: Sequence[TrialConfig], pack: int | str = "auto", slots: int = 1) -> list[list[TrialConfig]]:
    """Trials grouped into packs that share a ``pack_key``: at most ``pack`` each, or ``"auto"`` (a size per group
    from ``auto_pack_size``, and no larger than needed to give each of ``slots`` concurrent workers a pack).
    Deterministic and order-keeping; unpackable trials stand alone."""
    groups: dict[str, list[TrialConfig]] = {}
    out: list[list[TrialConfig]] = []
    for t in trials:
        key = pack_key(t) if pack != 1 else None
        if key is None:
            out.append([t])
        else:
            groups.setdefault(key, []).append(t)
    for members in groups.values():
        if pack == "auto":
            size = min(auto_pack_size(members[0], *model_size(members[0])), -(-len(members) // max(slots, 1)))
        else:
            size = int(pack)
        out += [members[i:i + size] for i in range(0, len(members), size)]
    return sorted(out, key=lambda p: p[0].index)


def model_size(config: TrialConfig) -> tuple[int, int]:
    """(trainable parameters, floats of activations per example) of the trial's model, from a CPU forward pass of
    one zero example."""
    from sweeper.data import cifar, linreg, mnist1d_data, teacher
    from sweeper.models import build_model

    opts = config.data.model_dump(exclude={"name"})
    name = config.data.name
    shape, outputs = (cifar.shape(name, **opts) if name.startswith("cifar") else
                      {"linreg": linreg, "teacher": teacher, "mnist1d": mnist1d_data}[name].shape(**opts))
    model = build_model(config.model.name, shape, outputs, **config.model.model_dump(exclude={"name"}))
    total = [0]
    hooks = [m.register_forward_hook(lambda _m, _i, out: total.__setitem__(0, total[0] + out.numel()))
             for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total[0]


CPU_STEP_FLOPS = 2e7  # pack on a CPU while a member's step costs less than this (overhead-bound, not compute-bound)
MAX_PACK_CPU = 64
MAX_PACK_CUDA = 1024
EVAL_CHUNK = 4096  # evaluation examples per batched forward pass
INDEX_CHUNK = 2**20  # batch indices a pack draws ahead at most (8 MiB of int64)
CUDA_MEMORY_SHARE = 0.5  # of the free device memory a pack may plan for


def auto_pack_size(config: TrialConfig, n_params: int, activations: int) -> int:
    """How many trials like ``config`` to pack (1: none), from the model size and the device.

    ``n_params``: trainable parameters of one member; ``activations``: floats of one member's forward pass per
    example (the sum of its layer widths). A member's step costs about 6·B·n_params FLOPs. On a CPU, packing pays
    while that is small enough for the step to be bound by per-call overhead rather than arithmetic (CPU per trial,
    one core, packed vs one by one: linear regression ×18 at K = 16, ×51 at K = 64; MNIST-1D MLPs at K = 16:
    40-64-64-10 at B = 32 ×5.0, 40-256-256-10 at B = 32 ×1.5 and at B = 128 ×1.0, 40-512-512-10 at B = 128 ×0.9),
    so trials below CPU_STEP_FLOPS pack up to MAX_PACK_CPU. On CUDA one small model leaves the device idle;
    K is bounded by memory: parameters, gradients and two optimizer states, plus 3 activations per example of
    each SVAG batch, for K members within CUDA_MEMORY_SHARE of the free memory (at most MAX_PACK_CUDA).
    """
    if pack_key(config) is None:
        return 1
    batch = config.batch_size * (2 if config.svag_l != 1 else 1)
    if torch.device(config.device if config.device != "auto" else
                    ("cuda" if torch.cuda.is_available() else "cpu")).type == "cuda":
        free, _ = torch.cuda.mem_get_info()
        size = 4 if config.precision == "float32" else 8
        per_member = size * (4 * n_params + 3 * batch * activations)
        return int(max(1, min(MAX_PACK_CUDA, CUDA_MEMORY_SHARE * free // per_member)))
    return MAX_PACK_CPU if 6 * batch * n_params <= CPU_STEP_FLOPS else 1


Chain = list[tuple[str, str | None] | None]
"""A model as a chain of layers: (weight name, bias name or None) for a Linear, None for a ReLU."""


def linear_chain(model: torch.nn.Module) -> Chain | None:
    """``model`` as a :data:`Chain` if it is a Sequential of Flatten / Linear / ReLU / Identity (the MLP without
    norms), else None. A pack steps such a model by batched matmuls and one autograd pass (on 2 CPU cores ≈ 1.7× less
    CPU per step than ``vmap`` over ``functional_call`` for a 40-64-64-10 MLP at K = 32, B = 32)."""
    if not isinstance(model, torch.nn.Sequential):
        return None
    chain: Chain = []
    for name, module in model.named_children():
        if isinstance(module, torch.nn.Linear):
            chain.append((f"{name}.weight", f"{name}.bias" if module.bias is not None else None))
        elif isinstance(module, torch.nn.ReLU):
            chain.append(None)
        elif not isinstance(module, (torch.nn.Flatten, torch.nn.Identity)):
            return None
    return chain


class PackReporter(Protocol):
    def checkpoint(self) -> dict[str, dict[str, Any]] | None:
        """Per member trial id, the state to resume from; members absent from a non-None dict have finished."""

    def report(self, reports: dict[str, Report]) -> None:
        """Record a batch of reports, one per member that has something to say."""


@dataclass
class ListPackReporter:
    """Keeps every member's reports in memory (tests, in-process runs); ``stop_after`` reports it raises."""

    resume_from: dict[str, dict[str, Any]] | None = None
    stop_after: int | None = None
    reports: list[dict[str, Report]] = field(default_factory=list)
    last_states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def checkpoint(self) -> dict[str, dict[str, Any]] | None:
        return self.resume_from

    def report(self, reports: dict[str, Report]) -> None:
        from sweeper.reporter import StopTrial

        self.reports.append(reports)
        for trial_id, r in reports.items():
            if r.state is not None:
                self.last_states[trial_id] = r.state
            else:
                self.last_states.pop(trial_id, None)
        if self.stop_after is not None and len(self.reports) >= self.stop_after:
            raise StopTrial

    def points(self, trial_id: str) -> list[dict[str, Any]]:
        return [p for batch in self.reports for p in (batch[trial_id].points if trial_id in batch else [])]

    def diagnostics(self, trial_id: str) -> list[dict[str, Any]]:
        return [d for batch in self.reports for d in (batch[trial_id].diagnostics if trial_id in batch else [])]


class PackMeters:
    """Per-member weight norm, RMS gradient norm and angular update over the measured steps (Trial's WeightTracker
    and GradNormMeter, vectorized over the stack)."""

    def __init__(self, k: int, tracked: list[str], device: torch.device):
        self.tracked = tracked
        self.sums = {which: torch.zeros(k, dtype=torch.float64, device=device) for which in ("grad", "angular")}
        self.counts = {which: torch.zeros(k, dtype=torch.long, device=device) for which in ("grad", "angular")}
        self.prev: dict[str, Tensor] = {}
        self.prev_norm = torch.zeros(k, dtype=torch.float64, device=device)

    @staticmethod
    def _sq(tensors: list[Tensor]) -> Tensor:
        return functools.reduce(operator.add, (t.flatten(1).norm(dim=1).double().square() for t in tensors))

    def norms(self, params: dict[str, Tensor]) -> Tensor:
        """Every member's ‖w‖ of the tracked parameters, shape (K,), float64."""
        return self._sq([params[n] for n in self.tracked]).sqrt()

    def add_grad(self, grads: dict[str, Tensor], alive: Tensor) -> None:
        self.sums["grad"] += torch.where(alive, self._sq(list(grads.values())), 0.0)
        self.counts["grad"] += alive

    def before(self, params: dict[str, Tensor]) -> None:
        self.prev = {n: params[n].clone() for n in self.tracked}
        self.prev_norm = self.norms(params)

    def after(self, params: dict[str, Tensor], alive: Tensor) -> None:
        delta_sq = self._sq([self.prev[n] - params[n] for n in self.tracked])
        new_norm = self.norms(params)
        add = (delta_sq - (new_norm - self.prev_norm).square()) / (new_norm * self.prev_norm)
        self.sums["angular"] += torch.where(alive, add, 0.0)
        self.counts["angular"] += alive

    def take(self, ks: list[int], which: str) -> list[float | None]:
        """Members ``ks``' RMS of ``which`` (grad | angular) since their last take (None: no measured step); resets
        their sums."""
        sums, counts = self.sums[which], self.counts[which]
        rms, n = (sums / counts.clamp_min(1)).clamp_min(0).sqrt().tolist(), counts.tolist()
        sums[ks], counts[ks] = 0.0, 0
        return [rms[k] if n[k] else None for k in ks]


class PackedTrial:
    """K trials with one ``pack_key`` stepping together (module docstring)."""

    def __init__(self, configs: Sequence[TrialConfig], data: Dataset | None = None):
        keys = {pack_key(c) for c in configs}
        if len(keys) != 1 or None in keys:
            raise ValueError("a pack needs trials with one pack_key (same model, data, batch size, l, optimizer "
                             "kind, budget, log and diagnostics; no trajectory or online-noise diagnostic)")
        first = Trial(configs[0], data)
        self.members = [first] + [Trial(c, first.data) for c in configs[1:]]
        clocks = {(m.clock.total_steps, tuple(m.clock.log_steps), tuple(sorted(m.diagnostics.steps())))
                  for m in self.members}
        if len(clocks) != 1:
            raise ValueError("packed trials must share their steps, logged points and diagnostic steps")
        self.data, self.device = first.data, first.device
        named = dict(first.model.named_parameters())
        self.names = [n for n, p in named.items() if p.requires_grad]
        ids = {id(p): n for n, p in named.items()}
        self.tracked = [ids[id(p)] for p in first.tracked]
        self.base = copy.deepcopy(first.model)
        self.linear = self._is_linear_regression(first)
        self.chain = linear_chain(first.model)
        self.params: dict[str, Tensor] = {}
        self.buffers: dict[str, Tensor] = {}
        self._stack()
        self.optimizer = VectorOptimizer([m.stepper for m in self.members], self.params)
        self._schedule_keys = [m.config.schedule.model_dump_json() for m in self.members]
        self._schedules = {key: m.config.schedule for key, m in zip(self._schedule_keys, self.members, strict=True)}
        # the schedules' factors at the last step, and the (η, λ, SDE-time increment) tensors built from them
        self._factors: tuple[dict[str, tuple[float, float]], tuple[Tensor, Tensor, Tensor]] | None = None

    @staticmethod
    def _is_linear_regression(trial: Trial) -> bool:
        mods = [m for m in trial.model.modules() if not isinstance(m, (torch.nn.Sequential, torch.nn.Flatten))]
        return (trial.config.model.name == "linear" and trial.data.task == "regression" and len(mods) == 1
                and isinstance(mods[0], torch.nn.Linear) and mods[0].bias is None)

    # ------------------------------------------------------------------------------- stack ↔ member modules

    def _stack(self) -> None:
        """Stack every member module's parameters (trainable ones apart) and buffers (frozen parameters too)."""
        self._own = [dict(m.model.named_parameters()) | dict(m.model.named_buffers()) for m in self.members]
        self.params = {n: torch.stack([p[n].detach() for p in self._own]) for n in self.names}
        self.buffers = {n: torch.stack([p[n].detach() for p in self._own]) for n in self._own[0]
                        if n not in self.params}

    @torch.no_grad()
    def _sync(self, k: int) -> None:
        """Member k's module ← the stack."""
        for name, t in (self.params | self.buffers).items():
            self._own[k][name].copy_(t[k])

    @torch.no_grad()
    def _absorb(self, k: int) -> None:
        """The stack ← member k's module (after per-member work that may move BatchNorm statistics)."""
        for name, t in (self.params | self.buffers).items():
            t[k].copy_(self._own[k][name])

    # ---------------------------------------------------------------------------------------------- a step

    def _losses_and_grads(self, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Every member's SVAG-weighted minibatch loss (K,) and gradients {name: (K, …)} on its batch x[k], y[k]."""
        weights = self.members[0].weights
        if self.linear:  # ½(xw − y)² by batched matmul: one einsum each way
            name = self.names[0]
            w = self.params[name][:, 0, :]
            flat = x.reshape(x.shape[0], x.shape[1], -1)
            r = torch.einsum("knd,kd->kn", flat, w) - y
            loss = (weights * 0.5 * r.square()).sum(dim=1)
            grad = torch.einsum("kn,knd->kd", weights * r, flat)
            return loss, {name: grad[:, None, :]}
        task, base = self.data.task, self.base
        if self.chain is not None:  # Linear/ReLU chain: batched matmuls forward, one autograd pass back
            leaves = {n: t.detach().requires_grad_() for n, t in self.params.items()}
            loss = self._chain_losses(leaves | self.buffers, x, y)
            grads = torch.autograd.grad(loss.sum(), list(leaves.values()))  # members' losses are independent
            return loss.detach(), dict(zip(leaves, grads, strict=True))
        separate, b = self.members[0].separate_forwards, self.members[0].config.batch_size

        def member_loss(params: dict[str, Tensor], buffers: dict[str, Tensor], xk: Tensor, yk: Tensor) -> Tensor:
            if not separate:
                return (weights * example_losses(functional_call(base, (params, buffers), (xk,)), yk, task)).sum()
            halves = [slice(0, b), slice(b, 2 * b)]  # BatchNorm: each SVAG batch normalised on its own
            return functools.reduce(operator.add, (
                (weights[s] * example_losses(functional_call(base, (params, buffers), (xk[s],)), yk[s], task)).sum()
                for s in halves))

        grads, loss = vmap(grad_and_value(member_loss))(self.params, self.buffers, x, y)
        return loss, grads

    def _chain_losses(self, tensors: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """Every member's SVAG-weighted minibatch loss (K,) through the model's Linear/ReLU ``chain``: x (K, n, …)
        flattened to (K, n, features), each Linear one ``baddbmm`` over the stacked weights."""
        h = x.reshape(x.shape[0], x.shape[1], -1)
        for layer in self.chain or ():
            if layer is None:
                h = torch.relu(h)
                continue
            weight, bias = tensors[layer[0]].transpose(1, 2), layer[1]
            h = torch.bmm(h, weight) if bias is None else torch.baddbmm(tensors[bias].unsqueeze(1), h, weight)
        k, n = h.shape[:2]
        losses = example_losses(h.reshape(k * n, -1), y.reshape(k * n), self.data.task).view(k, n)
        return (self.members[0].weights * losses).sum(dim=1)

    def _hyperparameters(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """Every member's raw (SVAG-rescaled) scheduled η and λ at ``step`` (``Trial.hyperparameters``), shape (K,) in
        the parameters' dtype, and its SDE-time increment (float64, as a member adds it). Rebuilt only when a
        schedule's factors change (each distinct schedule evaluated once per step)."""
        clock = self.members[0].clock
        epoch, total = clock.epoch(step), clock.total_epochs
        factors = {key: (multiplier(sched.lr, epoch, total), multiplier(sched.weight_decay, epoch, total))
                   for key, sched in self._schedules.items()}
        if self._factors is None or factors != self._factors[0]:
            raw, wd = [], []
            for m, key in zip(self.members, self._schedule_keys, strict=True):
                f_lr, f_wd = factors[key]
                raw.append(m.stepper.raw_lr(m.config.lr * f_lr))
                wd.append(m.config.weight_decay * f_wd)
            like = next(iter(self.params.values()))
            sde = [r**2 if m.adaptive else r for m, r in zip(self.members, raw, strict=True)]
            self._factors = (factors, (torch.tensor(raw, dtype=like.dtype, device=self.device),
                                       torch.tensor(wd, dtype=like.dtype, device=self.device),
                                       torch.tensor(sde, dtype=torch.float64, device=self.device)))
        return self._factors[1]

    def _batch_indices(self, steps: int) -> Iterator[Tensor]:
        """Every member's batch indices for the next ``steps`` steps, one (K, batches·B) tensor per step.

        Nothing else draws from a member's generator between two events, so its batches up to the next event are
        drawn at once (``BatchSampler.draw_steps``, at most INDEX_CHUNK indices per pack at a time) — except with
        augmentation, which draws from it after every batch."""
        lead = self.members[0]
        width = lead.n_batches * lead.config.batch_size
        chunk = 1 if self.data.augment is not None else max(1, INDEX_CHUNK // (len(self.members) * width))
        while steps > 0:
            t = min(steps, chunk)
            yield from torch.stack([m.sampler.draw_steps(t, lead.n_batches) for m in self.members], dim=1)
            steps -= t

    def _step(self, step: int, idx: Tensor, measure: bool) -> Tensor:
        """Raw step ``step`` → ``step + 1`` of every live member on its batch indices ``idx`` (K, batches·B);
        returns the minibatch losses (K,)."""
        lr, wd, sde = self._hyperparameters(step)
        x = self.data.x_train[idx]
        if self.data.augment is not None:
            x = torch.stack([self.data.augment(xk, m.generator) for xk, m in zip(x, self.members, strict=True)])
        loss, grads = self._losses_and_grads(x, self.data.y_train[idx])
        if measure:
            self.meters.add_grad(grads, self.alive)
            self.meters.before(self.params)
        self.optimizer.step(self.params, grads, lr, wd, self.live)
        if measure:
            self.meters.after(self.params, self.alive)
        self.sde_time += torch.where(self.alive, sde, 0.0)
        return loss.detach()

    def _clock(self, k: int, step: int) -> None:
        """Member k's step count and SDE time ← the pack's (kept as tensors while the pack steps)."""
        m = self.members[k]
        m.step, m.sde_time = step, self.sde_time[k].item()

    def _kill(self, k: int) -> None:
        self.live[k] = False
        self.alive[k] = False

    # --------------------------------------------------------------------------------------- checkpoints

    def _state(self, k: int) -> dict[str, Any]:
        self._sync(k)
        return self.members[k].state_dict(self.optimizer.member_state(k))

    def _resume(self, states: dict[str, dict[str, Any]]) -> list[bool]:
        """Load each member's state; returns which members still run (absent: finished before the checkpoint)."""
        running = [m.config.trial_id in states for m in self.members]
        for m, run in zip(self.members, running, strict=True):
            if run:
                m.load_state_dict(states[m.config.trial_id])
        steps = {m.step for m, run in zip(self.members, running, strict=True) if run}
        if len(steps) > 1:
            raise ValueError(f"pack checkpoint with members at different steps: {sorted(steps)}")
        step = steps.pop() if steps else 0
        for m, run in zip(self.members, running, strict=True):
            if not run:
                m.step = step  # finished: frozen, never reported again
        self._stack()
        self.optimizer.load([m.stepper for m in self.members], self.params)
        return running

    # ---------------------------------------------------------------------------------- events and points

    def _event(self, runs: list[_MemberRun], step: int, ks: list[int], log: bool) -> None:
        """Members ``ks`` at an event ``step``: their diagnostics due (each on its own module), then, if ``log``,
        their points, measured at once; a member whose point diverges is killed."""
        for k in ks:
            self._clock(k, step)
        if step in self.members[0].diagnostics.steps():
            for k in ks:
                self._sync(k)
                runs[k].diagnose(self.members[k], step)
                self._absorb(k)  # a diagnostic may move BatchNorm statistics
        if log:
            for k, measures in zip(ks, self._measures(ks), strict=True):
                runs[k].log(self.members[k], step, measures)
                if runs[k].status == "diverged":
                    self._kill(k)

    def _measures(self, ks: list[int]) -> list[Measures]:
        """Members ``ks``' :class:`Measures` now: norms and meters for the whole stack at once, losses at once for
        linear regression (one batched matmul), else each member's on its own module."""
        norms = self.meters.norms(self.params).tolist()
        angular, grad = self.meters.take(ks, "angular"), self.meters.take(ks, "grad")
        losses = self._linear_losses(ks) if self.linear else [self._member_losses(k) for k in ks]
        return [Measures(*loss, norms[k], a, g) for k, loss, a, g in zip(ks, losses, angular, grad, strict=True)]

    def _member_losses(self, k: int) -> tuple[float, float | None, float, float | None]:
        self._sync(k)
        return self.members[k].losses()

    @torch.no_grad()
    def _linear_losses(self, ks: list[int]) -> list[tuple[float, float | None, float, float | None]]:
        """``Trial.losses`` of linear-regression members ``ks``: the mean ½(xw − y)² over the evaluation examples
        (float64 sums of EVAL_CHUNK-example chunks, as ``evaluate``) and the exact population test loss."""
        lead = self.members[0]
        x, y = lead.eval_train
        w = self.params[self.names[0]][ks, 0, :]
        total = torch.zeros(len(ks), dtype=torch.float64, device=self.device)
        for start in range(0, len(x), EVAL_CHUNK):
            out = torch.einsum("nd,kd->kn", x[start:start + EVAL_CHUNK].reshape(-1, w.shape[1]), w)
            total += example_losses(out, y[start:start + EVAL_CHUNK], "regression").double().sum(dim=1)
        train = (total / len(x)).tolist()
        exact = lead.exact_test_loss
        assert exact is not None  # linear regression
        return [(train[i], None, exact(w[i]), None) for i in range(len(ks))]

    # ------------------------------------------------------------------------------------------------ run

    def run(self, reporter: PackReporter) -> dict[str, TrialResult]:
        """Train every member to the end of its budget (or divergence); one report per member batch."""
        states = reporter.checkpoint()
        running = self._resume(states) if states is not None else [True] * len(self.members)
        self.meters = PackMeters(len(self.members), self.tracked, self.device)
        self.live = list(running)  # host copy of ``alive``: which members still step
        self.alive = torch.tensor(running, device=self.device)
        self.sde_time = torch.tensor([m.sde_time for m in self.members], dtype=torch.float64, device=self.device)
        runs = [_MemberRun() for _ in self.members]
        lead = self.members[0]
        measure_every, log_set = lead.config.log.measure_every, set(lead.clock.log_steps)
        step = max(m.step for m in self.members)
        if step == 0:
            self._event(runs, 0, list(range(len(self.members))), log=True)
        bounds = torch.tensor([m.start.batch_bound if m.start else float("inf") for m in self.members],
                              device=self.device)
        events = sorted(s for s in log_set | lead.diagnostics.steps() if s > step)
        bad_step = torch.full((len(self.members),), -1, dtype=torch.long, device=self.device)
        last_report = time.monotonic()
        for event in events:
            for idx in self._batch_indices(event - step):
                if not any(self.live):
                    break
                measure = (step + 1) % measure_every == 0 or step + 1 in log_set
                loss = self._step(step, idx, measure)
                step += 1
                bad_step = torch.where((bad_step < 0) & self.alive & exceeds_tensor(loss, bounds), step, bad_step)
                if lead.check_every == 1 or step % lead.check_every == 0 or step == event:
                    for k in torch.nonzero(bad_step >= 0).flatten().tolist():
                        if self.live[k]:
                            self._clock(k, step)
                            runs[k].diverge(self.members[k], int(bad_step[k]), self._measures([k])[0])
                            self._kill(k)
            if not any(self.live):
                break
            self._event(runs, step, [k for k, live in enumerate(self.live) if live], log=step in log_set)
            due = time.monotonic() - last_report >= lead.config.log.report_seconds
            if step in log_set and due and step < lead.clock.total_steps and any(self.live):
                reporter.report({m.config.trial_id: runs[k].report(m, self._state(k) if self.live[k] else None)
                                 for k, m in enumerate(self.members) if running[k] and not runs[k].final})
                last_report = time.monotonic()
        reporter.report({m.config.trial_id: runs[k].finish(m) for k, m in enumerate(self.members)
                         if running[k] and not runs[k].final})
        return {m.config.trial_id: runs[k].result(m) for k, m in enumerate(self.members) if running[k]}


class _MemberRun:
    """One member's points, diagnostics rows and outcome within a pack run (what ``Trial.run`` keeps)."""

    def __init__(self) -> None:
        self.points: list[dict[str, Any]] = []
        self.all_points: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        self.status: Status = "running"
        self.diverged_step: int | None = None
        self.final = False  # the final report went out

    def diagnose(self, trial: Trial, step: int) -> None:
        self.rows += trial.diagnostics.run_due(step)

    def log(self, trial: Trial, step: int, measures: Measures) -> None:
        """The point at ``step``; the one at step 0 sets the divergence rule's start values."""
        point = trial.point(measures)
        self.points.append(point)
        if step == 0 and trial.start is None:
            trial.start = Start.from_point(point)
        if trial.start is not None and trial.start.point_diverged(point):
            self.status, self.diverged_step = "diverged", step

    def diverge(self, trial: Trial, step: int, measures: Measures) -> None:
        self.status, self.diverged_step = "diverged", step
        self.points.append(trial.point(measures))

    def _take(self, trial: Trial, status: Status, state: dict[str, Any] | None, info: dict[str, Any]) -> Report:
        out = Report(self.points, status, trial.step, state, {"device": str(trial.device)} | info, self.rows)
        self.all_points += self.points
        self.points, self.rows = [], []
        return out

    def report(self, trial: Trial, state: dict[str, Any] | None) -> Report:
        """A running batch with the member's checkpoint (once diverged, its final report)."""
        return self.finish(trial) if self.status == "diverged" else self._take(trial, "running", state, {})

    def finish(self, trial: Trial) -> Report:
        self.status = "completed" if self.status == "running" else self.status
        self.final = True
        return self._take(trial, self.status, None, {"diverged_step": self.diverged_step, "steps_done": trial.step})

    def result(self, trial: Trial) -> TrialResult:
        return TrialResult(self.status, self.all_points, trial.step, self.diverged_step, str(trial.device))


def run_pack(configs: Sequence[TrialConfig], reporter: PackReporter) -> dict[str, TrialResult]:
    """Train ``configs`` (one ``pack_key``) as one pack, reporting each member's batches to ``reporter``."""
    return PackedTrial(configs).run(reporter)


