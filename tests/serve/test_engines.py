"""Every route on both engines (SQLite and PostgreSQL) gives the same answers, and a study without points draws
empty plots rather than failing."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from db.engine import open_db
from sweeper.serve import create_app
from tests.serve.synthetic import (
    build_study,
    create_study,
    run_ids,
    trial_configs,
    write_diagnostics,
)

ROUTES = ["/api/studies/s", "/api/studies/s/runs?sort=final_test_loss", "/api/studies/s/trajectories?x=epoch",
          "/api/studies/s/trajectories?seeds=lines&logx=1", "/api/studies/s/scaling",
          "/api/studies/s/diagnostics?x=sde_time", "/api/studies/s/verdicts", "/api/runs/1/trajectory",
          "/api/runs/1/diagnostics?x=epoch"]
PAGES = ["/", "/studies/s", "/runs/1"]
VOLATILE = {"created_at", "last_write", "version", "heartbeat_at", "package_version"}


def strip(value):
    """The answer without timestamps (they differ between two databases written one after the other)."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def answers(url: str) -> dict[str, object]:
    engine = open_db(url, create=True)
    try:
        build_study(engine, "s", lrs=[0.05], kappas=[1, 2], seeds=[0, 1], points=30)
        write_diagnostics(engine, run_ids(engine, "s")[0.05, 1.0, 0], [0, 145, 290])
        client = TestClient(create_app(engine))
        for page in PAGES:
            assert client.get(page).status_code == 200, page
        out = {}
        for route in ROUTES:
            response = client.get(route)
            assert response.status_code == 200, f"{route}: {response.text}"
            out[route] = strip(response.json())
        return out
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_answers_as_sqlite(sqlite_url, pg_url):
    sqlite, pg = answers(sqlite_url), answers(pg_url)
    for route in ROUTES:
        assert _close(pg[route], sqlite[route]), route


def _close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return b == pytest.approx(a, rel=1e-9, abs=1e-12)
    return a == b


def test_a_study_without_points_draws_empty_plots(sqlite_url):
    engine = open_db(sqlite_url, create=True)
    create_study(engine, "empty", trial_configs([0.1], [1, 2], [0]))
    client = TestClient(create_app(engine))
    plot = client.get("/api/studies/empty/trajectories").json()
    assert plot["traces"] == [] and plot["x_range"] is None and plot["n_runs"] == 2
    assert client.get("/api/studies/empty/scaling").json()["path"]["traces"] == []
    assert client.get("/api/studies/empty/diagnostics").json()["kinds"] == []
    summary = client.get("/api/studies/empty").json()
    assert (summary["n_points"], summary["n_pending"], summary["progress"]) == (0, 2, 0.0)
    assert client.get("/api/runs/1/trajectory").json()["traces"] == []
    engine.dispose()
