"""Output shapes, dtypes, determinism and option validation of `sweeper.models.build_model`."""

from __future__ import annotations

import pytest
import torch

from sweeper.models import MODEL_NAMES, build_model, model_options

VECTOR, SEQUENCE, IMAGE = (20,), (1, 40), (3, 32, 32)
CONV_MODELS = ("cnn", "preresnet", "vgg")
# Small but structurally complete options, to keep float64 forwards fast.
SMALL: dict[str, dict[str, object]] = {
    "linear": {"bias": True},
    "mlp": {"width": 32, "depth": 3, "norm": "bn"},
    "cnn": {"width": 8, "depth": 4, "norm": "gn"},
    "preresnet": {"depth": 20, "width": 0.5},
    "vgg": {"depth": 11, "width": 0.125},
}


def applicable(name: str) -> list[tuple[int, ...]]:
    return [SEQUENCE, IMAGE] if name in CONV_MODELS else [VECTOR, SEQUENCE, IMAGE]


CASES = [(name, shape) for name in MODEL_NAMES for shape in applicable(name)]


def test_model_names() -> None:
    assert MODEL_NAMES == ("linear", "mlp", "cnn", "preresnet", "vgg")


@pytest.mark.parametrize("name,shape", CASES)
def test_default_options_output_shape(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build_model(name, shape, 10)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10) and out.dtype == torch.float32 and torch.isfinite(out).all()


SI_CASES = [(n, s, False) for n, s in CASES] + [(n, s, True) for n, s in CASES if n != "linear"]


@pytest.mark.parametrize("name,shape,scale_invariant", SI_CASES)
def test_float64_and_single_output(name: str, shape: tuple[int, ...], scale_invariant: bool) -> None:
    options = dict(SMALL[name], **({"scale_invariant": True} if scale_invariant else {}))
    torch.manual_seed(0)
    model = build_model(name, shape, 1, **options).to(torch.float64)
    out = model(torch.randn(3, *shape, dtype=torch.float64))
    assert out.shape == (3, 1) and out.dtype == torch.float64 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["cnn", "vgg", "preresnet"])
@pytest.mark.parametrize("shape", [(2, 7), (1, 5, 3), (1, 1)])
def test_odd_and_tiny_spatial_sizes(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, shape, 4, **{k: v for k, v in SMALL[name].items() if k != "norm"}, norm="gn")
    assert model(torch.randn(2, *shape)).shape == (2, 4)


@pytest.mark.parametrize("norm", ["bn", "gn", "none"])
def test_every_norm_builds(norm: str) -> None:
    for name in ("mlp", "cnn", "preresnet", "vgg"):
        shape = VECTOR if name == "mlp" else SEQUENCE
        options = {**SMALL[name], "norm": norm}
        assert build_model(name, shape, 3, **options)(torch.randn(4, *shape)).shape == (4, 3)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_init_follows_global_rng(name: str) -> None:
    shape = applicable(name)[0]

    def params(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [p.detach().clone() for p in build_model(name, shape, 3, **SMALL[name]).parameters()]

    a, b, c = params(1), params(1), params(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_layer_classes_follow_dimensionality() -> None:
    seq = build_model("preresnet", SEQUENCE, 2, depth=8, width=0.25)
    img = build_model("preresnet", IMAGE, 2, depth=8, width=0.25)
    assert any(isinstance(m, torch.nn.Conv1d) for m in seq.modules())
    assert not any(isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d)) for m in seq.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in img.modules())
    assert not any(isinstance(m, torch.nn.Conv1d) for m in img.modules())


def test_vgg_skips_pools_at_size_one() -> None:
    pools = list(build_model("vgg", SEQUENCE, 2, depth=16, width=0.125).modules())
    assert sum(isinstance(m, torch.nn.MaxPool1d) for m in pools) == 5  # 40 -> 20 -> 10 -> 5 -> 2 -> 1
    tiny = build_model("vgg", (1, 4), 2, depth=11, width=0.125)
    assert sum(isinstance(m, torch.nn.MaxPool1d) for m in tiny.modules()) == 2  # 4 -> 2 -> 1, then skipped


def test_options_are_per_model() -> None:
    assert model_options("linear") == ("bias",)
    assert set(model_options("mlp")) == {"width", "depth", "norm", "scale_invariant"}
    assert set(model_options("vgg")) == set(model_options("preresnet")) == set(model_options("cnn"))


INVALID = [
    ("linear", VECTOR, {"width": 3}, "width"),
    ("linear", VECTOR, {"scale_invariant": True}, "scale_invariant"),
    ("linear", VECTOR, {"bias": 1}, "bias"),
    ("mlp", VECTOR, {"bias": True}, "bias"),
    ("mlp", VECTOR, {"norm": "batch"}, "norm"),
    ("mlp", VECTOR, {"width": 0}, "width"),
    ("mlp", VECTOR, {"width": 2.5}, "width"),
    ("mlp", VECTOR, {"depth": 0}, "depth"),
    ("mlp", VECTOR, {"scale_invariant": "yes"}, "scale_invariant"),
    ("cnn", SEQUENCE, {"depth": -1}, "depth"),
    ("cnn", SEQUENCE, {"kernel": 5}, "kernel"),
    ("cnn", VECTOR, {}, "input_shape"),
    ("cnn", (1, 2, 3, 4), {}, "input_shape"),
    ("preresnet", IMAGE, {"depth": 21}, "depth"),
    ("preresnet", IMAGE, {"depth": 2}, "depth"),
    ("preresnet", IMAGE, {"depth": 20.0}, "depth"),
    ("preresnet", IMAGE, {"width": 0.0}, "width"),
    ("preresnet", IMAGE, {"norm": "ln"}, "norm"),
    ("preresnet", VECTOR, {}, "input_shape"),
    ("vgg", IMAGE, {"depth": 13}, "depth"),
    ("vgg", IMAGE, {"width": -1.0}, "width"),
    ("vgg", IMAGE, {"norm": None}, "norm"),
    ("resnet", IMAGE, {}, "resnet"),
    ("mlp", (), {}, "input_shape"),
    ("mlp", (0, 3), {}, "input_shape"),
    ("mlp", VECTOR, {"num_outputs_": 1}, "num_outputs_"),
]


@pytest.mark.parametrize("name,shape,options,option", INVALID)
def test_invalid_options_raise_naming_the_option(
    name: str, shape: tuple[int, ...], options: dict[str, object], option: str
) -> None:
    with pytest.raises(ValueError, match=option):
        build_model(name, shape, 2, **options)


def test_invalid_num_outputs() -> None:
    with pytest.raises(ValueError, match="num_outputs"):
        build_model("mlp", VECTOR, 0)


@pytest.mark.parametrize("name", ["mlp", "cnn", "preresnet", "vgg"])
def test_scale_invariant_needs_a_norm(name: str) -> None:
    shape = VECTOR if name == "mlp" else SEQUENCE
    with pytest.raises(ValueError, match=r"scale_invariant.*norm"):
        build_model(name, shape, 2, norm="none", scale_invariant=True)
