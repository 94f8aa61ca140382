"""Every JSON route of the dashboard, its 4xx answers (each a one-line message), and the run-check button."""

from __future__ import annotations

import datetime as dt
import sqlite3
from urllib.parse import quote

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from db import writer
from db.models import HEARTBEAT_GRACE_S, Study
from db.queries import runs_with_final, verdicts_frame
from db.types import utcnow
from sweeper.checks import registry
from sweeper.checks.base import StudyData
from tests.serve.conftest import DIAGNOSED, EVIL, STUDY
from tests.serve.synthetic import create_study, trial_configs

API = f"/api/studies/{STUDY}"


def ok(client: TestClient, url: str, **params) -> dict:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def error(client: TestClient, url: str, status: int, **params) -> str:
    response = client.get(url, params=params)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert message and "\n" not in message
    return message


def test_studies_list_status_counts_progress(client):
    rows = {s["name"]: s for s in ok(client, "/api/studies")["studies"]}
    s = rows[STUDY]
    assert s["status"] == "completed" and s["n_runs"] == 8
    assert (s["n_completed"], s["n_failed"]) == (7, 1)
    assert s["progress"] == 1.0 and s["n_points"] == 8 * 50 and s["last_write"]
    assert rows[EVIL]["n_runs"] == 1 and rows[EVIL]["progress"] == 0.0


def test_study_summary_has_spec_and_a_version(client):
    s = ok(client, API)
    assert s["spec"]["note"] == "spec text" and s["version"]


def test_runs_table_where_sort_and_finals(client, engine):
    data = ok(client, f"{API}/runs")
    assert data["count"] == 8 and "config" not in data["columns"] and "last_step" in data["columns"]
    assert {r["last_step"] for r in data["rows"]} == {490}
    expected = runs_with_final(engine, STUDY)
    assert [r["final_test_loss"] for r in data["rows"]] == pytest.approx(list(expected.final_test_loss))
    failed = [r for r in data["rows"] if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"].startswith("RuntimeError: boom")
    filtered = ok(client, f"{API}/runs", where="kappa = 2 and status = 'completed'", sort="lr", desc="1")
    assert filtered["count"] == 3
    assert [r["lr"] for r in filtered["rows"]] == sorted((r["lr"] for r in filtered["rows"]), reverse=True)


@pytest.mark.parametrize("seeds", ["band", "lines"])
def test_trajectories(client, seeds):
    data = ok(client, f"{API}/trajectories", metric="train_loss", x="epoch", colour="kappa", seeds=seeds, width=300)
    assert (data["metric"], data["x"], data["colour"], data["n_runs"]) == ("train_loss", "epoch", "kappa", 8)
    assert len(data["traces"]) == (4 if seeds == "band" else 8)
    assert {t["colour"] for t in data["traces"]} == {entry["colour"] for entry in data["legend"]}
    assert data["points_drawn"] == sum(len(t["x"]) for t in data["traces"]) > 0


def test_trajectories_default_colour_is_a_varying_column_and_where_narrows(client):
    assert ok(client, f"{API}/trajectories")["colour"] == "kappa"
    data = ok(client, f"{API}/trajectories", where="batch_size = 8")  # κ = 1 only: lr is what varies
    assert data["colour"] == "lr" and data["n_runs"] == 4


def test_scaling_view(client):
    data = ok(client, f"{API}/scaling")
    assert [p["n_runs"] for p in data["paths"]] == [4, 4] and data["path"]["index"] == 0
    assert ok(client, f"{API}/scaling", path=1)["path"]["label"] != data["path"]["label"]


def test_diagnostics_and_covariance(client, run_ids):
    data = ok(client, f"{API}/diagnostics", x="step")
    assert data["kinds"] == ["noise", "sharpness", "trajectory_stats", "covariance"]
    assert [r["run_id"] for r in data["covariance_runs"]] == sorted(run_ids[k] for k in DIAGNOSED)
    spectra = ok(client, f"{API}/covariance/{run_ids[DIAGNOSED[0]]}")
    assert [m["step"] for m in spectra["measurements"]] == [0, 100, 245, 250, 490]


def test_verdicts_and_the_run_check_button(client, engine):
    before = len(verdicts_frame(engine, STUDY))
    response = client.post(f"{API}/checks/lsr", json={})
    assert response.status_code == 200, response.text
    shown = response.json()
    direct = registry.run_check("lsr", StudyData.load(engine, STUDY))
    assert (shown["verdict"], shown["summary"]) == (direct.verdict, direct.summary)
    stored = verdicts_frame(engine, STUDY)
    assert len(stored) == before + 1
    row = stored.iloc[-1]
    assert (row.check, row.verdict) == ("lsr", direct.verdict)
    assert row.evidence["summary"] == direct.summary and row.evidence["tolerance"] == direct.tolerance
    client.post(f"{API}/checks/lsr", json={"tolerance": 0.1})
    latest = ok(client, f"{API}/verdicts")["latest"]
    lsr = next(v for v in latest if v["check"] == "lsr")
    assert lsr["tolerance"]["relative"] == 0.1 and len(lsr["history"]) == before + 1


def test_run_routes(client, run_ids):
    rid = run_ids[DIAGNOSED[0]]
    run = ok(client, f"/api/runs/{rid}")
    assert run["study"] == STUDY and run["config"]["trial_id"] == run["trial_id"] and run["n_points"] == 50
    assert (run["lr"], run["kappa"], run["seed"], run["config"]["scaling"]["base_lr"]) == (0.05, 1.0, 0, 0.05)
    traj = ok(client, f"/api/runs/{rid}/trajectory", metric="test_loss", x="step")
    assert len(traj["traces"]) == 1 and len(traj["traces"][0]["x"]) == 50  # 50 points < 800 buckets: all kept
    diag = ok(client, f"/api/runs/{rid}/diagnostics")
    assert diag["kinds"] == ["noise", "sharpness", "trajectory_stats", "covariance"] and diag["spectra"]


@pytest.mark.parametrize(("url", "params", "status", "words"), [
    ("/api/studies/nope", {}, 404, "no study named 'nope'"),
    ("/api/studies/nope/runs", {}, 404, "no study named 'nope'"),
    ("/api/studies/nope/trajectories", {}, 404, "no study named 'nope'"),
    ("/api/runs/999999", {}, 404, "no run with id 999999"),
    ("/api/runs/abc", {}, 404, "no run with id 'abc'"),
    ("/api/runs/99999999999999999999999", {}, 404, "no run with id"),
    (f"{API}/covariance/999999", {}, 404, "no run with id 999999 in study"),
    ("/api/nothing", {}, 404, "no page at /api/nothing"),
    (f"{API}/runs", {"where": "lr >"}, 400, "where: expected a literal"),
    (f"{API}/runs", {"where": "nonsense = 1"}, 400, "where: unknown column 'nonsense'"),
    (f"{API}/runs", {"where": "lr = 1; drop table runs"}, 400, "where:"),
    (f"{API}/trajectories", {"where": "lr >"}, 400, "where: expected a literal"),
    (f"{API}/runs", {"sort": "nope"}, 400, "sort: unknown column 'nope'"),
    (f"{API}/trajectories", {"metric": "nope"}, 400, "metric: 'nope' is not one of"),
    (f"{API}/trajectories", {"x": "time"}, 400, "x: 'time' is not one of step, effective_step, epoch, sde_time"),
    (f"{API}/trajectories", {"width": "-3"}, 400, "width: '-3' is not a whole number from 100 to 4000"),
    (f"{API}/trajectories", {"logx": "maybe"}, 400, "logx: 'maybe' is not a flag"),
    (f"{API}/scaling", {"path": "7"}, 400, "path: 7 is past the last scaling path (1)"),
    (f"{API}/scaling", {"tolerance": "inf"}, 400, "tolerance: 'inf' is not a finite number > 0"),
])
def test_bad_requests_are_4xx_with_a_message(client, url, params, status, words):
    assert words in error(client, url, status, **params)


def test_check_button_refusals_store_nothing(client, engine):
    before = len(verdicts_frame(engine, STUDY))
    cases = [(client.post(f"{API}/checks/nope", json={}), "check: unknown check 'nope'"),
             (client.post(f"{API}/checks/lsr", data={"a": "b"}), "Content-Type: application/json"),
             (client.post(f"{API}/checks/lsr", json={"tolerance": -1}), "tolerance: must be a finite number > 0"),
             (client.post(f"{API}/checks/lsr", content=b'{"tolerance": 1' + b"0" * 400 + b"}",
                          headers={"content-type": "application/json"}), "tolerance: must be a finite number > 0"),
             (client.post(f"{API}/checks/lsr", json={"what": 1}), "takes only metric and tolerance"),
             (client.post(f"{API}/checks/lsr", content=b"{", headers={"content-type": "application/json"}),
              "not JSON")]
    for response, words in cases:
        assert response.status_code == 400 and words in response.json()["error"], response.text
    assert client.post("/api/studies/nope/checks/lsr", json={}).status_code == 404
    assert client.get(f"{API}/checks/lsr").status_code == 405
    assert len(verdicts_frame(engine, STUDY)) == before


def test_json_is_strict_and_html_in_names_is_data(client, engine):
    rows = ok(client, f"/api/studies/{quote(EVIL, safe='')}/runs")["rows"]
    assert rows[0]["trial_id"].startswith("</script>")  # JSON carries the text; the pages escape it
    body = client.get(f"{API}/runs").text
    assert "NaN" not in body and "Infinity" not in body
    assert pd.isna(runs_with_final(engine, STUDY).final_noise_scale).all()  # NaN in the frame, null in the JSON


def test_a_study_whose_driver_died_reads_as_interrupted(client, engine):
    """The liveness rule of `sweeper studies`: running with a heartbeat older than HEARTBEAT_GRACE_S."""
    trials = trial_configs([0.1], [1], [0, 1])
    ids = create_study(engine, "stale", trials)
    with Session(engine) as session, session.begin():
        study_id = session.scalar(sa.select(Study.id).where(Study.name == "stale"))
        writer.write_heartbeat(session, study_id, at=utcnow() - dt.timedelta(seconds=HEARTBEAT_GRACE_S + 5))
        writer.update_run(session, ids[trials[0].trial_id], status="running")
    assert ok(client, "/api/studies/stale")["status"] == "interrupted"
    statuses = [r["status"] for r in ok(client, "/api/studies/stale/runs")["rows"]]
    assert statuses == ["interrupted", "pending"]
    assert ok(client, "/api/studies/stale/runs", where="status = 'interrupted'")["count"] == 1
    with Session(engine) as session, session.begin():
        writer.write_heartbeat(session, study_id)
    assert ok(client, "/api/studies/stale")["status"] == "running"


def test_a_stored_verdict_reaches_the_database_file(client, engine, db_file):
    """Read back through a fresh connection (what another process sees), not through this process's pool."""
    client.post(f"{API}/checks/svag", json={})
    with sqlite3.connect(db_file) as fresh:
        stored = fresh.execute("SELECT count(*) FROM verdicts WHERE \"check\" = 'svag'").fetchone()[0]
    assert stored == 1
