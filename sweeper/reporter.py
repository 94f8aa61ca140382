"""The interface between a trial and whatever records it (a test, the CLI, Ray Tune), and an in-memory one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Status = Literal["running", "completed", "diverged"]


@dataclass
class Report:
    """What a trial sends every few seconds: the points logged since the last report.

    ``state`` is a checkpoint at ``step`` (the last point's step) from which the trial resumes bit-for-bit;
    None on the final report. ``info`` carries run facts (device, diverged_step, ...).
    """

    points: list[dict[str, Any]]
    status: Status
    step: int
    state: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    """Rows for the diagnostics table: step, kind, wall_seconds, value, summary (scalars), payload (array)."""


class Reporter(Protocol):
    def checkpoint(self) -> dict[str, Any] | None:
        """The state to resume from, or None to start fresh."""

    def report(self, report: Report) -> None:
        """Record a batch; may raise to stop the trial."""


class ListReporter:
    """Keeps everything in memory; ``stop_after`` reports it raises :class:`StopTrial` (to test restores)."""

    def __init__(self, resume_from: dict[str, Any] | None = None, stop_after: int | None = None):
        self.points: list[dict[str, Any]] = []
        self.diagnostics: list[dict[str, Any]] = []
        self.reports: list[Report] = []
        self.resume_from, self.stop_after = resume_from, stop_after
        self.last_state: dict[str, Any] | None = None

    def checkpoint(self) -> dict[str, Any] | None:
        return self.resume_from

    def report(self, report: Report) -> None:
        self.reports.append(report)
        self.points.extend(report.points)
        self.diagnostics.extend(report.diagnostics)
        if report.state is not None:
            self.last_state = report.state
        if self.stop_after is not None and len(self.reports) >= self.stop_after:
            raise StopTrial


class StopTrial(Exception):
    """Raised by a reporter to end a trial early (the trial does not catch it)."""
