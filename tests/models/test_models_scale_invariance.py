"""Scale invariance (docs/theory.md §1, §4): with `scale_invariant=True` the output is unchanged when all parameters in
`scale_invariant_parameters(model)` are multiplied by one c > 0.

Norm layers add `eps` to the variance, which breaks invariance by O(eps / var); the exact tests therefore set eps to
a negligible value in float64, and one test bounds the effect of the default eps separately.
In eval mode BatchNorm uses running statistics, which do not follow a rescaling of the weights: invariance holds
when the running mean/var are scaled by c / c² with the weights, or when they are re-collected at the scaled
weights; GroupNorm is invariant in eval mode as is.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sweeper.models import build_model, scale_invariant_parameters

CS = (0.5, 3.0)
TINY_EPS = 1e-20
CASES: list[tuple[str, tuple[int, ...], dict[str, object]]] = [
    ("mlp", (20,), {"width": 64, "depth": 3}),
    ("cnn", (1, 40), {"width": 4, "depth": 3}),
    ("cnn", (3, 8, 8), {"width": 4, "depth": 2}),
    ("preresnet", (1, 40), {"depth": 8, "width": 0.25}),
    ("preresnet", (3, 8, 8), {"depth": 14, "width": 0.25}),
    ("vgg", (1, 40), {"depth": 11, "width": 0.0625}),
    ("vgg", (3, 8, 8), {"depth": 16, "width": 0.0625}),
]
IDS = [f"{name}-{'x'.join(map(str, shape))}" for name, shape, _ in CASES]
NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)


def make(name: str, shape: tuple[int, ...], options: dict[str, object], norm: str, si: bool = True) -> nn.Module:
    """A float64 model in train mode with norm eps set to TINY_EPS."""
    torch.manual_seed(0)
    model = build_model(name, shape, 5, norm=norm, scale_invariant=si, **options).to(torch.float64)
    for m in model.modules():
        if isinstance(m, NORM_TYPES):
            m.eps = TINY_EPS
    return model


def scaled(model: nn.Module, c: float, params: list[nn.Parameter] | None = None, buffers: bool = False) -> nn.Module:
    """A copy of `model` with its scale-invariant params (or those at the same positions as `params`) times c, and
    BatchNorm running mean/var times c / c² if `buffers`."""
    twin = copy.deepcopy(model)
    names = {id(p): n for n, p in model.named_parameters()}
    targets = scale_invariant_parameters(twin) if params is None else [twin.get_parameter(names[id(p)]) for p in params]
    with torch.no_grad():
        for p in targets:
            p.mul_(c)
        for m in twin.modules():
            if buffers and isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.mul_(c)
                m.running_var.mul_(c * c)
    return twin


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def batch(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return torch.randn(8, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("name,shape,options", CASES, ids=IDS)
def test_train_mode_invariance(name: str, shape: tuple[int, ...], options: dict[str, object], norm: str) -> None:
    model = make(name, shape, options, norm)
    x = batch(shape)
    ref = model(x)
    for c in CS:
        assert rel(scaled(model, c)(x), ref) < 1e-9
    # Negative control: rescaling only a strict subset (here the first layer) must change the output, except for
    # the MLP/CNN/VGG whose first layer feeds a norm directly, so rescaling it alone is also an invariance.
    first = scale_invariant_parameters(model)[:1]
    moved = rel(scaled(model, 3.0, first)(x), ref)
    assert (moved > 1e-3) if name == "preresnet" else (moved < 1e-9)


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("name,shape,options", CASES, ids=IDS)
def test_eval_mode_invariance(name: str, shape: tuple[int, ...], options: dict[str, object], norm: str) -> None:
    model = make(name, shape, options, norm)
    batches = [batch(shape, seed) for seed in range(3)]
    for x in batches:  # train-mode forwards set BatchNorm running stats (momentum 0.1, from mean 0 / var 1)
        model(x)
    x = batch(shape, 99)
    ref = model.eval()(x)
    for c in CS:
        naive = rel(scaled(model, c).eval()(x), ref)
        if norm == "gn":
            assert naive < 1e-9  # no running statistics: eval mode is train mode
            continue
        assert naive > 1e-3  # stale running stats do not follow the weights
        assert rel(scaled(model, c, buffers=True).eval()(x), ref) < 1e-9

        # Statistics re-collected at the current weights (cumulative average) scale with them, so eval matches.
        def recollect(m: nn.Module) -> torch.Tensor:
            for bn in m.modules():
                if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                    bn.reset_running_stats()
                    bn.momentum = None
            m.train()
            for xb in batches:
                m(xb)
            return m.eval()(x)

        assert rel(recollect(scaled(model, c)), recollect(copy.deepcopy(model))) < 1e-9


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("name,shape,options", CASES, ids=IDS)
def test_negative_control_without_scale_invariance(
    name: str, shape: tuple[int, ...], options: dict[str, object], norm: str
) -> None:
    """Affine norms + trainable head: rescaling every trainable parameter changes the output."""
    model = make(name, shape, options, norm, si=False)
    assert scale_invariant_parameters(model) == []
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert any(p.ndim == 1 for p in trainable)  # norm affine weights/biases and head bias exist
    x = batch(shape)
    ref = model(x)
    for c in CS:
        assert rel(scaled(model, c, trainable)(x), ref) > 1e-2


@pytest.mark.parametrize("name,shape,options", CASES, ids=IDS)
def test_no_norm_is_not_invariant(name: str, shape: tuple[int, ...], options: dict[str, object]) -> None:
    model = make(name, shape, options, "none", si=False)
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    x = batch(shape)
    assert rel(scaled(model, 3.0, weights)(x), model(x)) > 1e-2


def test_preresnet_invariance_is_joint() -> None:
    """Stem, second block convs and projection shortcuts are only jointly invariant; dropping any group breaks it."""
    model = make("preresnet", (3, 8, 8), {"depth": 14, "width": 0.25}, "bn")
    x = batch((3, 8, 8))
    ref = model(x)
    groups = {
        "stem": lambda n: n.startswith("stem."),
        "conv2": lambda n: n.endswith("conv2.weight"),
        "shortcut": lambda n: "shortcut" in n,
    }
    named = dict(model.named_parameters())
    si = {id(p) for p in scale_invariant_parameters(model)}
    assert any("shortcut" in n for n in named) and all(id(p) in si for n, p in named.items() if "shortcut" in n)
    for group, pick in groups.items():
        rest = [p for n, p in named.items() if id(p) in si and not pick(n)]
        assert rel(scaled(model, 3.0, rest)(x), ref) > 1e-3, group
    conv1 = [p for n, p in named.items() if n.endswith("conv1.weight")]  # each first conv feeds a norm directly
    assert rel(scaled(model, 3.0, conv1)(x), ref) < 1e-9


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("name,shape,options", CASES, ids=IDS)
def test_gradient_orthogonal_to_weights(
    name: str, shape: tuple[int, ...], options: dict[str, object], norm: str
) -> None:
    """Euler's theorem for 0-homogeneous losses: sum over the scale-invariant params of <grad, w> = 0."""
    model = make(name, shape, options, norm)
    x = batch(shape)
    (model(x) * batch((5,), 7)).sum().backward()
    params = scale_invariant_parameters(model)
    dot = sum((p.grad * p).sum() for p in params)
    scale = sum(p.grad.norm() * p.norm() for p in params)
    assert abs(dot.item()) < 1e-9 * scale.item()


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("name,shape,options", CASES, ids=IDS)
def test_frozen_head_and_parameter_bookkeeping(
    name: str, shape: tuple[int, ...], options: dict[str, object], norm: str
) -> None:
    torch.manual_seed(0)
    model = build_model(name, shape, 5, norm=norm, scale_invariant=True, **options)
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)][-1:]
    assert heads and heads[0].bias is None and not heads[0].weight.requires_grad
    params = scale_invariant_parameters(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == len({id(p) for p in params}) == len(trainable) > 0
    assert {id(p) for p in params} == {id(p) for p in trainable}
    assert all(p.ndim >= 2 for p in params)  # weights only: no biases, no norm affine parameters
    assert not any(p for m in model.modules() if isinstance(m, NORM_TYPES) for p in m.parameters())
    # The record survives dtype conversion and deep copies (it names parameters, it does not hold them).
    model.to(torch.float64)
    assert {id(p) for p in scale_invariant_parameters(model)} == {id(p) for p in model.parameters() if p.requires_grad}
    twin = copy.deepcopy(model)
    assert {id(p) for p in scale_invariant_parameters(twin)} == {id(p) for p in twin.parameters() if p.requires_grad}


@pytest.mark.parametrize("name", ["linear", "mlp", "cnn", "preresnet", "vgg"])
def test_not_scale_invariant_has_no_such_parameters(name: str) -> None:
    shape = (20,) if name in ("linear", "mlp") else (1, 40)
    options = {} if name == "linear" else {"norm": "bn"}
    model = build_model(name, shape, 2, **options)
    assert scale_invariant_parameters(model) == []
    assert all(p.requires_grad for p in model.parameters())
    assert scale_invariant_parameters(nn.Linear(3, 2)) == []


def test_wrapped_model_is_found() -> None:
    model = build_model("mlp", (20,), 2, width=16, norm="gn", scale_invariant=True)
    wrapped = nn.Sequential(model)
    assert [id(p) for p in scale_invariant_parameters(wrapped)] == [id(p) for p in scale_invariant_parameters(model)]


@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_default_eps_breaks_invariance_only_slightly(norm: str) -> None:
    """With PyTorch's default eps=1e-5 the invariance is approximate: var + eps vs c²·var + eps."""
    torch.manual_seed(0)
    model = build_model("preresnet", (3, 8, 8), 5, depth=8, width=0.5, norm=norm, scale_invariant=True).double()
    x = batch((3, 8, 8))
    ref = model(x)
    for c in CS:
        assert rel(scaled(model, c)(x), ref) < 1e-3
