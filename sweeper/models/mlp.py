"""Multi-layer perceptron: `depth` blocks Linear -> norm -> ReLU, then a Linear head."""

from __future__ import annotations

import math

from torch import nn

from sweeper.models import layers
from sweeper.models.invariance import head, mark_scale_invariant
from sweeper.models.options import Norm, check_bool, check_norm, check_positive_int


def build_mlp(
    input_shape: tuple[int, ...],
    num_outputs: int,
    *,
    width: int = 256,
    depth: int = 2,
    norm: Norm = "none",
    scale_invariant: bool = False,
) -> nn.Module:
    """`(B, *input_shape) -> (B, num_outputs)` (input flattened). `width` hidden units in each of `depth` hidden
    layers; "gn" normalizes groups of features of each example. Hidden Linears have a bias only if `norm='none'`."""
    check_positive_int("width", width)
    check_positive_int("depth", depth)
    check_bool("scale_invariant", scale_invariant)
    check_norm(norm, scale_invariant)
    blocks: list[nn.Module] = [nn.Flatten(1)]
    features = math.prod(input_shape)
    for _ in range(depth):
        blocks += [
            nn.Linear(features, width, bias=norm == "none"),
            layers.norm(norm, 0, width, affine=not scale_invariant),
            nn.ReLU(),
        ]
        features = width
    fc = head(features, num_outputs, scale_invariant)
    return mark_scale_invariant(nn.Sequential(*blocks, fc), fc, scale_invariant)
