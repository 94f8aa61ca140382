"""The study spec: a validated description of what to sweep.

A study file (TOML) is parsed into :class:`StudySpec`. Every invalid value is rejected here, before anything
runs, with one line per problem naming the field (``SpecError``). Units: learning rates and weight decays are
per SGD-equivalent step; epochs, schedule times and log cadences are SGD-equivalent epochs (an SVAG(l) run takes
l× as many raw steps to cover one).
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from sweeper.data.cifar_layout import check_cifar_root
from sweeper.limits import (
    CIFAR_TRAIN_SIZE,
    MAX_COUNT,
    MAX_DATA_VALUES,
    MAX_DEPTH,
    MAX_DIM,
    MAX_EXAMPLES,
    MAX_POINTS,
    MAX_RATE,
    MAX_RAW_STEPS,
    MAX_REPORT_SECONDS,
    MAX_RESNET_DEPTH,
    MAX_SEED,
    MAX_TRAJECTORY_SAMPLES,
    MAX_WIDTH,
    MAX_WIDTH_FACTOR,
)
from sweeper.names import DATA_NAMES, MODEL_NAMES, OPTIMIZER_NAMES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ADAPTIVE = ("adam", "rmsprop")


class SpecError(ValueError):
    """Invalid study spec; ``lines`` holds one ``field: problem`` line per error."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("; ".join(lines))


class _FieldProblem(ValueError):
    """A problem found by a validator whose field is not the model being validated; str() is the whole line."""

    def __init__(self, loc: str, msg: str):
        super().__init__(f"{loc}: {msg}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _number(v: Any) -> Any:
    """TOML booleans and strings are not numbers (pydantic would read true as 1 and "0.1" as 0.1)."""
    if isinstance(v, bool):
        raise ValueError(f"should be a number, not a boolean (got {str(v).lower()})")
    if isinstance(v, str):
        raise ValueError(f"should be a number, not a string (got {v!r}; drop the quotes)")
    return v


def _whole_number(v: Any) -> Any:
    v = _number(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"should be a finite whole number (got {v})")
        if not v.is_integer():
            raise ValueError(f"should be a whole number (got {v:g})")
        return int(v)
    return v


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, (str, float)) else str(value)


def _big(n: float) -> str:
    """A count for a message: 4 000 000, or 1.2e+303 when it is astronomically large."""
    return f"{n:,.0f}".replace(",", " ") if n < 1e15 else f"{n:.3g}"


def _check_axis(loc: str, values: list[Any]) -> None:
    """An axis is a non-empty set of values: no empty list, no value twice."""
    if not values:
        raise _FieldProblem(loc, "empty list (give at least one value)")
    first: dict[Any, int] = {}
    for i, value in enumerate(values):
        if value in first:
            raise _FieldProblem(loc, f"{_shown(value)} is given twice, at [{first[value]}] and [{i}] "
                                     f"(list each value once)")
        first[value] = i


Float = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
"""A finite float; booleans and strings refused."""
Int = Annotated[int, BeforeValidator(_whole_number)]
"""An int (a whole float such as 1e4 is read as one); booleans, strings, inf and NaN refused."""
PositiveFloat = Annotated[Float, Field(gt=0)]
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegFloat = Annotated[Float, Field(ge=0)]
Rate = Annotated[Float, Field(gt=0, le=MAX_RATE)]
NonNegRate = Annotated[Float, Field(ge=0, le=MAX_RATE)]
Examples = Annotated[Int, Field(gt=0, le=MAX_EXAMPLES)]
Seed = Annotated[Int, Field(ge=0, le=MAX_SEED)]
Count = Annotated[Int, Field(gt=0, le=MAX_COUNT)]
Beta = Annotated[Float, Field(ge=0, lt=1)]
Norm = Literal["bn", "gn", "none"]


# --------------------------------------------------------------------------------------------------- data


class LinregData(_Strict):
    """Linear regression, x ~ N(0, diag(h)), h geometric from 1 to 1/condition; y = x·w* + noise·ε."""

    name: Literal["linreg"]
    n_train: Examples = 16384
    dim: Annotated[Int, Field(gt=0, le=MAX_DIM)] = 16
    condition: Annotated[Float, Field(ge=1)] = 10.0
    noise: NonNegFloat = 1.0
    n_test: Examples = 4096
    seed: Seed = 0
    hetero: NonNegFloat = 0.0
    """Label noise growing along u = 1/√d: noise(x)² = noise²(1 + hetero·(uᵀx)²); > 0 makes the gradient noise
    not commute with H (a known non-equilibrium case)."""


class TeacherData(_Strict):
    """Teacher–student classification: labels from a random one-hidden-layer ReLU network."""

    name: Literal["teacher"]
    n_train: Examples = 8192
    n_test: Examples = 2048
    dim: Annotated[Int, Field(gt=0, le=MAX_DIM)] = 32
    classes: Annotated[Int, Field(ge=2, le=MAX_COUNT)] = 10
    teacher_width: Annotated[Int, Field(gt=0, le=MAX_WIDTH)] = 64
    label_noise: Annotated[Float, Field(ge=0, le=1)] = 0.0
    seed: Seed = 0


class Mnist1dData(_Strict):
    """MNIST-1D generated by the ``mnist1d`` package (no download)."""

    name: Literal["mnist1d"]
    n_train: Examples = 4000
    n_test: Examples = 1000
    seed: Seed = 42


class CifarData(_Strict):
    """CIFAR-10/100 from a local directory in the python-pickle layout."""

    name: Literal["cifar10", "cifar100"]
    root: str
    augment: bool = True
    n_train: Examples | None = None

    @model_validator(mode="after")
    def _root_has_batches(self) -> CifarData:
        problem = check_cifar_root(self.name, self.root)
        if problem:
            raise _FieldProblem("data.root", problem.removeprefix("data.root: "))
        return self


DataSpec = Annotated[LinregData | TeacherData | Mnist1dData | CifarData, Field(discriminator="name")]


# -------------------------------------------------------------------------------------------------- model


class _ModelBase(_Strict):
    scale_invariant: bool = False
    """Normalization without affine parameters, no biases before a norm, frozen head (docs/theory.md §1)."""
    if TYPE_CHECKING:
        norm: Norm  # each model declares it, with its own default (declared here, it would reorder the fields)

    @model_validator(mode="after")
    def _invariance_needs_norm(self) -> _ModelBase:
        if self.scale_invariant and self.norm == "none":
            raise _FieldProblem("model.scale_invariant", "needs norm = 'bn' or 'gn' (got norm = 'none')")
        return self


class LinearModel(_Strict):
    name: Literal["linear"]
    bias: bool = False


class MlpModel(_ModelBase):
    name: Literal["mlp"]
    width: Annotated[Int, Field(gt=0, le=MAX_WIDTH)] = 256
    depth: Annotated[Int, Field(gt=0, le=MAX_DEPTH)] = 2
    norm: Norm = "none"


class CnnModel(_ModelBase):
    name: Literal["cnn"]
    width: Annotated[Int, Field(gt=0, le=MAX_WIDTH)] = 32
    depth: Annotated[Int, Field(gt=0, le=MAX_DEPTH)] = 3
    norm: Norm = "none"

    @model_validator(mode="after")
    def _widest_stage(self) -> CnnModel:
        widest = self.width * 2 ** (self.depth - 1)
        if widest > MAX_WIDTH:
            raise _FieldProblem("model.depth", f"the last of {self.depth} stages would have {widest:.3g} channels "
                                               f"(width × 2^(depth-1)); the limit is {MAX_WIDTH} (fewer stages or a "
                                               f"smaller width)")
        return self


class PreResNetModel(_ModelBase):
    name: Literal["preresnet"]
    depth: Annotated[Int, Field(le=MAX_RESNET_DEPTH)] = 32
    width: Annotated[Float, Field(gt=0, le=MAX_WIDTH_FACTOR)] = 1.0
    norm: Norm = "bn"

    @field_validator("depth")
    @classmethod
    def _six_n_plus_two(cls, v: int) -> int:
        if v < 8 or (v - 2) % 6:
            raise ValueError("must be 6n+2 (20, 32, 56, ...)")
        return v


class VggModel(_ModelBase):
    name: Literal["vgg"]
    depth: Literal[11, 16] = 16
    width: Annotated[Float, Field(gt=0, le=MAX_WIDTH_FACTOR)] = 1.0
    norm: Norm = "bn"


ModelSpec = Annotated[
    LinearModel | MlpModel | CnnModel | PreResNetModel | VggModel, Field(discriminator="name")
]


# ---------------------------------------------------------------------------------------------- optimizer


class SgdOptimizer(_Strict):
    name: Literal["sgd"]
    momentum: Beta = 0.0
    nesterov: bool = False
    decoupled_weight_decay: bool = False
    sampling: Literal["replacement", "shuffle"] = "replacement"

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SgdOptimizer:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov = true needs momentum > 0")
        return self


class AdamOptimizer(_Strict):
    name: Literal["adam"]
    beta1: Beta = 0.9
    beta2: Beta = 0.999
    eps: Rate = 1e-8
    decoupled_weight_decay: bool = False
    sampling: Literal["replacement", "shuffle"] = "replacement"


class RmspropOptimizer(_Strict):
    name: Literal["rmsprop"]
    beta2: Beta = 0.999
    eps: Rate = 1e-8
    decoupled_weight_decay: bool = False
    sampling: Literal["replacement", "shuffle"] = "replacement"


OptimizerSpec = Annotated[
    SgdOptimizer | AdamOptimizer | RmspropOptimizer, Field(discriminator="name")
]

# ------------------------------------------------------------------------------------------ sweep, scaling


def _as_list(v: Any) -> Any:
    return v if isinstance(v, list) else [v]


class SweepSpec(_Strict):
    """The grid: every list is an axis (a scalar is a one-value axis)."""

    batch_size: list[Examples] = [128]
    lr: list[Rate] = [0.1]
    weight_decay: list[NonNegRate] = [0.0]
    svag_l: list[Annotated[Float, Field(ge=1, le=MAX_RATE)]] = [1.0]
    momentum: list[Beta] | None = None
    beta1: list[Beta] | None = None
    beta2: list[Beta] | None = None
    eps: list[Rate] | None = None

    _lists = field_validator("*", mode="before")(classmethod(lambda cls, v: None if v is None else _as_list(v)))

    @model_validator(mode="after")
    def _axes_are_sets(self) -> SweepSpec:
        for key, values in self:
            if values is not None:
                _check_axis(f"sweep.{key}", values)
        return self


class ScalingSpec(_Strict):
    """A path along a scaling rule, crossed with the other axes: B and η (and β, ε) scaled from the sweep values."""

    rule: list[Literal["linear", "sqrt"]]
    factors: list[Rate]

    _rule_list = field_validator("rule", "factors", mode="before")(classmethod(lambda cls, v: _as_list(v)))

    @model_validator(mode="after")
    def _axes_are_sets(self) -> ScalingSpec:
        _check_axis("scaling.rule", self.rule)
        _check_axis("scaling.factors", self.factors)
        return self


# --------------------------------------------------------------------------------------------- schedules


class ScheduleSpec(_Strict):
    """A multiplier of the base value over SGD-equivalent epochs.

    ``constant``; ``multistep``: × gamma at each of ``milestones``; ``piecewise``: ``values[i]`` from ``at[i-1]``
    on (``len(values) == len(at) + 1``; step changes of η or λ at given times); ``cosine``: from 1 down to
    ``min_factor`` over the budget. ``warmup_epochs`` ramps linearly from 0 on top of any of them.
    """

    kind: Literal["constant", "multistep", "piecewise", "cosine"] = "constant"
    milestones: list[PositiveFloat] = []
    gamma: Rate = 0.1
    at: list[PositiveFloat] = []
    values: list[NonNegRate] = []
    min_factor: NonNegRate = 0.0
    warmup_epochs: NonNegFloat = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleSpec:
        if self.kind == "multistep" and not self.milestones:
            raise ValueError("kind = 'multistep' needs milestones = [epoch, ...]")
        if self.kind == "piecewise" and len(self.values) != len(self.at) + 1:
            raise ValueError("kind = 'piecewise' needs len(values) == len(at) + 1")
        for key in ("milestones", "at"):
            times = getattr(self, key)
            if times != sorted(times):
                raise ValueError(f"{key} must be increasing")
        return self


class SchedulesSpec(_Strict):
    lr: ScheduleSpec = ScheduleSpec()
    weight_decay: ScheduleSpec = ScheduleSpec()


class BudgetSpec(_Strict):
    """Training length in SGD-equivalent units: exactly one of epochs, steps, sde_time."""

    epochs: PositiveFloat | None = None
    steps: Annotated[Int, Field(gt=0, le=MAX_RAW_STEPS)] | None = None
    sde_time: PositiveFloat | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BudgetSpec:
        given = [k for k, v in self if v is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of epochs, steps, sde_time (got {', '.join(given) or 'none'})")
        return self


class LogSpec(_Strict):
    """Trajectory cadence: a point every ``every_epochs`` (or ``every_steps`` SGD-equivalent steps)."""

    every_epochs: PositiveFloat | None = None
    every_steps: Annotated[Int, Field(gt=0, le=MAX_RAW_STEPS)] | None = None
    eval_samples: Annotated[Int, Field(ge=0, le=MAX_EXAMPLES)] = 10000
    """Cap on the train/test examples evaluated at each point (0 = all)."""
    measure_every: Annotated[Int, Field(gt=0, le=MAX_RAW_STEPS)] = 8
    """Raw steps between samples of grad_norm and angular_update (and always the step before a point)."""
    report_seconds: Annotated[Float, Field(gt=0, le=MAX_REPORT_SECONDS)] = 5.0
    """How often a trial sends its buffered points (and a checkpoint) to the reporter."""

    @model_validator(mode="after")
    def _one_cadence(self) -> LogSpec:
        if self.every_epochs is not None and self.every_steps is not None:
            raise ValueError("give every_epochs or every_steps, not both")
        return self


class NoiseDiagnostic(_Strict):
    """Noise-to-signal ratio from ``batches`` batch gradients at the run's own batch size (docs/theory.md §2)."""

    every_epochs: PositiveFloat | None = None
    """Cadence; default: auto (see ``DiagnosticsSpec.budget``)."""
    batches: Count | None = None
    """m; default max(200, 12800 // B)."""


class CovarianceDiagnostic(_Strict):
    """Spectrum of the per-example gradient covariance D (docs/theory.md §5, §9), eval-mode per-example gradients."""

    every_epochs: PositiveFloat | None = None
    samples: Annotated[Int, Field(ge=2, le=MAX_COUNT)] = 512
    top_k: Count = 32
    full_dataset: bool = False
    """Use every training example (models with at most 20 000 parameters), as Chaudhari & Soatto did."""


class SharpnessDiagnostic(_Strict):
    """Top Hessian eigenvalue (power iteration on Hessian-vector products) on one fixed batch, eval mode."""

    every_epochs: PositiveFloat | None = None
    batch_size: Examples = 256
    tolerance: Annotated[Float, Field(gt=0, le=1)] = 1e-3
    """Relative change of the eigenvalue estimate between power iterations at which it stops."""
    max_iterations: Count = 50
    trace_samples: Annotated[Int, Field(ge=0, le=MAX_COUNT)] = 0
    """Hutchinson probes for the Hessian trace (0 = no trace)."""


class TrajectoryDiagnostic(_Strict):
    """Weights projected on K fixed random directions every ``every_steps`` raw steps inside the window."""

    projections: Annotated[Int, Field(ge=2, le=1024)] = 16
    every_steps: Annotated[Int, Field(gt=0, le=MAX_RAW_STEPS)] = 1
    start_epoch: NonNegFloat = 0.0
    end_epoch: PositiveFloat | None = None
    """End of the window (default: end of the run)."""
    seed: Seed = 0


class DiagnosticsSpec(_Strict):
    """Each diagnostic runs when its section is present (``[diagnostics.noise]`` with no keys: defaults).

    A diagnostic without ``every_epochs`` runs at an automatic cadence: as often as keeps its estimated cost
    (in example gradients) within ``budget`` × the run's training cost, and always at the end of the run.
    """

    budget: Annotated[Float, Field(gt=0, le=1)] = 0.02

    noise: NoiseDiagnostic | None = None
    online_noise: bool = False
    """Two-batch noise scale on the measured training steps (docs/theory.md §2), logged with each point as noise_trace,
    grad_sq and noise_scale; the two batches are the halves of the batch (l = 1) or SVAG's two batches."""
    covariance: CovarianceDiagnostic | None = None
    sharpness: SharpnessDiagnostic | None = None
    trajectory: TrajectoryDiagnostic | None = None


class StudySpec(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
    seeds: list[Seed] = [0]
    data: DataSpec
    model: ModelSpec
    optimizer: OptimizerSpec
    sweep: SweepSpec = SweepSpec()
    scaling: ScalingSpec | None = None
    schedule: SchedulesSpec = SchedulesSpec()
    budget: BudgetSpec
    log: LogSpec = LogSpec()
    diagnostics: DiagnosticsSpec = DiagnosticsSpec()
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["float32", "float64"] = "float32"

    _seed_list = field_validator("seeds", mode="before")(classmethod(lambda cls, v: _as_list(v)))

    @field_validator("seeds")
    @classmethod
    def _seeds_are_a_set(cls, v: list[int]) -> list[int]:
        _check_axis("seeds", v)
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> StudySpec:
        _check_cross_fields(self)
        return self


# ------------------------------------------------------------------------------------------ cross checks


def _check_cross_fields(spec: StudySpec) -> None:
    opt, sweep = spec.optimizer, spec.sweep
    allowed = {"sgd": {"momentum"}, "adam": {"beta1", "beta2", "eps"}, "rmsprop": {"beta2", "eps"}}[opt.name]
    for key in ("momentum", "beta1", "beta2", "eps"):
        if getattr(sweep, key) is not None and key not in allowed:
            raise _FieldProblem(f"sweep.{key}", f"not an axis of optimizer '{opt.name}' (allowed: {sorted(allowed)})")
    kappas = spec.scaling.factors if spec.scaling else [1.0]
    _check_scaled_batch_sizes(spec, kappas)
    if spec.scaling and "sqrt" in spec.scaling.rule:
        _check_sqrt_scaling(spec, kappas)
    if spec.model.name in ("cnn", "preresnet", "vgg") and spec.data.name in ("linreg", "teacher"):
        raise _FieldProblem("model.name",
                            f"'{spec.model.name}' needs sequence or image data (mnist1d, cifar10, cifar100)")
    if spec.diagnostics.online_noise and 1.0 in spec.sweep.svag_l:
        odd = [b for b in sweep.batch_size for k in kappas if round(b * k) % 2]
        if odd:
            raise _FieldProblem("diagnostics.online_noise", f"splits each batch in halves at svag_l = 1: needs even "
                                                            f"batch sizes (got {odd[0]})")
    if spec.budget.sde_time is not None and spec.schedule.lr.kind != "constant":
        raise _FieldProblem("budget.sde_time", "needs a constant lr schedule; give epochs or steps instead")
    if spec.model.name == "linear" and spec.data.name == "linreg" and spec.model.bias:
        raise _FieldProblem("model.bias", "linreg has no intercept; the closed-form test loss needs bias = false")
    _check_sizes(spec)


def _check_scaled_batch_sizes(spec: StudySpec, kappas: list[float]) -> None:
    """Every batch size κ·B of the grid is a whole number no larger than the training set."""
    n_train = _n_train(spec)
    for b in spec.sweep.batch_size:
        for k in kappas:
            scaled = b * k
            if abs(scaled - round(scaled)) > 1e-9:
                raise _FieldProblem("scaling.factors", f"κ={k:g} × batch_size {b} is not an integer batch size")
            if n_train is not None and round(scaled) > n_train:
                where = "sweep.batch_size" if k == 1 else "scaling.factors"
                raise _FieldProblem(where, f"batch size {round(scaled)} exceeds data.n_train = {n_train}")


def _check_sqrt_scaling(spec: StudySpec, kappas: list[float]) -> None:
    """The square-root rule applies to adaptive optimizers, and every scaled β' = 1 − κ(1 − β) stays above 0."""
    if spec.optimizer.name not in ADAPTIVE:
        raise _FieldProblem("scaling.rule", "'sqrt' is the rule for adam/rmsprop; use 'linear' for sgd")
    for beta_key in ("beta1", "beta2"):
        for beta in _axis_values(spec, beta_key):
            for k in kappas:
                if k * (1 - beta) >= 1:
                    raise _FieldProblem(
                        "scaling.factors",
                        f"κ={k:g} makes 1-κ(1-{beta_key}) ≤ 0 for {beta_key}={beta:g}; "
                        f"use κ < {1 / (1 - beta):g} or a larger {beta_key}",
                    )


def _train_size(spec: StudySpec) -> int:
    n = _n_train(spec)
    return CIFAR_TRAIN_SIZE if n is None else n


def _grid_corners(spec: StudySpec) -> list[tuple[int, float, float]]:
    """(batch size, SGD-equivalent learning rate, raw steps per SGD-equivalent step) at the corners of the grid.

    Step, point and sample counts are products of powers of B, η, κ and l, so over the grid each is largest at a
    corner: the smallest and the largest value of each axis (and the largest l) are enough.
    """
    sweep = spec.sweep

    def ends(values: list[Any]) -> list[Any]:
        return sorted({min(values), max(values)})

    path = ([(rule, k) for rule in spec.scaling.rule for k in ends(spec.scaling.factors)] if spec.scaling
            else [(None, 1.0)])
    multiplier = step_multiplier(spec.optimizer.name, max(sweep.svag_l))
    corners = []
    for (rule, k), b, lr in itertools.product(path, ends(sweep.batch_size), ends(sweep.lr)):
        factor = 1.0 if rule is None else (k if rule == "linear" else math.sqrt(k))
        corners.append((max(1, round(b * k)), lr * factor, multiplier))
    return corners


def _sgd_steps(spec: StudySpec, n_train: int, batch_size: int, lr: float) -> float:
    """SGD-equivalent steps of a trial, as :func:`sweeper.train.clock.make_clock` counts them (before rounding)."""
    budget = spec.budget
    if budget.epochs is not None:
        return budget.epochs * n_train / batch_size
    if budget.steps is not None:
        return float(budget.steps)
    per_step = lr**2 if is_adaptive(spec.optimizer.name) else lr
    assert budget.sde_time is not None, "BudgetSpec holds exactly one of epochs, steps, sde_time"
    return budget.sde_time / per_step if per_step > 0 else math.inf


def _check_sizes(spec: StudySpec) -> None:
    """Refuse a study whose trials would run or log absurdly much (the limits at the top of this module)."""
    data = spec.data
    if data.name in ("linreg", "teacher") and (data.n_train + data.n_test) * data.dim > MAX_DATA_VALUES:
        raise _FieldProblem("data.dim", f"(n_train + n_test) × dim = {_big((data.n_train + data.n_test) * data.dim)} "
                                        f"numbers; the limit is {_big(MAX_DATA_VALUES)} (fewer examples or dimensions)")
    n = _train_size(spec)
    budget_key = next(k for k, v in spec.budget if v is not None)
    log = spec.log
    raw = points = epochs = raw_per_epoch = 0.0
    worst_b = 0
    for b, lr, m in _grid_corners(spec):
        sgd = _sgd_steps(spec, n, b, lr)
        if sgd * m > raw:
            raw, worst_b = sgd * m, b
        epochs = max(epochs, sgd * b / n)
        raw_per_epoch = max(raw_per_epoch, n / b * m)
        if log.every_epochs is not None:
            points = max(points, sgd * b / n / log.every_epochs)
        elif log.every_steps is not None:
            points = max(points, sgd / log.every_steps)
    if raw > MAX_RAW_STEPS:
        raise _FieldProblem(f"budget.{budget_key}",
                            f"a trial would take {_big(raw)} raw steps (batch size {worst_b}, svag_l "
                            f"{max(spec.sweep.svag_l):g}); the limit is {_big(MAX_RAW_STEPS)} (a shorter budget)")
    if points + 1 > MAX_POINTS:
        key = "every_epochs" if spec.log.every_epochs is not None else "every_steps"
        cadence = getattr(spec.log, key)
        finest = epochs / MAX_POINTS if key == "every_epochs" else raw / MAX_POINTS
        raise _FieldProblem(f"log.{key}", f"{_shown(cadence)} asks for {_big(points + 1)} points per run; the limit "
                                          f"is {_big(MAX_POINTS)} (a coarser cadence, {key} ≥ {finest:.3g})")
    for kind in ("noise", "covariance", "sharpness"):
        diag = getattr(spec.diagnostics, kind)
        if diag is not None and diag.every_epochs is not None and epochs / diag.every_epochs + 1 > MAX_POINTS:
            raise _FieldProblem(f"diagnostics.{kind}.every_epochs",
                                f"{_shown(diag.every_epochs)} asks for {_big(epochs / diag.every_epochs + 1)} "
                                f"evaluations per run; the limit is {_big(MAX_POINTS)} (every_epochs ≥ "
                                f"{epochs / MAX_POINTS:.3g})")
    traj = spec.diagnostics.trajectory
    if traj is not None:
        window = raw
        if traj.end_epoch is not None:
            window = min(raw, max(traj.end_epoch - traj.start_epoch, 0.0) * raw_per_epoch)
        samples = window / traj.every_steps + 1
        if samples > MAX_TRAJECTORY_SAMPLES:
            raise _FieldProblem("diagnostics.trajectory.every_steps",
                                f"{traj.every_steps} asks for {_big(samples)} samples per run; the limit is "
                                f"{_big(MAX_TRAJECTORY_SAMPLES)} (every_steps ≥ "
                                f"{math.ceil(window / MAX_TRAJECTORY_SAMPLES)}, or a shorter window)")


def _axis_values(spec: StudySpec, key: str) -> list[float]:
    values = getattr(spec.sweep, key)
    if values is not None:
        return values
    return [getattr(spec.optimizer, key)] if hasattr(spec.optimizer, key) else []


def _n_train(spec: StudySpec) -> int | None:
    return getattr(spec.data, "n_train", None)


# ----------------------------------------------------------------------------------------------- loading


def _format_loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        prev = loc[i - 1] if i else None
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif prev in ("data", "model", "optimizer") and item in DATA_NAMES + MODEL_NAMES + OPTIMIZER_NAMES:
            continue  # the union tag pydantic inserts after a discriminated field
        elif item in ("function-after[_cross_checks()]",) or str(item).startswith("function-"):
            continue
        else:
            parts.append(str(item))
    return ".".join(parts) or "spec"


_VALID_NAMES = {"data": DATA_NAMES, "model": MODEL_NAMES, "optimizer": OPTIMIZER_NAMES}


def _error_line(err: ErrorDetails) -> str:
    loc = _format_loc(err["loc"])
    kind, msg = err["type"], err["msg"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        valid = ", ".join(_VALID_NAMES.get(loc, ()))
        got = err.get("ctx", {}).get("tag")
        what = f"unknown {loc} name {got!r}" if got else f"missing {loc}.name"
        return f"{loc}.name: {what}; valid: {valid}"
    if kind == "extra_forbidden":
        return f"{loc}: unknown key (check the spelling; see the spec reference in README.md)"
    if kind == "missing":
        return f"{loc}: required field is missing"
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
        ctx = err.get("ctx", {}).get("error")
        if isinstance(ctx, _FieldProblem):
            return str(ctx)
    return f"{loc}: {msg}" + (f" (got {err['input']!r})" if kind not in ("value_error",) and _short(err) else "")


def _short(err: ErrorDetails) -> bool:
    value = err.get("input")
    return isinstance(value, (int, float, str, bool)) and len(repr(value)) < 60


def parse_spec(raw: dict[str, Any]) -> StudySpec:
    """Validate a study spec from a plain dict; raises :class:`SpecError`."""
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError([_error_line(e) for e in exc.errors(include_url=False)]) from None


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> StudySpec:
    """Read and validate a TOML study file; ``overrides`` (dotted keys) replace values from the file."""
    path = Path(path)
    try:
        raw = tomllib.loads(_read_spec_text(path))
    except FileNotFoundError:
        raise SpecError([f"spec: file not found: {path}"]) from None
    except UnicodeDecodeError as exc:
        raise SpecError([f"spec: {path} is not a text file (not UTF-8 at byte {exc.start}); give a TOML study "
                         f"file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([f"spec: {path} is not valid TOML: {str(exc).splitlines()[0] if str(exc) else exc}"]) \
            from None
    except RecursionError:
        raise SpecError([f"spec: {path} is nested too deeply to be a study file"]) from None
    except OSError as exc:
        raise SpecError([f"spec: cannot read {path}: {exc.strerror or exc}"]) from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return parse_spec(raw)


MAX_SPEC_BYTES = 64 * 2**20


def _read_spec_text(path: Path) -> str:
    """The text of a study file (a regular file or a pipe); a directory, a device or a huge file is refused."""
    if path.is_dir():
        raise SpecError([f"spec: {path} is a directory; give the study file (TOML) inside it"])
    if path.exists() and not (path.is_file() or path.is_fifo()):
        raise SpecError([f"spec: {path} is not a regular file; give a TOML study file"])
    with open(path, "rb") as f:
        blob = f.read(MAX_SPEC_BYTES + 1)
    if len(blob) > MAX_SPEC_BYTES:
        raise SpecError([f"spec: {path} is larger than {MAX_SPEC_BYTES // 2**20} MiB; a study file is a short TOML "
                         f"text"])
    return blob.decode("utf-8")


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def is_adaptive(optimizer_name: str) -> bool:
    return optimizer_name in ADAPTIVE


def step_multiplier(optimizer_name: str, svag_l: float) -> float:
    """Raw steps per SGD-equivalent step: l for the SGD family, ℓ² for adaptive methods (docs/theory.md §1, §3)."""
    return svag_l**2 if is_adaptive(optimizer_name) else svag_l
