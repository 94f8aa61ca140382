"""Linear model: flatten, then one Linear layer."""

from __future__ import annotations

import math

from torch import nn

from sweeper.models.invariance import mark_scale_invariant
from sweeper.models.options import check_bool


def build_linear(input_shape: tuple[int, ...], num_outputs: int, *, bias: bool = False) -> nn.Module:
    """`(B, *input_shape) -> (B, num_outputs)`. Never scale-invariant."""
    check_bool("bias", bias)
    fc = nn.Linear(math.prod(input_shape), num_outputs, bias=bias)
    return mark_scale_invariant(nn.Sequential(nn.Flatten(1), fc), fc, scale_invariant=False)
