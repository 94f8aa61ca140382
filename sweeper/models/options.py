"""Validation of model options; every error is a ValueError that names the offending option."""

from __future__ import annotations

from typing import Literal, get_args

Norm = Literal["bn", "gn", "none"]
NORMS: tuple[str, ...] = get_args(Norm)


def check_bool(name: str, value: object) -> bool:
    """Return `value` if it is a bool, else raise ValueError naming `name`."""
    if not isinstance(value, bool):
        raise ValueError(f"option '{name}' must be a bool, got {value!r}")
    return value


def check_positive_int(name: str, value: object) -> int:
    """Return `value` if it is an int >= 1 (bools rejected), else raise ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"option '{name}' must be a positive int, got {value!r}")
    return value


def check_positive_float(name: str, value: object) -> float:
    """Return `value` as float if it is a real number > 0, else raise ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"option '{name}' must be a positive number, got {value!r}")
    return float(value)


def check_norm(norm: object, scale_invariant: bool) -> Norm:
    """Validate `norm`; scale invariance needs a normalization layer, so `norm='none'` is refused with it."""
    if norm not in NORMS:
        raise ValueError(f"option 'norm' must be one of {NORMS}, got {norm!r}")
    if scale_invariant and norm == "none":
        raise ValueError(
            "option 'scale_invariant=True' needs a normalization layer: set option 'norm' to 'bn' or 'gn', not 'none'"
        )
    return norm  # type: ignore[return-value]


def scaled_channels(base: int, width: float) -> int:
    """Channel count `round(base * width)`, at least 1."""
    return max(1, round(base * width))
