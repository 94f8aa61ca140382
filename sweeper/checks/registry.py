"""The checks by name, and running them on a study."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from sweeper.checks.base import StudyData, Verdict

MODULES = {
    "lsr": "sweeper.checks.lsr",
    "sqrt-rule": "sweeper.checks.sqrt_rule",
    "svag": "sweeper.checks.svag",
    "nsr": "sweeper.checks.nsr",
    "intrinsic-lr": "sweeper.checks.intrinsic_lr",
    "noise-rank": "sweeper.checks.noise_rank",
    "limit-cycles": "sweeper.checks.limit_cycles",
    "sharpness": "sweeper.checks.sharpness",
}


def module(name: str) -> ModuleType:
    if name not in MODULES:
        raise KeyError(f"unknown check {name!r}; valid: {', '.join(MODULES)}, all")
    return importlib.import_module(MODULES[name])


def run_check(name: str, data: StudyData, metric: str | None = None, tolerance: float | None = None) -> Verdict:
    return module(name).check(data, metric=metric, tolerance=tolerance)


def run_all(data: StudyData) -> list[Verdict]:
    """Every check with its defaults (INCONCLUSIVE ones say what the study lacks)."""
    return [run_check(name, data) for name in MODULES]


def figure(name: str, data: StudyData, verdict: Verdict) -> Any:
    """The check's figure for this verdict (None when it has nothing to draw)."""
    return module(name).figure(data, verdict)
