"""Database writes that ride out outages, for the driver's DB callback.

A batch (``db.journal.Batch``) is written at once while the database answers. When a write fails with a
transient fault (``db.outage``: connection lost, ``database is locked``, …) the batch is kept, in order, and
nothing blocks: later batches queue behind it, and the queue is retried with exponential backoff (from
``first_retry_s``, doubling up to ``max_retry_s``), each try on fresh connections (the pool is disposed after a
fault). Kept batches stay in memory up to ``max_buffered`` rows (points + diagnostics), then go to the journal
file (appended, fsync'd); a retry writes the journal first, then memory, so the database receives every batch
once, in the order submitted. Re-written rows are skipped (``ON CONFLICT DO NOTHING``).

A permanent fault, or a transient one that lasts ``give_up_s``, stops the writer: :attr:`ResilientWriter.stopped`
says why in one line, and everything not written is in the journal for ``sweeper resume`` to replay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db.engine import make_engine
from db.journal import Batch, Journal
from db.outage import Kind, classify, describe
from db.writer import write_run_batch


@dataclass(frozen=True)
class OutagePolicy:
    """How the writer waits out an outage (seconds; rows = points + diagnostics)."""

    max_buffered: int = 100_000
    """Rows kept in memory while the database is down; beyond, batches are spilled to the journal file."""
    give_up_s: float = 1800.0
    """A transient fault lasting this long stops the study (as a permanent one does at once)."""
    first_retry_s: float = 0.5
    max_retry_s: float = 30.0
    lock_wait_s: float = 2.0
    """SQLite busy timeout of the writer's connections: how long one try waits for another process's lock."""
    connect_timeout_s: int = 10
    """PostgreSQL: how long one try waits for a connection (a server that does not answer at all)."""


def outage_engine(url: sa.URL | str, policy: OutagePolicy = OutagePolicy()) -> Engine:
    """An engine for the writer: SQLite waits ``lock_wait_s`` for a lock (not the engine default of 30 s), so one
    try never holds up the driver long; PostgreSQL connections time out after ``connect_timeout_s``."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return make_engine(parsed, connect_args={"connect_timeout": policy.connect_timeout_s})
    engine = make_engine(parsed)
    wait_ms = int(policy.lock_wait_s * 1000)

    def lock_wait(dbapi_connection: Any, _record: Any) -> None:  # after make_engine's own pragmas
        dbapi_connection.execute(f"PRAGMA busy_timeout={wait_ms}")

    sa.event.listen(engine, "connect", lock_wait)
    return engine


class ResilientWriter:
    """Writes batches to ``engine`` in order, keeping them through outages (see the module's docstring).

    ``clock`` and ``sleep`` (seconds) are replaceable for tests."""

    def __init__(self, engine: Engine, journal: Journal, policy: OutagePolicy = OutagePolicy(),
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.engine = engine
        self.journal = journal
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._memory: list[Batch] = []
        self._memory_rows = 0
        self._journaled = bool(journal)  # batches in the file not yet written (a stopped run's, at first)
        self._down_since: float | None = None
        self._delay = policy.first_retry_s
        self._next_try = 0.0
        self.stopped: str | None = None
        """Why the writer stopped (one line), or None while it runs."""
        self.last_error: str | None = None

    @property
    def pending(self) -> bool:
        """Batches wait (in memory or in the journal)."""
        return bool(self._memory) or self._journaled

    @property
    def down_for(self) -> float | None:
        """Seconds since the current outage began, or None when the last try succeeded."""
        return None if self._down_since is None else self._clock() - self._down_since

    @property
    def buffered_rows(self) -> int:
        """Rows (points + diagnostics) waiting in memory."""
        return self._memory_rows

    def submit(self, batch: Batch) -> None:
        """Queue ``batch`` and write the queue now unless a retry is not yet due; never raises for a database
        fault (it is recorded, see :attr:`stopped`)."""
        self._memory.append(batch)
        self._memory_rows += sum(w.size for w in batch)
        self.poll()
        if self.stopped or self._memory_rows > self.policy.max_buffered:
            self._spill()

    def poll(self) -> bool:
        """Write what waits if a try is due; True when nothing waits."""
        if not self.pending:
            return True
        if self.stopped or (self._down_since is not None and self._clock() < self._next_try):
            return False
        return self._attempt(self._flush)

    def beat(self, write: Callable[[Engine], Any]) -> bool:
        """Run ``write(engine)``, a write not worth keeping (a heartbeat), unless batches wait or a retry is not
        due; a fault counts as a failed try. True if written."""
        if self.stopped or self.pending or (self._down_since is not None and self._clock() < self._next_try):
            return False
        return self._attempt(lambda: write(self.engine))

    def drain(self) -> bool:
        """Retry, sleeping between tries, until nothing waits (True) or the writer stops (False)."""
        while not self.poll():
            if self.stopped:
                return False
            self._sleep(max(0.0, self._next_try - self._clock()))
        return True

    def close(self) -> None:
        """Spill what is in memory to the journal: nothing is lost when the process ends."""
        self._spill()

    def _spill(self) -> None:
        if not self._memory:
            return
        try:
            self.journal.append(self._memory)
        except OSError as exc:  # kept in memory; the study stops, since the bound cannot be kept
            self.stopped = self.stopped or (f"the database is unavailable ({self.last_error}) and the journal "
                                            f"{self.journal.path} cannot be written: {exc.strerror or exc}")
            return
        self._journaled = True
        self._memory, self._memory_rows = [], 0

    def _stop(self, reason: str) -> None:
        self.stopped = reason
        self._spill()

    def _flush(self) -> None:
        if self._journaled:
            self.journal.replay(self.engine)
            self._journaled = False
        if self._memory:
            with Session(self.engine) as session, session.begin():
                for batch in self._memory:
                    write_run_batch(session, batch)
            self._memory, self._memory_rows = [], 0

    def _attempt(self, write: Callable[[], Any]) -> bool:
        try:
            write()
        except Exception as exc:
            kind = classify(exc)
            if kind is None:
                raise
            self._fault(kind, exc)
            return False
        self._down_since, self._delay = None, self.policy.first_retry_s
        return True

    def _fault(self, kind: Kind, exc: BaseException) -> None:
        now = self._clock()
        self.last_error = describe(exc)
        self.engine.dispose()  # the next try opens new connections
        if kind == "permanent":
            self._stop(f"the database refused a write: {self.last_error}")
            return
        if self._down_since is None:
            self._down_since, self._delay = now, self.policy.first_retry_s
        elif now - self._down_since >= self.policy.give_up_s:
            self._stop(f"the database has been unavailable for {(now - self._down_since) / 60:.0f} min "
                       f"(last error: {self.last_error})")
            return
        else:
            self._delay = min(2 * self._delay, self.policy.max_retry_s)
        self._next_try = now + self._delay
