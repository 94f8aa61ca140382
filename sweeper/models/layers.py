"""Layer factory shared by the conv models: picks 1-D or 2-D layer classes by the number of spatial dims.

Tensors are `(batch, channels, *spatial)` with `len(spatial) == dims`, `dims` in {1, 2}; `dims == 0` means
feature vectors `(batch, features)` (used by the MLP's norms).

Normalization conventions:
- "bn": BatchNorm{1d,2d}.
- "gn": GroupNorm with the largest divisor of `channels` that is <= 8 as the number of groups (8 groups for the
  usual channel counts; the divisor rule keeps fractional width multipliers valid). Tiny groups (an MLP of width 16
  has 2 features per group) make the eps in var + eps visible: scale invariance then holds only roughly.
- "none": Identity.
`affine=False` (scale-invariant models) drops the norm's weight and bias.
"""

from __future__ import annotations

from torch import nn

from sweeper.models.options import Norm

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_BATCH_NORM = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
_AVG_POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}

MAX_GROUPS = 8


def spatial_dims(input_shape: tuple[int, ...], model: str) -> int:
    """Number of spatial dims of `(C, L)` (1) or `(C, H, W)` (2) inputs; ValueError for other shapes."""
    if len(input_shape) not in (2, 3) or any(s < 1 for s in input_shape):
        raise ValueError(
            f"model '{model}' needs input_shape (C, L) or (C, H, W), got input_shape={tuple(input_shape)}"
        )
    return len(input_shape) - 1


def conv(dims: int, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, bias: bool = True) -> nn.Module:
    """Conv{1d,2d} with 'same' padding for odd `kernel`: `(B, in_ch, *S) -> (B, out_ch, *ceil(S / stride))`."""
    return _CONV[dims](in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=bias)


def group_count(channels: int) -> int:
    """Largest divisor of `channels` not exceeding MAX_GROUPS."""
    return max(g for g in range(1, min(MAX_GROUPS, channels) + 1) if channels % g == 0)


def norm(kind: Norm, dims: int, channels: int, affine: bool = True) -> nn.Module:
    """Normalization over `channels` for `(B, channels, *spatial)` (or `(B, channels)` when `dims == 0`)."""
    if kind == "bn":
        return _BATCH_NORM[dims](channels, affine=affine)
    if kind == "gn":
        return nn.GroupNorm(group_count(channels), channels, affine=affine)
    return nn.Identity()


def max_pool(dims: int) -> nn.Module:
    """2x max pool: `(B, C, *S) -> (B, C, *floor(S / 2))`."""
    return _MAX_POOL[dims](2)


def global_avg_pool(dims: int) -> nn.Module:
    """Global average pool and flatten: `(B, C, *S) -> (B, C)`."""
    return nn.Sequential(_AVG_POOL[dims](1), nn.Flatten(1))


def halved(size: tuple[int, ...]) -> tuple[int, ...]:
    """Spatial size after a 2x max pool (floor)."""
    return tuple(s // 2 for s in size)

