"""Expand a study spec into trial configs: grid × scaling path × seeds, each with a stable content id."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from sweeper.limits import DEFAULT_MAX_TRIALS
from sweeper.spec import (
    BudgetSpec,
    DataSpec,
    DiagnosticsSpec,
    LogSpec,
    ModelSpec,
    OptimizerSpec,
    SchedulesSpec,
    StudySpec,
    step_multiplier,
)


class ScalingPoint(BaseModel):
    """Where a trial sits on a scaling path: B = κ·base_batch_size, η from base_lr by ``rule``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rule: Literal["linear", "sqrt"]
    kappa: float
    base_batch_size: int
    base_lr: float


class TrialConfig(BaseModel):
    """Everything one trial needs, fully resolved (no axes left). JSON-serialisable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    trial_id: str
    index: int
    study: str
    data: DataSpec
    model: ModelSpec
    optimizer: OptimizerSpec
    batch_size: int
    lr: float
    weight_decay: float
    svag_l: float
    seed: int
    scaling: ScalingPoint | None = None
    schedule: SchedulesSpec
    budget: BudgetSpec
    log: LogSpec
    diagnostics: DiagnosticsSpec = DiagnosticsSpec()
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["float32", "float64"]

    @property
    def step_multiplier(self) -> float:
        """Raw optimizer steps per SGD-equivalent step (l, or ℓ² for adaptive methods)."""
        return step_multiplier(self.optimizer.name, self.svag_l)

    def hyperparameters(self) -> dict[str, Any]:
        """The typed columns a run is filtered by (optimizer-specific ones are None where absent)."""
        opt = self.optimizer
        return {
            "optimizer": opt.name,
            "model": self.model.name,
            "dataset": self.data.name,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "svag_l": self.svag_l,
            "seed": self.seed,
            "momentum": getattr(opt, "momentum", None),
            "beta1": getattr(opt, "beta1", None),
            "beta2": getattr(opt, "beta2", None),
            "eps": getattr(opt, "eps", None),
            "scaling_rule": self.scaling.rule if self.scaling else None,
            "kappa": self.scaling.kappa if self.scaling else None,
        }


def scale_hyperparameters(
    rule: str, kappa: float, batch_size: int, lr: float, optimizer: dict[str, Any]
) -> tuple[int, float, dict[str, Any]]:
    """Apply a scaling rule (docs/theory.md §1, §3) to (B, η, optimizer fields); returns the scaled triple.

    linear: B → κB, η → κη (momentum and betas unchanged).
    sqrt:   B → κB, η → √κ·η, 1 − β → κ(1 − β) for β1 and β2, ε → ε/√κ.
    """
    new_b = round(batch_size * kappa)
    if rule == "linear":
        return new_b, lr * kappa, dict(optimizer)
    scaled = dict(optimizer)
    for key in ("beta1", "beta2"):
        if key in scaled:
            scaled[key] = 1.0 - kappa * (1.0 - scaled[key])
    scaled["eps"] = scaled["eps"] / math.sqrt(kappa)
    return new_b, lr * math.sqrt(kappa), scaled


def trial_id(content: dict[str, Any]) -> str:
    """Stable id: the first 12 hex digits of the SHA-256 of the config's canonical JSON."""
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return "t" + hashlib.sha256(blob.encode()).hexdigest()[:12]


class TooManyTrials(ValueError):
    """A study whose grid is larger than allowed; the message is one line with the count and the limit."""


def grid_axes(spec: StudySpec) -> dict[str, int]:
    """The length of each axis of the study's grid (the scaling path counts as one axis: rules × factors)."""
    sweep = spec.sweep
    axes = {"scaling": len(spec.scaling.rule) * len(spec.scaling.factors) if spec.scaling else 1}
    axes |= {k: len(getattr(sweep, k)) for k in ("batch_size", "lr", "weight_decay", "svag_l")}
    axes |= {k: len(getattr(sweep, k)) for k in ("momentum", "beta1", "beta2", "eps") if getattr(sweep, k) is not None}
    return axes | {"seeds": len(spec.seeds)}


def count_trials(spec: StudySpec) -> int:
    """How many trials :func:`expand` makes, counted from the axes (nothing is expanded)."""
    return math.prod(grid_axes(spec).values())


def check_trial_count(spec: StudySpec, max_trials: int = DEFAULT_MAX_TRIALS) -> int:
    """The study's trial count; raises :class:`TooManyTrials` when it exceeds ``max_trials``."""
    n = count_trials(spec)
    if n > max_trials:
        sizes = " × ".join(f"{size} {name}" for name, size in grid_axes(spec).items() if size > 1)
        raise TooManyTrials(f"the study expands to {_count(n)} trials ({sizes}); the limit is {_count(max_trials)} "
                            f"(shrink the grid, or raise it with --max-trials)")
    return n


def _count(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def expand(spec: StudySpec) -> list[TrialConfig]:
    """The study's trials in a fixed order: scaling rule, κ, B, η, λ, l, optimizer axes, seed (innermost)."""
    sweep = spec.sweep
    opt_axes = [k for k in ("momentum", "beta1", "beta2", "eps") if getattr(sweep, k) is not None]
    path = (
        [(rule, k) for rule in spec.scaling.rule for k in spec.scaling.factors] if spec.scaling else [(None, 1.0)]
    )
    shared = {
        "data": spec.data.model_dump(mode="json"),
        "model": spec.model.model_dump(mode="json"),
        "schedule": spec.schedule.model_dump(mode="json"),
        "budget": spec.budget.model_dump(mode="json"),
        "log": spec.log.model_dump(mode="json"),
        "diagnostics": spec.diagnostics.model_dump(mode="json"),
        "device": spec.device,
        "precision": spec.precision,
    }
    trials: list[TrialConfig] = []
    for (rule, kappa), b0, lr0, wd, svag_l, *opt_values, seed in itertools.product(
        path, sweep.batch_size, sweep.lr, sweep.weight_decay, sweep.svag_l,
        *[getattr(sweep, k) for k in opt_axes], spec.seeds,
    ):
        optimizer = spec.optimizer.model_dump(mode="json") | dict(zip(opt_axes, opt_values, strict=True))
        batch_size, lr, scaling = b0, lr0, None
        if rule is not None:
            batch_size, lr, optimizer = scale_hyperparameters(rule, kappa, b0, lr0, optimizer)
            scaling = {"rule": rule, "kappa": kappa, "base_batch_size": b0, "base_lr": lr0}
        content = shared | {
            "optimizer": optimizer,
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": wd,
            "svag_l": svag_l,
            "seed": seed,
            "scaling": scaling,
        }
        trials.append(
            TrialConfig.model_validate(
                content | {"trial_id": trial_id(content), "index": len(trials), "study": spec.name}
            )
        )
    if len({t.trial_id for t in trials}) != len(trials):  # the spec refuses repeated axis values; never reached
        raise ValueError(f"study {spec.name!r} expands to repeated trials; every axis value must be distinct")
    return trials


def find_trial(trials: list[TrialConfig], key: str) -> TrialConfig:
    """A trial by id or by index; raises KeyError with the valid range."""
    for trial in trials:
        if trial.trial_id == key:
            return trial
    if key.isascii() and key.isdigit() and int(key) < len(trials):
        return trials[int(key)]
    raise KeyError(f"no trial {key!r}: give a trial id from `sweeper launch SPEC --dry-run` or an index "
                   f"0..{len(trials) - 1}")
