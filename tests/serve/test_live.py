"""The dashboard while a study is being written (SQLite in WAL mode and PostgreSQL): every poll answers, and what
it shows only grows until the study has every point."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from db.engine import open_db
from sweeper.serve import create_app
from tests.serve.synthetic import LiveWriter, create_study, trial_configs

POINTS, BATCH = 40, 4


@pytest.fixture
def live(db_url: str):
    engine = open_db(db_url, create=True)
    trials = trial_configs([0.05], [1, 2], [0, 1])
    ids = create_study(engine, "live", trials)
    writer = LiveWriter(engine, "live", trials, ids, points=POINTS, batch=BATCH, interval=0.02)
    yield engine, writer
    writer.stop()
    engine.dispose()


def test_polls_answer_and_grow_while_the_study_is_written(live):
    engine, writer = live
    client = TestClient(create_app(engine))
    seen, drawn = [], []
    writer.start()
    for _ in range(400):
        summary = client.get("/api/studies/live")
        assert summary.status_code == 200, summary.text
        seen.append(summary.json()["n_points"])
        plot = client.get("/api/studies/live/trajectories", params={"seeds": "lines", "x": "step"})
        assert plot.status_code == 200, plot.text
        drawn.append(plot.json()["points_drawn"])
        if not writer.is_alive() and seen[-1] == 4 * POINTS:
            break
    assert seen == sorted(seen) and seen[-1] == 4 * POINTS and len(set(seen)) >= 3
    assert drawn[-1] == 4 * POINTS  # 40 steps on an 800 px plot: every point drawn
    final = client.get("/api/studies/live").json()
    assert final["status"] == "running" and final["n_running"] == 0 and final["n_completed"] == 4
