"""Small conv net: `depth` stages conv3 -> norm -> ReLU -> maxpool/2, global average pool, Linear head."""

from __future__ import annotations

from torch import nn

from sweeper.models import layers
from sweeper.models.invariance import head, mark_scale_invariant
from sweeper.models.options import Norm, check_bool, check_norm, check_positive_int


def build_cnn(
    input_shape: tuple[int, ...],
    num_outputs: int,
    *,
    width: int = 32,
    depth: int = 3,
    norm: Norm = "none",
    scale_invariant: bool = False,
) -> nn.Module:
    """`(B, C, L)` or `(B, C, H, W)` -> `(B, num_outputs)`. Stage i has `width * 2**i` channels; its max pool is
    skipped once a spatial side is below 2. Convs have a bias only if `norm='none'`."""
    check_positive_int("width", width)
    check_positive_int("depth", depth)
    check_bool("scale_invariant", scale_invariant)
    check_norm(norm, scale_invariant)
    dims = layers.spatial_dims(input_shape, "cnn")
    channels, size = input_shape[0], tuple(input_shape[1:])
    blocks: list[nn.Module] = []
    for stage in range(depth):
        out = width * 2**stage
        blocks += [
            layers.conv(dims, channels, out, bias=norm == "none"),
            layers.norm(norm, dims, out, affine=not scale_invariant),
            nn.ReLU(),
        ]
        if min(size) >= 2:
            blocks.append(layers.max_pool(dims))
            size = layers.halved(size)
        channels = out
    fc = head(channels, num_outputs, scale_invariant)
    return mark_scale_invariant(nn.Sequential(*blocks, layers.global_avg_pool(dims), fc), fc, scale_invariant)
