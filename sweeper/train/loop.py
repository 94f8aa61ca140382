"""The training loop of one trial: a plain function of a trial config and a reporter (no Ray in here)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from sweeper.data import Dataset, build_dataset
from sweeper.diagnostics import TwoBatchNoiseScale
from sweeper.expand import TrialConfig
from sweeper.models import build_model, scale_invariant_parameters
from sweeper.models.loss import example_losses
from sweeper.reporter import Report, Reporter, Status
from sweeper.spec import is_adaptive
from sweeper.train.clock import Clock, make_clock
from sweeper.train.diagnose import Diagnostics
from sweeper.train.divergence import Start, exceeds, exceeds_tensor
from sweeper.train.metrics import GradNormMeter, WeightTracker, evaluate, squared_norm
from sweeper.train.optim import Stepper
from sweeper.train.sampler import BatchSampler
from sweeper.train.schedule import multiplier
from sweeper.train.svag import coefficients, example_weights, mixing_l

# Divergence (the rule: sweeper/train/divergence.py) is checked on the host every step on CPU; on an accelerator
# every few steps, with the first bad step kept on the device so no per-step sync is needed.
CHECK_EVERY_ACCELERATOR = 32

BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)
"""The public BatchNorm classes (their common base, torch.nn.modules.batchnorm._BatchNorm, is private)."""


@dataclass
class TrialResult:
    status: Status
    points: list[dict[str, Any]]
    steps_done: int
    diverged_step: int | None
    device: str


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device = 'cuda' but no CUDA device is visible to this trial")
    return torch.device(name)


class Measures(NamedTuple):
    """What a point measures of the model now (the rest of a point is the trial's clock and hyperparameters)."""

    train_loss: float
    train_acc: float | None
    test_loss: float
    test_acc: float | None
    weight_norm: float  # ‖w‖ of the tracked (scale-invariant, else all trainable) parameters
    angular_update: float | None  # RMS over the measured steps since the last point; None if none
    grad_norm: float | None


class Trial:
    """The state of one trial and its step function; ``run`` drives it to the end of the budget."""

    def __init__(self, config: TrialConfig, data: Dataset | None = None):
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = getattr(torch, config.precision)
        opts = config.data.model_dump(exclude={"name"})
        self.data = data or build_dataset(config.data.name, self.device, self.dtype, cache=True, **opts)
        torch.manual_seed(config.seed)
        self.model = build_model(
            config.model.name, self.data.input_shape, self.data.num_outputs,
            **config.model.model_dump(exclude={"name"}),
        ).to(device=self.device, dtype=self.dtype)
        self.model.train()
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.tracked = scale_invariant_parameters(self.model) or self.trainable
        self.stepper = Stepper(config, self.trainable)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed)
        self.sampler = BatchSampler(
            self.data.n_train, config.batch_size, config.optimizer.sampling == "replacement", self.generator
        )
        self.clock: Clock = make_clock(config, self.data.n_train)
        self.l_mix = mixing_l(config.optimizer.name, config.svag_l)
        self.n_batches = 1 if self.l_mix == 1 else 2
        self.weights = example_weights(self.l_mix, config.batch_size, self.device, self.dtype)
        self.separate_forwards = self.n_batches == 2 and any(
            isinstance(m, BATCH_NORMS) for m in self.model.modules()
        )
        self.adaptive = is_adaptive(config.optimizer.name)
        self.step = 0
        self.sde_time = 0.0
        self.start: Start | None = None  # the divergence rule's start values, from the step-0 point
        self.check_every = 1 if self.device.type == "cpu" else CHECK_EVERY_ACCELERATOR  # steps between host checks
        self.first_bad = torch.full((), -1, dtype=torch.long, device=self.device)  # device-side: first diverged step
        n_eval = config.log.eval_samples or None
        self.eval_train = (self.data.x_train[:n_eval], self.data.y_train[:n_eval])
        self.eval_test = (self.data.x_test[:n_eval], self.data.y_test[:n_eval])
        self.exact_test_loss = self.data.exact_test_loss if config.model.name == "linear" else None
        self.online: TwoBatchNoiseScale | None = None
        if config.diagnostics.online_noise:
            b = config.batch_size
            if self.n_batches == 1:  # the two halves of the batch: b = B/2, B' = B
                self.online_split, self.online_scales = b // 2, (2.0, 2.0)
                self.online = TwoBatchNoiseScale(b // 2, b)
            else:  # SVAG's two batches γ1, γ2 weighted c1, c2: b = B, B' = 2B
                c1, c2 = coefficients(self.l_mix)
                self.online_split, self.online_scales = b, (1 / c1, 1 / c2)
                self.online = TwoBatchNoiseScale(b, 2 * b)
        self.diagnostics = Diagnostics(config.diagnostics, self.clock, self.model, self.data, config.batch_size,
                                       config.seed, self.tracked)
        self.tracker = WeightTracker(self.tracked)  # norm and angular update of the measured steps
        self.grad_meter = GradNormMeter(self.trainable)  # RMS minibatch gradient norm of the measured steps

    # ------------------------------------------------------------------ hyperparameters at the current step

    def hyperparameters(self) -> tuple[float, float]:
        """Scheduled (η, λ) at the current step, SGD-equivalent (before SVAG rescaling)."""
        epoch, total = self.clock.epoch(self.step), self.clock.total_epochs
        sched = self.config.schedule
        return (
            self.config.lr * multiplier(sched.lr, epoch, total),
            self.config.weight_decay * multiplier(sched.weight_decay, epoch, total),
        )

    # ------------------------------------------------------------------------------------------ one step

    def weighted_losses(self) -> torch.Tensor:
        """Draw the step's batch(es); per-example losses times their SVAG weights, shape (B,) or (2B,).

        Their sum is the step's (mixed) minibatch loss."""
        idx = self.sampler.draw(self.n_batches)
        x, y = self.data.x_train[idx], self.data.y_train[idx]
        if self.data.augment is not None:
            x = self.data.augment(x, self.generator)
        if not self.separate_forwards:
            return self.weights * example_losses(self.model(x), y, self.data.task)
        b = self.config.batch_size  # BatchNorm: each batch is normalised on its own statistics
        halves = [slice(0, b), slice(b, 2 * b)]
        return torch.cat([self.weights[s] * example_losses(self.model(x[s]), y[s], self.data.task) for s in halves])

    def minibatch_loss(self) -> torch.Tensor:
        """The (SVAG-mixed) minibatch loss of a fresh draw, differentiable, 0-d."""
        return self.weighted_losses().sum()

    def _backward(self, losses: torch.Tensor, online: TwoBatchNoiseScale | None) -> torch.Tensor:
        """Gradients into ``.grad``; with ``online``, from two groups separately, feeding that noise-scale EMA."""
        for p in self.trainable:
            p.grad = None
        if online is None:
            loss = losses.sum()
            loss.backward()
            return loss
        k = self.online_split
        parts = (losses[:k].sum(), losses[k:].sum())
        ga = torch.autograd.grad(parts[0], self.trainable, retain_graph=True)
        gb = torch.autograd.grad(parts[1], self.trainable)
        for p, a, b in zip(self.trainable, ga, gb, strict=True):
            p.grad = a + b
        sa, sb = self.online_scales  # group sums → group-mean gradients
        # torch._foreach_* (private): one multi-tensor kernel per operation, as in sweeper/train/metrics.py
        mean_pair = torch._foreach_add(torch._foreach_mul(ga, sa / 2), torch._foreach_mul(gb, sb / 2))
        online.update((squared_norm(ga) * sa**2 + squared_norm(gb) * sb**2) / 2, squared_norm(mean_pair))
        return parts[0].detach() + parts[1].detach()

    def train_step(self, lr: float, weight_decay: float, measure: bool = False) -> torch.Tensor:
        """One raw optimizer step with scheduled (η, λ); returns the minibatch loss (detached, 0-d).

        ``measure``: also record this step's gradient norm and angular update (and the online noise scale).
        """
        loss = self._backward(self.weighted_losses(), self.online if measure else None)
        if measure:
            self.grad_meter.add()
            self.tracker.before_step()
        self.stepper.step(lr, weight_decay)
        if measure:
            self.tracker.after_step()
        raw_lr = self.stepper.raw_lr(lr)
        self.sde_time += raw_lr**2 if self.adaptive else raw_lr
        self.step += 1
        return loss.detach()

    # --------------------------------------------------------------------------------------------- points

    def losses(self) -> tuple[float, float | None, float, float | None]:
        """(train_loss, train_acc, test_loss, test_acc) of the model now, as a point carries them."""
        train_loss, train_acc = evaluate(self.model, *self.eval_train, self.data.task)
        if self.exact_test_loss is not None:
            w = self.trainable[0].detach().reshape(-1)
            test_loss, test_acc = self.exact_test_loss(w), None
        else:
            test_loss, test_acc = evaluate(self.model, *self.eval_test, self.data.task)
        return train_loss, train_acc, test_loss, test_acc

    def measures(self) -> Measures:
        """This trial's :class:`Measures` now (taking the meters' RMS empties them)."""
        return Measures(*self.losses(), self.tracker.norm_tensor().item(), self.tracker.take_rms(),
                        self.grad_meter.take_rms())

    def point(self, measures: Measures | None = None) -> dict[str, Any]:
        """The logged point at the current step; ``measures`` when already taken (a pack measures its members at
        once), else :meth:`measures`."""
        lr, wd = self.hyperparameters()
        m = self.measures() if measures is None else measures
        norm = m.weight_norm
        return {
            "step": self.step,
            "effective_step": self.clock.effective_step(self.step),
            "epoch": self.clock.epoch(self.step),
            "sde_time": self.sde_time,
            "lr": lr,
            "weight_decay": wd,
            "train_loss": m.train_loss,
            "train_acc": m.train_acc,
            "test_loss": m.test_loss,
            "test_acc": m.test_acc,
            "weight_norm": norm,
            "effective_lr": lr / norm**2 if norm > 0 else None,
            "angular_update": m.angular_update,
            "grad_norm": m.grad_norm,
            "noise_trace": self.online.trace_sigma if self.online else None,
            "grad_sq": self.online.grad_sq if self.online else None,
            "noise_scale": self.online.b_simple if self.online else None,
        }

    # --------------------------------------------------------------------------------------- checkpoints

    def state_dict(self, optimizer_state: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit (taken at a logged point, where the meters are empty);
        ``optimizer_state``: the optimizer's per parameter when it lives elsewhere (a pack's)."""
        return {
            "step": self.step,
            "sde_time": self.sde_time,
            "model": self.model.state_dict(),
            "optimizer": self.stepper.state_dict(optimizer_state),
            "generator": self.generator.get_state(),
            "sampler": self.sampler.state_dict(),
            "trajectory": self.diagnostics.trajectory.state_dict() if self.diagnostics.trajectory else None,
            "online_noise": self.online.state_dict() if self.online else None,
            "divergence_start": self.start.state_dict() if self.start else None,
            "trial_id": self.config.trial_id,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("trial_id") != self.config.trial_id:
            raise ValueError(f"checkpoint of trial {state.get('trial_id')!r} given to trial {self.config.trial_id!r}")
        if state.get("divergence_start") is not None:
            self.start = Start(dict(state["divergence_start"]))
        elif self.step == 0:  # a checkpoint from before the rule: this fresh trial's model is still the step-0 one
            train_loss, _, test_loss, _ = self.losses()
            self.start = Start({"train_loss": train_loss, "test_loss": test_loss})
        else:
            raise ValueError("checkpoint without divergence_start given to a trial that has already stepped")
        self.model.load_state_dict(state["model"])
        self.stepper.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.sampler.load_state_dict(state["sampler"])
        if self.diagnostics.trajectory:
            self.diagnostics.trajectory.load_state_dict(state["trajectory"])
        if self.online:
            self.online.load_state_dict(state["online_noise"])
        self.step, self.sde_time = state["step"], state["sde_time"]

    # ------------------------------------------------------------------------------------------------ run

    def _advance(self, event: int, limit: float, log_set: set[int]) -> int | None:
        """Train up to raw step ``event`` (recording trajectory samples on the way); the diverged step if the
        minibatch loss broke ``limit`` (the divergence rule) — the loop then stops there — else None."""
        measure_every, trajectory = self.config.log.measure_every, self.diagnostics.trajectory
        while self.step < event:
            lr, wd = self.hyperparameters()
            measure = (self.step + 1) % measure_every == 0 or self.step + 1 in log_set
            loss = self.train_step(lr, wd, measure)
            if trajectory and trajectory.wants(self.step):
                trajectory.record(self.step)
            if self.check_every == 1:
                if exceeds(loss.item(), limit):
                    return self.step
                continue
            self.first_bad = torch.where((self.first_bad < 0) & exceeds_tensor(loss, limit), self.step, self.first_bad)
            if self.step % self.check_every == 0 or self.step == event:
                first_bad = int(self.first_bad.item())
                if first_bad >= 0:
                    return first_bad
        return None

    def run(self, reporter: Reporter) -> TrialResult:
        state = reporter.checkpoint()
        if state is not None:
            self.load_state_dict(state)
        info: dict[str, Any] = {"device": str(self.device)}
        log_set = set(self.clock.log_steps)
        diag, trajectory = self.diagnostics, self.diagnostics.trajectory
        all_points: list[dict[str, Any]] = []
        points: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        last_report = time.monotonic()
        status: Status = "completed"
        diverged_step: int | None = None
        if self.step == 0:
            if trajectory and trajectory.wants(0):
                trajectory.record(0)
            rows += diag.run_due(0)
            points.append(self.point())
            self.start = Start.from_point(points[-1])
            if self.start.point_diverged(points[-1]):
                status, diverged_step = "diverged", 0
        start = self.start
        assert start is not None, "set by the step-0 point or by load_state_dict"
        limit = start.batch_bound
        events = sorted(s for s in log_set | diag.steps() if s > self.step) if diverged_step is None else []
        for event in events:
            diverged_step = self._advance(event, limit, log_set)
            if diverged_step is not None:
                status = "diverged"
                points.append(self.point())
                break
            rows += diag.run_due(self.step)
            if self.step not in log_set:
                continue
            points.append(self.point())
            if start.point_diverged(points[-1]):
                status, diverged_step = "diverged", self.step
                break
            if time.monotonic() - last_report >= self.config.log.report_seconds and self.step < self.clock.total_steps:
                rows += trajectory.flush() if trajectory else []
                reporter.report(Report(points, "running", self.step, self.state_dict(), info, rows))
                all_points += points
                points, rows, last_report = [], [], time.monotonic()
        if trajectory:
            rows += trajectory.flush() + trajectory.statistics(self.step)
        info |= {"diverged_step": diverged_step, "steps_done": self.step}
        reporter.report(Report(points, status, self.step, None, info, rows))
        all_points += points
        return TrialResult(status, all_points, self.step, diverged_step, str(self.device))


def run_trial(config: TrialConfig, reporter: Reporter) -> TrialResult:
    """Train ``config`` to the end of its budget (or divergence), reporting batches of points to ``reporter``."""
    return Trial(config).run(reporter)
