"""The checks by name, and running them on a study."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from sweeper.checks.base import StudyData, Verdict
from sweeper.names import CHECK_NAMES

MODULES = {name: f"sweeper.checks.{name.replace('-', '_')}" for name in CHECK_NAMES}


def module(name: str) -> ModuleType:
    if name not in MODULES:
        raise KeyError(f"unknown check {name!r}; valid: {', '.join(MODULES)}, all")
    return importlib.import_module(MODULES[name])


UNFINISHED = ("pending", "running", "interrupted")


def run_check(name: str, data: StudyData, metric: str | None = None, tolerance: float | None = None) -> Verdict:
    """The check's verdict; on a study with unfinished runs it is INCONCLUSIVE, with what the finished runs alone
    say kept as ``details["provisional"]`` (a verdict never claims more than the finished runs support: a later
    κ may still fail, more seeds may still move an estimate)."""
    verdict = module(name).check(data, metric=metric, tolerance=tolerance)
    open_ = int(data.runs.status.isin(UNFINISHED).sum()) if "status" in data.runs else 0
    if not open_ or verdict.verdict == "INCONCLUSIVE":
        return verdict
    verdict.details["provisional"] = {"verdict": verdict.verdict, "summary": verdict.summary}
    verdict.summary = (f"Provisional ({open_} of {len(data.runs)} runs unfinished): on the finished runs alone, "
                       f"{verdict.verdict} — {verdict.summary}")
    verdict.verdict = "INCONCLUSIVE"
    verdict.missing = [f"the study's {open_} unfinished run(s): let it finish (or `sweeper resume`), then check again"]
    return verdict


def run_all(data: StudyData) -> list[Verdict]:
    """Every check with its defaults (INCONCLUSIVE ones say what the study lacks)."""
    return [run_check(name, data) for name in MODULES]


def figure(name: str, data: StudyData, verdict: Verdict) -> Any:
    """The check's figure for this verdict (None when it has nothing to draw)."""
    return module(name).figure(data, verdict)
