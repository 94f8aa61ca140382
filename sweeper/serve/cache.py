"""What the dashboard computed from a study, kept while the study is unchanged: polls and other tabs of a study
that did not change cost one cheap query, and the trajectory and scaling plots share one read of the points.

A study's :func:`stamp` changes whenever anything the dashboard shows from it changes: its live status (a stale
heartbeat reads as interrupted), any column of any of its runs (status, times, counts, error, host, …), a run's last
stored step (the writers append a run's points in step order and ignore a step stored already), its diagnostics
count and its verdicts. It reads the study's run rows and one index seek per run: ~5 ms for 1,000 runs.

:class:`Memo` keeps values with the stamp they were computed at; a lookup with another stamp computes afresh (the
stamp is read before the data, so a value is never older than its stamp). :class:`StudyCache` holds the app's
memos: ``views`` (JSON bodies and run tables: up to ~1 MB each for 1,000 runs) and ``points`` (a study's x/metric
columns, ~24 MB per million points, so only a few are kept).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from db.models import Diagnostic, Point, Run, Verdict
from db.queries import resolve_study, study_status
from sweeper.serve import buckets

T = TypeVar("T")


def stamp(conn: Connection, study_id: int) -> str:
    """A short text that changes whenever the study's runs, points, diagnostics or verdicts change."""
    last_step = sa.select(sa.func.max(Point.step)).where(Point.run_id == Run.id).correlate(Run).scalar_subquery()
    columns = [c for c in Run.__table__.columns if c.name != "config"]
    runs = conn.execute(sa.select(*columns, last_step).where(Run.study_id == study_id).order_by(Run.id)).all()
    run_ids = sa.select(Run.id).where(Run.study_id == study_id).scalar_subquery()
    diagnostics = conn.execute(sa.select(sa.func.count()).where(Diagnostic.run_id.in_(run_ids))).scalar_one()
    verdicts = conn.execute(sa.select(sa.func.count(), sa.func.max(Verdict.id))
                            .where(Verdict.study_id == study_id)).one()
    text = repr((study_status(conn, study_id), [tuple(r) for r in runs], diagnostics, tuple(verdicts)))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


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
        with self._lock:
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                kept = self._entries.get(key)
                if kept is not None and kept[0] == stamp_:
                    self._entries.move_to_end(key)
                    return kept[1]
            value = compute()
            with self._lock:
                self.computed += 1
                self._entries[key] = (stamp_, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    dropped, _ = self._entries.popitem(last=False)
                    self._locks.pop(dropped, None)
        return value


class StudyCache:
    """The memos of one dashboard app over ``engine``."""

    def __init__(self, engine: Engine, views: int = 64, points: int = 4):
        self.engine = engine
        self.views, self.points = Memo(views), Memo(points)

    def stamp(self, name: str) -> tuple[int, str]:
        """The study's id and current stamp (UnknownStudy when there is no such study)."""
        with self.engine.connect() as conn:
            study_id = resolve_study(conn, name)
            return study_id, stamp(conn, study_id)

    def view(self, study_id: int, stamp_: str, key: Hashable, compute: Callable[[], T]) -> T:
        return self.views.get((study_id, key), stamp_, compute)

    def series(self, study_id: int, stamp_: str, axis: str, metric: str) -> buckets.Series:
        """``metric`` against ``axis`` for every run of the study (:func:`buckets.read`)."""
        return self.points.get((study_id, axis, metric), stamp_,
                               lambda: buckets.read(self.engine, study_id, axis, metric))
