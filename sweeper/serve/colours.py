"""Colours of plotted groups: numbers along viridis by rank (κ, η, B are usually geometric), other values from a
categorical palette; the page draws the legend from :func:`palette`'s pairs."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from typing import Any

VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b",
           "#fde725"]
CATEGORICAL = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf"]
MISSING = "#999999"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mix(a: str, b: str, t: float) -> str:
    ca, cb = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in (a, b))
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb, strict=True))


def _viridis(t: float) -> str:
    """The colour at t ∈ [0, 1] (0.9 at most, so the lightest stays visible on white)."""
    pos = min(max(t, 0.0), 1.0) * 0.9 * (len(VIRIDIS) - 1)
    i = min(int(pos), len(VIRIDIS) - 2)
    return _mix(VIRIDIS[i], VIRIDIS[i + 1], pos - i)


def palette(values: Iterable[Hashable]) -> dict[Hashable, str]:
    """A colour per distinct value: numbers by rank along viridis, others categorical; None grey."""
    values = list(values)
    distinct = sorted({v for v in values if v is not None},
                      key=lambda v: (0, v, "") if _is_number(v) else (1, 0, str(v)))
    numbers = [v for v in distinct if _is_number(v)]
    out: dict[Hashable, str] = {v: _viridis(i / max(len(numbers) - 1, 1)) for i, v in enumerate(numbers)}
    others = [v for v in distinct if not _is_number(v)]
    out.update({v: CATEGORICAL[i % len(CATEGORICAL)] for i, v in enumerate(others)})
    if any(v is None for v in values):
        out[None] = MISSING
    return out
