"""Query parameters of the dashboard's routes, checked: a bad value raises :class:`BadRequest` (HTTP 400) whose
one-line message names the parameter, what it got and what it takes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from db.models import POINT_METRICS, RUN_HPARAMS

AXES = ("step", "effective_step", "epoch", "sde_time")
"""Time axes of a trajectory: raw step, SGD-equivalent step, epoch, SDE time (point columns)."""
METRICS = tuple(m for m in POINT_METRICS if m not in AXES)
"""Point columns a trajectory can draw."""
MIN_WIDTH, MAX_WIDTH, DEFAULT_WIDTH = 100, 4000, 800


class BadRequest(ValueError):
    """A request parameter the dashboard cannot use (HTTP 400); the message is one line."""


def choice(query: Mapping[str, str], name: str, options: Sequence[str], default: str) -> str:
    value = query.get(name, default) or default
    if value not in options:
        raise BadRequest(f"{name}: {value!r} is not one of {', '.join(options)}")
    return value


def flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "0").lower()
    if value not in ("0", "1", "true", "false", ""):
        raise BadRequest(f"{name}: {value!r} is not a flag (use 1 or 0)")
    return value in ("1", "true")


def integer(query: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
        raise BadRequest(f"{name}: {raw[:40]!r} is not a whole number from {lo} to {hi}")
    return int(raw)


def positive(query: Mapping[str, str], name: str) -> float | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise BadRequest(f"{name}: {raw[:40]!r} is not a finite number > 0")
    return value


@dataclass(frozen=True)
class PlotQuery:
    """What a trajectory plot draws: ``metric`` against ``axis``, coloured by the run column ``colour``, seeds as
    ``band`` (mean ± one standard deviation over seeds) or ``lines`` (one per run), ``width`` pixels, log x."""

    metric: str
    axis: str
    colour: str
    seeds: str
    width: int
    log_x: bool
    where: str | None

    @classmethod
    def parse(cls, query: Mapping[str, str], default_colour: str = "lr") -> PlotQuery:
        return cls(metric=choice(query, "metric", METRICS, "test_loss"),
                   axis=choice(query, "x", AXES, "sde_time"),
                   colour=choice(query, "colour", RUN_HPARAMS, default_colour),
                   seeds=choice(query, "seeds", ("band", "lines"), "band"),
                   width=integer(query, "width", DEFAULT_WIDTH, MIN_WIDTH, MAX_WIDTH),
                   log_x=flag(query, "logx"),
                   where=query.get("where") or None)
