"""What the dashboard computed from a study, kept while the study is unchanged: polls and other tabs of a study
that did not change cost one cheap query, the trajectory and scaling plots share one read of the points, and when
a few runs changed (a running study between two polls) only theirs are read again.

A study's :func:`stamp` changes whenever anything the dashboard shows from it changes: its live status (a stale
heartbeat reads as interrupted), any column of any of its runs (status, times, counts, error, host, …), a run's last
stored step (the writers append a run's points in step order and ignore a step stored already), its diagnostics
count and its verdicts; it also marks each run, so that what changed can be told run by run. It reads the study's
run rows and one index seek per run: ~10 ms for 1,000 runs.

:class:`Memo` keeps values with the stamp they were computed at; a lookup with another stamp computes afresh,
possibly from the value kept (the stamp is read before the data, so a value is never older than its stamp, and a
run written between the two is read again at the next stamp). :class:`StudyCache` holds the app's memos: ``views``
(JSON bodies and runs tables: up to ~1 MB each for 1,000 runs) and ``points`` (a study's x/metric columns, ~24 MB
per million points, so only a few are kept).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from db.models import Diagnostic, Run, Verdict
from db.queries import resolve_study, study_status
from sweeper.serve import buckets, overview

T = TypeVar("T")


@dataclass(frozen=True)
class Stamp:
    """A study as of one read: ``text`` changes whenever anything the dashboard shows from it changes; ``status``
    is its live status; ``runs`` holds per run a marker that changes with the run's row or last step."""

    text: str
    status: str
    runs: dict[int, str]

    def changed(self, runs: dict[int, str]) -> list[int]:
        """The runs whose marker differs from ``runs`` (an earlier stamp's), new runs included."""
        return [r for r, marker in self.runs.items() if runs.get(r) != marker]


def _digest(value: object) -> str:
    return hashlib.blake2b(repr(value).encode(), digest_size=12).hexdigest()


def stamp(conn: Connection, study_id: int) -> Stamp:
    """The study's :class:`Stamp`: its run rows with each run's last step, diagnostics count and verdicts."""
    columns = [c for c in Run.__table__.columns if c.name != "config"]
    rows = conn.execute(sa.select(*columns, overview.last_step()).where(Run.study_id == study_id)
                        .order_by(Run.id)).all()
    runs = {int(r[0]): _digest(tuple(r)) for r in rows}
    run_ids = sa.select(Run.id).where(Run.study_id == study_id).scalar_subquery()
    diagnostics = conn.execute(sa.select(sa.func.count()).where(Diagnostic.run_id.in_(run_ids))).scalar_one()
    verdicts = conn.execute(sa.select(sa.func.count(), sa.func.max(Verdict.id))
                            .where(Verdict.study_id == study_id)).one()
    status = study_status(conn, study_id)
    return Stamp(_digest((status, runs, diagnostics, tuple(verdicts))), status, runs)


@dataclass(frozen=True)
class PerRun(Generic[T]):
    """A value built run by run (``value``), with the stamp's ``status`` and run markers it was built at."""

    status: str
    runs: dict[int, str]
    value: T


FEW_RUNS = 1000
"""At most this many runs are read again by id (an id list far below SQLite's 32,766 bound parameters)."""


def few(changed: list[int], stamp_: Stamp) -> bool:
    """Whether re-reading ``changed`` runs only is worth it (else everything is read again)."""
    return len(changed) <= min(len(stamp_.runs) // 2, FEW_RUNS)


class Memo:
    """Values by key, each with the stamp it was computed at; the ``size`` most recently used are kept. Lookups
    of one key compute it once at a time (a second waits for the first and takes its value). ``computed`` counts
    the computations."""

    def __init__(self, size: int):
        self.size, self.computed = size, 0
        self._entries: OrderedDict[Hashable, tuple[str, Any]] = OrderedDict()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, stamp_: str, compute: Callable[[], T]) -> T:
        """The value of ``key`` at ``stamp_``: kept, or computed now by ``compute`` (an exception keeps nothing)."""
        return self.update(key, stamp_, lambda _: compute())

    def update(self, key: Hashable, stamp_: str, compute: Callable[[Any], T]) -> T:
        """As :meth:`get`, but ``compute`` gets the value kept at another stamp (None if none) to build on."""
        with self._lock:
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                kept = self._entries.get(key)
                if kept is not None and kept[0] == stamp_:
                    self._entries.move_to_end(key)
                    return kept[1]
            value = compute(None if kept is None else kept[1])
            with self._lock:
                self.computed += 1
                self._entries[key] = (stamp_, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    dropped, _ = self._entries.popitem(last=False)
                    self._locks.pop(dropped, None)
        return value


class StudyCache:
    """The memos of one dashboard app over ``engine``. The runs table and the point columns are kept run by run:
    when a few runs changed, only theirs are read again."""

    def __init__(self, engine: Engine, views: int = 64, points: int = 4):
        self.engine = engine
        self.views, self.points = Memo(views), Memo(points)

    def stamp(self, name: str) -> tuple[int, Stamp]:
        """The study's id and current stamp (UnknownStudy when there is no such study)."""
        with self.engine.connect() as conn:
            study_id = resolve_study(conn, name)
            return study_id, stamp(conn, study_id)

    def view(self, study_id: int, stamp_: Stamp, key: Hashable, compute: Callable[[], T]) -> T:
        return self.views.get((study_id, key), stamp_.text, compute)

    def table(self, study_id: int, stamp_: Stamp, where: str | None) -> pd.DataFrame:
        """``overview.runs_table(where)``, unsorted: the runs that changed since it was kept are read again."""
        def build(kept: PerRun[pd.DataFrame] | None) -> PerRun[pd.DataFrame]:
            changed = stamp_.changed(kept.runs) if kept is not None else []
            if kept is None or kept.status != stamp_.status or not few(changed, stamp_):
                return PerRun(stamp_.status, stamp_.runs, overview.runs_table(self.engine, study_id, where))
            frame = kept.value[kept.value.run_id.isin(stamp_.runs) & ~kept.value.run_id.isin(changed)]
            if changed:
                ids = f"run_id in ({', '.join(map(str, changed))})"
                fresh = overview.runs_table(self.engine, study_id, ids if where is None else f"({where}) and {ids}")
                if len(fresh):
                    frame = pd.concat([frame, fresh], ignore_index=True)
                frame = frame.sort_values(["trial_index", "run_id"], kind="stable", ignore_index=True)
            return PerRun(stamp_.status, stamp_.runs, frame)

        return self.views.update((study_id, "table", where), stamp_.text, build).value

    def point_count(self, study_id: int, stamp_: Stamp) -> int:
        """Points stored for the study: the runs that changed since it was kept are counted again."""
        def build(kept: PerRun[dict[int, int]] | None) -> PerRun[dict[int, int]]:
            changed = stamp_.changed(kept.runs) if kept is not None else []
            if kept is None or not few(changed, stamp_):
                return PerRun(stamp_.status, stamp_.runs, overview.run_point_counts(self.engine, study_id))
            again = set(changed)
            counts = {r: n for r, n in kept.value.items() if r in stamp_.runs and r not in again}
            if changed:
                counts.update(overview.run_point_counts(self.engine, study_id, changed))
            return PerRun(stamp_.status, stamp_.runs, counts)

        return sum(self.views.update((study_id, "point counts"), stamp_.text, build).value.values())

    def series(self, study_id: int, stamp_: Stamp, axis: str, metric: str) -> buckets.Series:
        """``metric`` against ``axis`` for every run of the study (:func:`buckets.read`): the runs that changed
        since it was kept are read again."""
        def build(kept: PerRun[buckets.Series] | None) -> PerRun[buckets.Series]:
            changed = stamp_.changed(kept.runs) if kept is not None else []
            if kept is None or not few(changed, stamp_):
                return PerRun(stamp_.status, stamp_.runs, buckets.read(self.engine, study_id, axis, metric))
            again = set(changed)
            series = kept.value.of([r for r in stamp_.runs if r not in again])
            if changed:
                series = series.merge(buckets.read(self.engine, study_id, axis, metric, changed))
            return PerRun(stamp_.status, stamp_.runs, series)

        return self.points.update((study_id, axis, metric), stamp_.text, build).value
