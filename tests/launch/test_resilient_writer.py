"""The outage-proof writer against a fault-injecting SQLite engine and a fake clock: every point exactly once and in
order through a 6-minute outage, the memory bound kept (the rest in the journal), backoff between tries, a clean
stop on a permanent fault or an outage past the limit, a real lock held by another connection ridden out."""

from __future__ import annotations

import itertools
import shutil
import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from db import journal as journal_module
from db.engine import open_db
from db.journal import Journal
from db.models import Point, Run
from db.writer import RunWrite, ensure_runs, ensure_study
from sweeper.launch import resilient_writer
from sweeper.launch.resilient_writer import OutagePolicy, ResilientWriter, outage_engine
from tests.db.conftest import trial_config


class Clock:
    """A fake monotonic clock (seconds); sleeping advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Faults:
    """Makes every write on ``engine`` fail with ``error`` while it is set (reads, the test's own, go through);
    records the failed tries (the fake clock's times)."""

    def __init__(self, engine: sa.Engine, clock: Clock):
        self.error: Exception | None = None
        self.tries: list[float] = []
        sa.event.listen(engine, "before_cursor_execute", self._check)
        self.clock = clock

    def _check(self, conn, cursor, statement, *args) -> None:
        if self.error is not None and not statement.lstrip().upper().startswith("SELECT"):
            self.tries.append(self.clock.now)
            raise self.error


def sqlite_error(message: str) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError(message))


LOCKED = sqlite_error("database is locked")
DISK_FULL = sqlite_error("database or disk is full")


@pytest.fixture
def db(sqlite_url, tmp_path):
    """(engine, run ids, clock, faults, journal)."""
    engine = open_db(sqlite_url, create=True)
    with Session(engine) as session, session.begin():
        study = ensure_study(session, "outage", {"name": "outage"})
        runs = list(ensure_runs(session, study, [trial_config(i) for i in range(2)]).values())
    clock = Clock()
    yield engine, runs, clock, Faults(engine, clock), Journal(tmp_path / "storage" / "journal.jsonl")
    engine.dispose()


def writer_for(db, **policy) -> ResilientWriter:
    engine, _, clock, _, journal = db

    def no_sleep(seconds):  # submit and poll never wait
        raise AssertionError("the writer slept outside drain()")

    return ResilientWriter(engine, journal, OutagePolicy(**policy), clock=clock, sleep=no_sleep)


def batch(run_id: int, step: int) -> list[RunWrite]:
    return [RunWrite(run_id, points=[{"step": step, "train_loss": 1.0 / (step + 1)}],
                     fields={"steps_done": step, "status": "running"})]


def stored_steps(engine, run_id) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.select(Point.step).where(Point.run_id == run_id).order_by(Point.step)))


def run_field(engine, run_id, column):
    with engine.connect() as conn:
        return conn.scalar(sa.select(getattr(Run, column)).where(Run.id == run_id))


@pytest.fixture
def written(monkeypatch) -> list[int]:
    """The steps of the batches as they are sent to the database, in order (live writes and journal replays; a
    try that fails at its commit included)."""
    order: list[int] = []

    def spy(real):
        def write(session, batch):
            real(session, batch)
            order.extend(p["step"] for w in batch for p in w.points)
        return write

    monkeypatch.setattr(resilient_writer, "write_run_batch", spy(resilient_writer.write_run_batch))
    monkeypatch.setattr(journal_module, "write_run_batch", spy(journal_module.write_run_batch))
    return order


def test_a_six_minute_outage_loses_nothing_and_keeps_order(db, written):
    engine, (run, _), clock, faults, journal = db
    writer = writer_for(db, max_buffered=50, max_retry_s=30.0)
    writer.submit(batch(run, 0))
    assert stored_steps(engine, run) == [0] and not writer.pending
    faults.error = LOCKED
    for step in range(1, 361):  # a point a second for 6 minutes
        clock.now += 1.0
        writer.submit(batch(run, step))
        assert writer.buffered_rows <= 50  # the bound: the rest is in the journal
    assert writer.stopped is None and writer.down_for == pytest.approx(359.0)
    assert journal and len(journal.read()) > 300 and stored_steps(engine, run) == [0]
    gaps = [b - a for a, b in itertools.pairwise(faults.tries)]  # backoff: 0.5, 1, 2, ... up to 30 s
    assert len(faults.tries) < 25
    assert all(min(0.5 * 2 ** i, 30.0) <= g <= min(0.5 * 2 ** i, 30.0) + 1.0 for i, g in enumerate(gaps))
    faults.error = None
    clock.now += 30.0
    assert writer.poll() and not writer.pending and not journal.path.exists()
    assert stored_steps(engine, run) == list(range(361))  # every point, once
    assert written == list(range(361))  # in the order submitted
    assert run_field(engine, run, "steps_done") == 360


def test_a_failed_commit_is_retried_and_written_once(db, written):
    engine, (run, other), clock, _, _ = db
    writer = writer_for(db)
    failing = {"on": True}

    def fail_commit(conn):
        if failing["on"]:
            raise sqlite_error("disk I/O error")

    sa.event.listen(engine, "commit", fail_commit)
    writer.submit(batch(run, 0) + batch(other, 0))
    assert writer.pending and stored_steps(engine, run) == [] and stored_steps(engine, other) == []
    failing["on"] = False
    clock.now += 0.5
    writer.submit(batch(run, 1))
    assert not writer.pending
    assert stored_steps(engine, run) == [0, 1] and stored_steps(engine, other) == [0]
    assert written == [0, 0, 0, 0, 1]  # the failed try, the retry, then the next batch


def test_a_permanent_fault_stops_at_once_and_keeps_everything_in_the_journal(db):
    engine, (run, _), clock, faults, journal = db
    writer = writer_for(db, max_buffered=1000)
    faults.error = DISK_FULL
    writer.submit(batch(run, 0))
    assert writer.stopped == "the database refused a write: database or disk is full"
    writer.submit(batch(run, 1))
    clock.now += 3600
    assert not writer.poll() and len(faults.tries) == 1  # no more tries
    assert [w.points[0]["step"] for b in journal.read() for w in b] == [0, 1] and writer.buffered_rows == 0
    faults.error = None  # space freed: `sweeper resume` replays the journal
    assert journal.replay(engine) == 2 and stored_steps(engine, run) == [0, 1] and not journal.path.exists()


def test_an_outage_past_the_limit_stops_and_the_journal_replays_idempotently(db, tmp_path):
    engine, (run, _), clock, faults, journal = db
    writer = writer_for(db, give_up_s=1800.0, max_buffered=10)
    faults.error = LOCKED
    step = 0
    while writer.stopped is None:
        writer.submit(batch(run, step))
        step += 1
        clock.now += 10.0
    assert step == 182  # the try at 1800 s gives up
    assert writer.stopped == "the database has been unavailable for 30 min (last error: database is locked)"
    writer.close()
    faults.error = None
    copy = tmp_path / "copy.jsonl"
    shutil.copy(journal.path, copy)
    journal.replay(engine)
    first = (stored_steps(engine, run), run_field(engine, run, "steps_done"), run_field(engine, run, "status"))
    shutil.copy(copy, journal.path)  # the driver killed between the commit and the journal's deletion
    journal.replay(engine)
    assert (stored_steps(engine, run), run_field(engine, run, "steps_done"), run_field(engine, run, "status")) \
        == first == (list(range(step)), step - 1, "running")


def test_the_heartbeat_waits_behind_pending_batches(db):
    engine, (run, _), clock, faults, _ = db
    writer = writer_for(db)
    beats = []
    faults.error = LOCKED
    writer.submit(batch(run, 0))
    assert not writer.beat(beats.append) and beats == []  # not due, and batches wait
    faults.error = None
    clock.now += 1.0
    assert writer.poll() and writer.beat(beats.append) and beats == [engine]


def test_a_real_write_lock_held_by_another_process_is_ridden_out(sqlite_url, tmp_path):
    open_db(sqlite_url, create=True).dispose()
    engine = outage_engine(sqlite_url, OutagePolicy(lock_wait_s=0.05, first_retry_s=0.01))
    with Session(engine) as session, session.begin():
        run = ensure_runs(session, ensure_study(session, "lock", {"name": "lock"}), [trial_config(0)])["trial-000"]
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, as another process would hold it
    writer = ResilientWriter(engine, Journal(tmp_path / "j.jsonl"), OutagePolicy(lock_wait_s=0.05,
                                                                                first_retry_s=0.01))
    writer.submit(batch(run, 0))
    assert writer.pending and writer.last_error == "database is locked" and writer.stopped is None
    holder.execute("COMMIT")
    holder.close()
    assert writer.drain() and stored_steps(engine, run) == [0]
    engine.dispose()
