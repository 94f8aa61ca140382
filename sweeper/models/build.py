"""`build_model`: name -> builder dispatch with option checking."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from sweeper.models.cnn import build_cnn
from sweeper.models.linear import build_linear
from sweeper.models.mlp import build_mlp
from sweeper.models.preresnet import build_preresnet
from sweeper.models.vgg import build_vgg
from sweeper.names import MODEL_NAMES

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "linear": build_linear,
    "mlp": build_mlp,
    "cnn": build_cnn,
    "preresnet": build_preresnet,
    "vgg": build_vgg,
}


def model_options(name: str) -> tuple[str, ...]:
    """The keyword options model `name` accepts."""
    params = inspect.signature(BUILDERS[name]).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def build_model(name: str, input_shape: tuple[int, ...], num_outputs: int, **options: object) -> nn.Module:
    """Build model `name` mapping `(B, *input_shape) -> (B, num_outputs)`, initialised from torch's global RNG.

    `input_shape` excludes the batch dim: `(d,)` vectors, `(C, L)` sequences, `(C, H, W)` images. Raises
    ValueError naming the model, `input_shape`, `num_outputs` or the option at fault.
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")
    shape = tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}")
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
        raise ValueError(f"num_outputs must be a positive int, got {num_outputs!r}")
    allowed = model_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"model {name!r} got unknown option(s) {', '.join(map(repr, unknown))}; allowed: {allowed}")
    return BUILDERS[name](shape, num_outputs, **options)
