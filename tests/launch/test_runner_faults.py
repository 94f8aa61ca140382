"""The runner's fault paths without Ray: a writer that stopped ends the study as interrupted in one line (whether
or not the database still answers), and a launch that loses the race for a study name is refused in one line."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from db.engine import open_db
from db.journal import Journal
from db.models import Study
from db.writer import RunWrite, ensure_runs, ensure_study, update_run
from sweeper.expand import expand
from sweeper.launch import runner
from sweeper.launch.runner import LaunchError, LaunchOptions, StudyStopped
from tests.launch.study import small_study


@pytest.fixture
def study(sqlite_url):
    """(engine, study id, run ids) of a study whose runs are all running."""
    spec = small_study(name="stopped")
    engine = open_db(sqlite_url, create=True)
    with Session(engine) as session, session.begin():
        st = ensure_study(session, spec.name, spec.model_dump(mode="json"))
        run_ids = ensure_runs(session, st, expand(spec))
        for run_id in run_ids.values():
            update_run(session, run_id, status="running")
        study_id = st.id
    yield engine, study_id, run_ids
    engine.dispose()


def status(engine, study_id):
    with engine.connect() as conn:
        return conn.scalar(sa.select(Study.status).where(Study.id == study_id))


def test_a_stopped_writer_ends_the_study_as_interrupted_in_one_line(study, tmp_path):
    engine, study_id, run_ids = study
    journal = tmp_path / "journal.jsonl"
    Journal(journal).append([[RunWrite(next(iter(run_ids.values())), points=[{"step": 0}])]])
    with pytest.raises(StudyStopped) as stop:
        runner._stopped(engine, study_id, "stopped", "the database refused a write: database or disk is full",
                        journal)
    assert str(stop.value) == (
        "study 'stopped' stopped: the database refused a write: database or disk is full; the results not yet "
        f"written are kept in {journal}; once the database is fixed, continue with `sweeper resume stopped`")
    assert "\n" not in str(stop.value) and stop.value.exit_code == 1
    assert status(engine, study_id) == "interrupted"


def test_a_stop_while_the_database_refuses_writes_still_says_one_line(study, tmp_path):
    engine, study_id, _ = study

    def refuse(conn, cursor, statement, *args):
        if not statement.lstrip().upper().startswith("SELECT"):
            raise sa.exc.OperationalError(statement, {}, sqlite3.OperationalError("database or disk is full"))

    sa.event.listen(engine, "before_cursor_execute", refuse)
    with pytest.raises(StudyStopped, match=r"full; once the database is fixed, continue with `sweeper resume"):
        runner._stopped(engine, study_id, "stopped", "the database refused a write: database or disk is full",
                        tmp_path / "none.jsonl")
    sa.event.remove(engine, "before_cursor_execute", refuse)
    assert status(engine, study_id) == "running"  # left to its heartbeat, which ages into `interrupted`


def test_a_launch_that_loses_the_race_for_its_name_is_one_line(sqlite_url, tmp_path, monkeypatch):
    spec = small_study(name="race")
    engine = open_db(sqlite_url, create=True)
    with Session(engine) as session, session.begin():  # the other launch, between our look and our insert
        ensure_study(session, spec.name, spec.model_dump(mode="json"))
    engine.dispose()
    monkeypatch.setattr(runner, "_existing_study", lambda engine, spec: None)
    monkeypatch.setattr(runner, "_ray", lambda options: contextlib.nullcontext({}))
    monkeypatch.setattr(runner, "_run_tuner", lambda *a, **k: pytest.fail("the loser ran the study"))
    with pytest.raises(LaunchError, match=r"^study 'race' was created by another launch at the same moment, "
                                          r"which runs it; follow it with `sweeper runs race`$"):
        runner.launch_study(spec, LaunchOptions(db_url=sqlite_url, storage=str(tmp_path / "ray"), progress=False))
    check = sa.create_engine(sqlite_url)
    with check.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Study)) == 1
    check.dispose()


def test_a_launch_of_a_study_whose_driver_is_alive_is_one_line(sqlite_url, tmp_path, monkeypatch):
    """The name is taken by a study that another driver runs now (fresh heartbeat): follow it, do not resume it;
    once its heartbeat is stale the hint is `sweeper resume`."""
    import datetime as dt

    from db.writer import update_study

    spec = small_study(name="alive")
    engine = open_db(sqlite_url, create=True)
    with Session(engine) as session, session.begin():
        study_id = ensure_study(session, spec.name, spec.model_dump(mode="json")).id
        ensure_runs(session, study_id, expand(spec))
        update_study(session, study_id, heartbeat_at=dt.datetime.now(dt.timezone.utc))
    monkeypatch.setattr(runner, "_ray", lambda options: pytest.fail("reached Ray"))
    options = LaunchOptions(db_url=sqlite_url, storage=str(tmp_path / "ray"), progress=False)
    with pytest.raises(LaunchError, match=r"^study 'alive' is running now \(its driver's heartbeat is under 90 s "
                                          r"old\); follow it with `sweeper runs alive`$"):
        runner.launch_study(spec, options)
    with Session(engine) as session, session.begin():
        update_study(session, study_id, heartbeat_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5))
    engine.dispose()
    with pytest.raises(LaunchError, match=r"exists with 8 unfinished runs; continue it with `sweeper resume alive`"):
        runner.launch_study(spec, options)


def test_a_resume_while_a_driver_runs_the_study_is_refused_and_leaves_its_journal(sqlite_url, tmp_path,
                                                                                   monkeypatch):
    """A second driver would train the study's trials again beside the first and take the journal the first one
    appends to; a driver that died (its heartbeat still fresh) is taken over at once."""
    import datetime as dt

    from db.writer import update_study

    spec = small_study(name="driven")
    storage = str(tmp_path / "ray")
    engine = open_db(sqlite_url, create=True)
    with Session(engine) as session, session.begin():
        study_id = ensure_study(session, spec.name, spec.model_dump(mode="json")).id
        run_ids = ensure_runs(session, study_id, expand(spec))
        update_study(session, study_id, storage=storage, heartbeat_at=dt.datetime.now(dt.timezone.utc))
    engine.dispose()
    journal = Journal(runner.journal_path(storage, spec.name))
    journal.append([[RunWrite(next(iter(run_ids.values())), points=[{"step": 0}])]])

    class ReachedRay(Exception):
        pass

    def ray(options):
        raise ReachedRay

    monkeypatch.setattr(runner, "_ray", ray)
    options = LaunchOptions(db_url=sqlite_url, progress=False)
    with runner._driver_lock(storage, spec.name):  # the other driver, alive
        with pytest.raises(LaunchError, match=r"^study 'driven' is run by another driver now \(it holds .*"
                                              r"sweeper-driver\.lock\); follow it with `sweeper runs driven`$"):
            runner.resume_study(spec.name, options)
        assert len(journal.read()) == 1
    with pytest.raises(ReachedRay):  # the other driver died: resumed at once, its journal replayed first
        runner.resume_study(spec.name, options)
    assert not journal
