"""Verdicts of a study: every check's latest verdict with its history, and running a check — the dashboard's only
write, done exactly as ``sweeper check NAME STUDY`` does it (``registry.run_check`` on ``StudyData.load``, then
``base.store``: a row appended to ``verdicts``)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.engine import Engine

from db.queries import verdicts_frame
from sweeper.checks import registry
from sweeper.checks.base import StudyData, store
from sweeper.serve.overview import records
from sweeper.serve.params import BadRequest


def history(engine: Engine, name: str) -> dict[str, Any]:
    """``checks``: the check names; ``latest``: per check that ran, its newest verdict (statistic, tolerance,
    summary, evidence, missing) with ``history``, its earlier verdicts newest first (id, time, verdict,
    statistic)."""
    rows = records(verdicts_frame(engine, name))
    latest: dict[str, dict[str, Any]] = {}
    for row in reversed(rows):  # newest first
        evidence = row.pop("evidence") or {}
        entry = {**row, **{k: evidence.get(k) for k in ("summary", "tolerance", "evidence", "missing")}}
        if row["check"] not in latest:
            latest[row["check"]] = {**entry, "history": []}
        else:
            latest[row["check"]]["history"].append(
                {k: row[k] for k in ("id", "created_at", "verdict", "statistic")} | {"summary": entry["summary"]})
    return {"checks": list(registry.MODULES), "latest": list(latest.values())}


def run(engine: Engine, name: str, check: str, metric: str | None = None,
        tolerance: float | None = None) -> dict[str, Any]:
    """Run ``check`` on the study and store its verdict; returns the verdict (``Verdict.as_json``)."""
    if check not in registry.MODULES:
        raise BadRequest(f"check: unknown check {check!r}; valid: {', '.join(registry.MODULES)}")
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance > 0):
        raise BadRequest(f"tolerance: must be a finite number > 0 (got {tolerance:g})")
    verdict = registry.run_check(check, StudyData.load(engine, name), metric, tolerance)
    store(engine, name, verdict)
    return verdict.as_json()
