"""Pre-activation ResNet for CIFAR (He et al. 2016, "Identity Mappings"), 1-D or 2-D.

stem conv3 (16w ch) -> 3 stages of n basic blocks (16w, 32w, 64w ch; strides 1, 2, 2) -> norm -> ReLU -> global
average pool -> Linear head; depth = 6n + 2. Block: a = ReLU(norm(x)); out = conv3(ReLU(norm(conv3(a)))) + s,
s = x, or a 1x1 conv of `a` where the shape changes.

Scale invariance: with all convs scaled by c the residual stream is multiplied by c (stem c·, branches c·, identity
and projection shortcuts c·), and every norm sees a 1-homogeneous input, so the output is 0-homogeneous in the
stem, block and shortcut convs *jointly* (each block's first conv is also invariant on its own; stem, second and
shortcut convs are not). The projection shortcut must read the pre-activated `a`, not `x`, for this to hold.
"""

from __future__ import annotations

import torch
from torch import nn

from sweeper.models import layers
from sweeper.models.invariance import head, mark_scale_invariant
from sweeper.models.options import Norm, check_bool, check_norm, check_positive_float, scaled_channels

BASE_CHANNELS = (16, 32, 64)


class PreActBlock(nn.Module):
    """`(B, in_ch, *S) -> (B, out_ch, *ceil(S / stride))`."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, stride: int, norm: Norm, affine: bool) -> None:
        super().__init__()
        bias = norm == "none"
        self.norm1 = layers.norm(norm, dims, in_ch, affine)
        self.conv1 = layers.conv(dims, in_ch, out_ch, 3, stride, bias)
        self.norm2 = layers.norm(norm, dims, out_ch, affine)
        self.conv2 = layers.conv(dims, out_ch, out_ch, 3, 1, bias)
        self.shortcut = layers.conv(dims, in_ch, out_ch, 1, stride, bias) if stride != 1 or in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.norm1(x))
        skip = x if self.shortcut is None else self.shortcut(a)
        return self.conv2(torch.relu(self.norm2(self.conv1(a)))) + skip


class PreResNet(nn.Module):
    """`(B, C, L)` or `(B, C, H, W)` -> `(B, num_outputs)`."""

    def __init__(
        self, dims: int, in_ch: int, num_outputs: int, blocks_per_stage: int, width: float, norm: Norm, si: bool
    ) -> None:
        super().__init__()
        channels = [scaled_channels(c, width) for c in BASE_CHANNELS]
        self.stem = layers.conv(dims, in_ch, channels[0], 3, 1, bias=norm == "none")
        blocks: list[nn.Module] = []
        prev = channels[0]
        for stage, out in enumerate(channels):
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(PreActBlock(dims, prev, out, stride, norm, affine=not si))
                prev = out
        self.blocks = nn.Sequential(*blocks)
        self.final_norm = layers.norm(norm, dims, prev, affine=not si)
        self.pool = layers.global_avg_pool(dims)
        self.head = head(prev, num_outputs, si)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(self.pool(torch.relu(self.final_norm(x))))


def build_preresnet(
    input_shape: tuple[int, ...],
    num_outputs: int,
    *,
    depth: int = 32,
    width: float = 1.0,
    norm: Norm = "bn",
    scale_invariant: bool = False,
) -> nn.Module:
    """PreResNet-`depth` (6n+2: 20, 32, 56, ...) with channels `round(c * width)`, c in 16/32/64. Convs have a bias
    only if `norm='none'`."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"option 'depth' must be 6n+2 (20, 32, 56, ...), got {depth!r}")
    check_positive_float("width", width)
    check_bool("scale_invariant", scale_invariant)
    check_norm(norm, scale_invariant)
    dims = layers.spatial_dims(input_shape, "preresnet")
    model = PreResNet(dims, input_shape[0], num_outputs, (depth - 2) // 6, width, norm, scale_invariant)
    return mark_scale_invariant(model, model.head, scale_invariant)
