"""CIFAR-style VGG-11/16: 3x3 conv -> norm -> ReLU stacks with max pools, global average pool, one Linear head."""

from __future__ import annotations

from torch import nn

from sweeper.models import layers
from sweeper.models.invariance import head, mark_scale_invariant
from sweeper.models.options import Norm, check_bool, check_norm, check_positive_float, scaled_channels

POOL = "M"
CONFIGS: dict[int, tuple[int | str, ...]] = {
    11: (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    16: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL),
}


def build_vgg(
    input_shape: tuple[int, ...],
    num_outputs: int,
    *,
    depth: int = 16,
    width: float = 1.0,
    norm: Norm = "bn",
    scale_invariant: bool = False,
) -> nn.Module:
    """`(B, C, L)` or `(B, C, H, W)` -> `(B, num_outputs)`. Channels are `round(c * width)` for c in 64..512; a max
    pool is skipped when a spatial side is already below 2 (so (1, 40) sequences work). Convs have a bias only if
    `norm='none'`."""
    if depth not in CONFIGS or isinstance(depth, bool):
        raise ValueError(f"option 'depth' must be one of {tuple(CONFIGS)}, got {depth!r}")
    check_positive_float("width", width)
    check_bool("scale_invariant", scale_invariant)
    check_norm(norm, scale_invariant)
    dims = layers.spatial_dims(input_shape, "vgg")
    channels, size = input_shape[0], tuple(input_shape[1:])
    blocks: list[nn.Module] = []
    for item in CONFIGS[depth]:
        if item == POOL:
            if min(size) >= 2:
                blocks.append(layers.max_pool(dims))
                size = layers.halved(size)
            continue
        out = scaled_channels(int(item), width)
        blocks += [
            layers.conv(dims, channels, out, bias=norm == "none"),
            layers.norm(norm, dims, out, affine=not scale_invariant),
            nn.ReLU(),
        ]
        channels = out
    fc = head(channels, num_outputs, scale_invariant)
    return mark_scale_invariant(nn.Sequential(*blocks, layers.global_avg_pool(dims), fc), fc, scale_invariant)
