"""The per-study cache: a study's stamp changes with every write the dashboard shows (and only then), a memo
computes once per stamp, only the runs that changed are read again, and while a thread writes the study every
answer is as fresh as a new app's."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from db import blocks, writer
from db.engine import open_db
from db.models import PointBlock, Study
from sweeper.checks.base import Verdict, store
from sweeper.serve import buckets, create_app, overview
from sweeper.serve.cache import Memo, StudyCache
from tests.serve.synthetic import (
    LiveWriter,
    build_study,
    create_study,
    trial_configs,
    write_diagnostics,
    write_run,
)


def test_memo_computes_once_per_stamp_and_keeps_the_latest():
    memo = Memo(size=2)
    assert memo.get("a", "s1", lambda: 1) == 1
    assert memo.get("a", "s1", lambda: 2) == 1  # same stamp: kept
    assert memo.get("a", "s2", lambda: 3) == 3  # the study changed
    memo.get("b", "s1", lambda: 4)
    memo.get("c", "s1", lambda: 5)  # "a" is the least recently used: dropped
    assert memo.get("a", "s2", lambda: 6) == 6 and memo.computed == 5
    with pytest.raises(ZeroDivisionError):
        memo.get("d", "s1", lambda: 1 / 0)
    assert memo.get("d", "s1", lambda: 7) == 7  # a failure keeps nothing


def test_concurrent_lookups_compute_once():
    memo, started, calls = Memo(size=4), threading.Event(), []

    def slow() -> int:
        calls.append(1)
        started.set()
        threading.Event().wait(0.2)
        return 42

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(memo.get("k", "s", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 4 and len(calls) == 1


def test_the_stamp_changes_with_each_write_and_only_then(sqlite_url):
    engine = open_db(sqlite_url, create=True)
    trials = trial_configs([0.05], [1, 2], [0])
    ids = create_study(engine, "stamped", trials)
    (other_trial,) = trial_configs([0.1], [1], [0])
    other_run = create_study(engine, "elsewhere", [other_trial])[other_trial.trial_id]
    cache = StudyCache(engine)
    run_id = ids[trials[0].trial_id]
    seen = [cache.stamp("stamped")[1].text]

    def changed() -> bool:
        seen.append(cache.stamp("stamped")[1].text)
        return seen[-1] != seen[-2]

    assert not changed()
    write_run(engine, run_id, trials[0], np.arange(3) * 10)
    assert changed()  # new points
    write_run(engine, run_id, trials[0], np.arange(3) * 10)
    assert not changed()  # the same steps again: ignored by the writer
    write_run(engine, run_id, trials[0], np.array([30]))
    assert changed()  # one more point
    with Session(engine) as session, session.begin():
        writer.update_run(session, run_id, error="a message")
    assert changed()  # any run column
    write_diagnostics(engine, run_id, [10])
    assert changed()
    store(engine, "stamped", Verdict("lsr", "INCONCLUSIVE", "a verdict"))
    assert changed()
    with Session(engine) as session, session.begin():
        writer.ensure_runs(session, session.query(Study).filter_by(name="stamped").one(),
                           trial_configs([0.2], [1], [0]))
    assert changed()  # a new run
    write_run(engine, ids[trials[1].trial_id], trials[1], np.arange(2), status="completed")
    assert changed()
    writer.write_heartbeat(engine, cache.stamp("stamped")[0])
    write_run(engine, other_run, other_trial, np.arange(5), status="completed")
    assert not changed()  # a heartbeat and another study's writes leave it
    engine.dispose()


ROUTES = ["/api/studies/live", "/api/studies/live/runs", "/api/studies/live/runs?sort=final_test_loss&desc=1",
          "/api/studies/live/trajectories?x=step&seeds=lines", "/api/studies/live/trajectories?where=kappa%20%3D%202",
          "/api/studies/live/scaling", "/api/studies/live/diagnostics", "/api/studies/live/verdicts"]


def test_answers_while_written_are_as_fresh_as_a_new_apps(db_url):
    engine = open_db(db_url, create=True)
    trials = trial_configs([0.05], [1, 2], [0, 1])
    ids = create_study(engine, "live", trials)
    live = LiveWriter(engine, "live", trials, ids, points=30, batch=3, interval=0.01)
    app = create_app(engine)
    client = TestClient(app)
    drawn = []
    live.start()
    while live.is_alive():
        for route in ROUTES:
            assert client.get(route).status_code == 200, route
        drawn.append(client.get(ROUTES[3]).json()["points_drawn"])
    live.join()
    assert drawn == sorted(drawn)
    fresh = TestClient(create_app(engine))
    summary = client.get(ROUTES[0]).json()
    assert summary["n_points"] == 4 * 30 and summary["version"] == fresh.get(ROUTES[0]).json()["version"]
    for route in ROUTES[1:]:
        assert client.get(route).content == fresh.get(route).content, route
    computed = app.state.cache.views.computed
    for route in ROUTES:  # polls of the unchanged study: nothing computed again
        client.get(route)
    assert app.state.cache.views.computed == computed
    engine.dispose()


def test_only_the_runs_that_changed_are_read_again(sqlite_url, monkeypatch):
    engine = open_db(sqlite_url, create=True)
    trials = trial_configs([0.05], [1, 2], [0, 1])
    ids = create_study(engine, "some", trials)
    for i, trial in enumerate(trials):
        write_run(engine, ids[trial.trial_id], trial, np.arange(5) * 10, status="completed" if i else "running")
    routes = [r.replace("/live", "/some") for r in ROUTES]
    client = TestClient(create_app(engine))
    for route in routes:
        client.get(route)
    reporting = ids[trials[0].trial_id]
    write_run(engine, reporting, trials[0], np.array([50, 60]))  # one run reports two points
    read_runs: list[list[int]] = []
    tables: list[str | None] = []
    read, table = buckets.read, overview.runs_table
    monkeypatch.setattr(buckets, "read", lambda *a: read_runs.append(list(a[4])) or read(*a))
    monkeypatch.setattr(overview, "runs_table", lambda *a: tables.append(a[2]) or table(*a))
    answers = [client.get(route).content for route in routes]
    monkeypatch.undo()
    assert read_runs and all(r == [reporting] for r in read_runs)
    assert tables and all(w is not None and w.endswith(f"run_id in ({reporting})") for w in tables)
    fresh = TestClient(create_app(engine))
    assert answers[1:] == [fresh.get(route).content for route in routes[1:]]
    assert client.get(routes[0]).json()["n_points"] == 4 * 5 + 2
    engine.dispose()


def test_a_running_study_draws_the_same_from_its_chunks_as_from_its_rows(db_url):
    """Runs written in reports and left running (their points: chunks and the rows after them, db.blocks): every
    route answers as when no block is stored (all read from rows)."""
    engine = open_db(db_url, create=True)
    points = 2 * blocks.CHUNK_POINTS + 30
    build_study(engine, "live", lrs=[0.05], kappas=[1, 2], seeds=[0], points=points, status="running",
                study_status="running", report=70)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(PointBlock)) >= 2
    chunked = TestClient(create_app(engine))
    answers = {route: chunked.get(route).content for route in ROUTES}
    with engine.begin() as conn:
        conn.execute(sa.delete(PointBlock))
    rows = TestClient(create_app(engine))
    for route in ROUTES:
        assert rows.get(route).content == answers[route], route
    assert chunked.get(ROUTES[0]).json()["n_points"] == 2 * points
    engine.dispose()
