"""The driver's DB callback without Ray: one transaction per trial for a start and its first result, starts never
lost, idempotent writes, and results slimmed once written."""

from __future__ import annotations

import pickle
import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from db.engine import open_db
from db.models import Point, Run
from db.writer import ensure_runs, ensure_study
from sweeper.expand import expand
from sweeper.launch.writer_callback import DbWriterCallback
from tests.launch.study import small_study


@pytest.fixture
def setup(sqlite_url, tmp_path):
    """(engine, callback, trials as Tune would pass them, commit counter); the study's id is the callback's."""
    spec = small_study(name="callback")
    trials = expand(spec)
    engine = open_db(sqlite_url, create=True)
    with Session(engine) as session, session.begin():
        study = ensure_study(session, spec.name, spec.model_dump(mode="json"))
        run_ids = ensure_runs(session, study, list(trials))
        session.expunge(study)
    commits: list[int] = []
    sa.event.listen(engine, "commit", lambda conn: commits.append(1))
    fake = [SimpleNamespace(config={"pack": {"trials": [t.model_dump(mode="json")]}}, error_file=None,
                            trial_id=t.trial_id) for t in trials]
    yield engine, DbWriterCallback(run_ids, tmp_path / "journal.jsonl", study.id, engine), fake, commits
    engine.dispose()


def points(steps):
    return [{"step": s, "train_loss": 1.0 / (s + 1)} for s in steps]


def member(steps, status="running"):
    return {"points": points(steps), "diagnostics": [], "status": status, "step": steps[-1],
            "info": {"host": "h", "node_id": "n", "device": "cpu", "pid": 1, "nice": 0}}


def result(trial, steps, status="running"):
    """A Tune result of a one-trial pack."""
    return {"members": {trial.trial_id: member(steps, status)}, "step": steps[-1], "time_total_s": 1.5}


def run_row(engine, trial):
    with engine.connect() as conn:
        return conn.execute(sa.select(Run).where(Run.trial_id == trial.trial_id)).one()


def n_points(engine, trial):
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(Point).join(Run)
                           .where(Run.trial_id == trial.trial_id))


def test_start_and_first_result_are_one_transaction(setup):
    engine, callback, (trial, *_), commits = setup
    callback.on_trial_start(0, [], trial)
    assert commits == [] and run_row(engine, trial).status == "pending"
    last = result(trial, [0, 10, 20], status="completed")
    callback.on_trial_result(0, [], trial, last)
    assert len(commits) == 1
    row = run_row(engine, trial)
    assert (row.status, row.attempts, row.steps_done, row.host) == ("completed", 1, 20, "h")
    assert row.started_at is not None and row.finished_at is not None and n_points(engine, trial) == 3
    member = last["members"][trial.trial_id]
    assert member["points"] == 3 and member["diagnostics"] == 0  # written, so Tune keeps counts only
    callback.on_trial_complete(0, [], trial)
    callback.on_experiment_end([])
    assert len(commits) == 1


def test_a_start_without_a_result_is_written_soon(setup):
    engine, callback, trials, commits = setup
    callback.start_delay_s = 0.05
    callback.on_trial_start(0, [], trials[0])
    callback.on_trial_start(0, [], trials[1])
    callback.on_step_end(0, [])
    assert commits == []  # too young
    time.sleep(0.06)
    callback.on_step_end(0, [])
    assert len(commits) == 1  # both starts, one transaction
    assert [run_row(engine, t).status for t in trials[:2]] == ["running", "running"]
    callback.on_trial_start(0, [], trials[2])
    callback.on_experiment_end([])
    assert run_row(engine, trials[2]).status == "running" and len(commits) == 2


def test_attempts_and_retried_points_are_counted_once(setup):
    engine, callback, (trial, *_), _ = setup
    callback.on_trial_start(0, [], trial)
    callback.on_trial_result(0, [], trial, result(trial, [0, 10]))
    callback.on_trial_recover(0, [], trial)  # the worker died; Tune retries from the checkpoint at step 10
    callback.on_trial_start(0, [], trial)
    callback.on_trial_start(0, [], trial)  # and once more, before any result (a second failure)
    callback.on_trial_result(0, [], trial, result(trial, [10, 20, 30], status="completed"))
    row = run_row(engine, trial)
    assert (row.status, row.attempts, row.steps_done, row.error) == ("completed", 3, 30, None)
    assert n_points(engine, trial) == 4  # step 10 reported twice, stored once


def test_an_error_before_any_result_is_recorded_with_its_start(setup):
    engine, callback, (trial, *_), commits = setup
    callback.on_trial_start(0, [], trial)
    callback.on_trial_error(0, [], trial)
    row = run_row(engine, trial)
    assert (row.status, row.attempts) == ("failed", 1) and row.error and len(commits) == 1
    assert row.started_at is not None and row.finished_at is not None


def test_pickled_without_engine_or_pending_starts(setup):
    engine, callback, (trial, *_), _ = setup
    callback.on_trial_start(0, [], trial)
    copy = pickle.loads(pickle.dumps(callback))
    assert copy.writer is None and copy._starts == {} and copy.run_ids == callback.run_ids
    with pytest.raises(RuntimeError, match="before bind"):
        copy.on_trial_result(0, [], trial, result(trial, [0]))
    copy.bind(engine).on_trial_result(0, [], trial, result(trial, [0]))
    assert n_points(engine, trial) == 1


def test_a_pack_is_written_member_by_member(setup):
    """One Tune trial running two sweeper trials: each member's points and status land on its own run; a member
    that diverged stays diverged when the pack later fails, and a restarted pack never reopens it."""
    engine, callback, trials, commits = setup
    a, b = trials[0], trials[1]
    pack = SimpleNamespace(config={"pack": {"trials": [a.config["pack"]["trials"][0], b.config["pack"]["trials"][0]]}},
                           error_file=None,
                           trial_id="pack")
    callback.on_trial_start(0, [], pack)
    callback.on_trial_result(0, [], pack, {"members": {a.trial_id: member([0, 10], "diverged"),
                                                       b.trial_id: member([0, 10])}, "step": 10})
    assert len(commits) == 1
    assert [run_row(engine, t).status for t in (a, b)] == ["diverged", "running"]
    assert (n_points(engine, a), n_points(engine, b)) == (2, 2)
    callback.on_trial_error(0, [], pack)
    assert [run_row(engine, t).status for t in (a, b)] == ["diverged", "failed"]
    callback.on_trial_start(0, [], pack)
    callback.on_experiment_end([])
    assert [run_row(engine, t).status for t in (a, b)] == ["diverged", "running"]


def test_heartbeat_when_due_and_not_more_often(setup, monkeypatch):
    """on_step_end writes the study's heartbeat once heartbeat_s have passed since the last (the runner writes the
    first), one UPDATE, and never more often, however many Tune steps there are."""
    from db.models import HEARTBEAT_S, Study
    from sweeper.launch import writer_callback

    engine, _, _, commits = setup
    clock = [1000.0]
    monkeypatch.setattr(writer_callback, "_clock", lambda: clock[0])
    callback = DbWriterCallback(dict(setup[1].run_ids), setup[1].journal_path, setup[1].study_id, engine)
    assert callback.heartbeat_s == HEARTBEAT_S == 30.0
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    def beat():
        with engine.connect() as conn:
            return conn.scalar(sa.select(Study.heartbeat_at))

    for _ in range(100):  # many Tune steps inside the first interval: nothing written, nothing read
        callback.on_step_end(0, [])
        clock[0] += (HEARTBEAT_S - 1) / 100
    assert commits == [] and statements == [] and beat() is None
    clock[0] = 1000.0 + HEARTBEAT_S
    callback.on_step_end(0, [])
    assert len(commits) == 1 and [s for s in statements if s.lstrip().upper().startswith("UPDATE")] != []
    first = beat()
    assert first is not None and first.tzinfo is not None
    statements.clear()
    for _ in range(50):
        callback.on_step_end(0, [])
        clock[0] += 0.5  # 25 s: not due again
    assert len(commits) == 1 and statements == []
    clock[0] += 5
    callback.on_step_end(0, [])
    assert len(commits) == 2 and len(statements) == 1 and statements[0].lstrip().upper().startswith("UPDATE")
    assert beat() >= first
    # a restored copy (Tune unpickles it) counts from its restore, with the study it knew
    copy = pickle.loads(pickle.dumps(callback)).bind(engine)
    assert copy.study_id == callback.study_id and copy.heartbeat_s == HEARTBEAT_S
    copy.on_step_end(0, [])
    assert len(commits) == 2


def test_results_wait_out_an_outage_and_a_permanent_fault_stops_the_experiment(setup):
    """While writes fail with `database is locked` the callback returns at once and keeps the results; they land,
    start included, at a later Tune step; a permanent fault stops the writer, and WriterStopper ends the
    experiment, the results in the journal."""
    import sqlite3

    from sweeper.launch.resilient_writer import OutagePolicy
    from sweeper.launch.writer_callback import WriterStopper

    engine, base, (trial, other, *_), _ = setup
    callback = DbWriterCallback(base.run_ids, base.journal_path, base.study_id, engine,
                                policy=OutagePolicy(first_retry_s=0.0))
    stopper = WriterStopper(callback)
    fault: list[str] = []

    def refuse(conn, cursor, statement, *args):
        if fault and not statement.lstrip().upper().startswith("SELECT"):
            raise sa.exc.OperationalError(statement, {}, sqlite3.OperationalError(fault[0]))

    sa.event.listen(engine, "before_cursor_execute", refuse)
    fault.append("database is locked")
    callback.on_trial_start(0, [], trial)
    callback.on_trial_result(0, [], trial, result(trial, [0, 10]))
    assert run_row(engine, trial).status == "pending" and n_points(engine, trial) == 0
    assert callback.writer.pending and not stopper.stop_all()
    fault.clear()
    callback.on_step_end(0, [])
    row = run_row(engine, trial)
    assert (row.status, row.attempts, row.steps_done, n_points(engine, trial)) == ("running", 1, 10, 2)
    fault.append("database or disk is full")
    callback.on_trial_start(0, [], other)
    callback.on_trial_result(0, [], other, result(other, [0, 10, 20], status="completed"))
    assert stopper.stop_all() and callback.stopped == "the database refused a write: database or disk is full"
    assert [w.run_id for b in callback.writer.journal.read() for w in b] == [base.run_ids[other.trial_id]]
    assert run_row(engine, other).status == "pending"
