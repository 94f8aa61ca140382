"""Reading results from the CLI: studies, runs (with --where), show, export, db; clear one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from db import migrate
from db.engine import open_db
from db.writer import ensure_runs, ensure_study, update_run, write_points
from sweeper.expand import expand
from sweeper.reporter import ListReporter
from sweeper.train.loop import run_trial
from tests.helpers import make_spec

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def results_db(tmp_path_factory) -> str:
    """A SQLite database with study 'res' of 4 real (Ray-free) runs: lr 0.05/0.2 × seeds 0/1, one diverged."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'sweeper.db'}"
    spec = make_spec(name="res", seeds=[0, 1], sweep={"batch_size": [8], "lr": [0.05, 40.0]}, budget={"epochs": 0.5})
    trials = expand(spec)
    engine = open_db(url, create=True)
    with Session(engine) as session, session.begin():
        study = ensure_study(session, spec.name, spec.model_dump(mode="json"))
        run_ids = ensure_runs(session, study, list(trials))
        for trial in trials:
            result = run_trial(trial, ListReporter())
            write_points(session, run_ids[trial.trial_id], result.points)
            update_run(session, run_ids[trial.trial_id], status=result.status, steps_done=result.steps_done,
                       diverged_step=result.diverged_step)
    engine.dispose()
    return url


def test_studies_json(results_db):
    result = invoke("studies", "--db", results_db, "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["name"] == "res" and row["n_runs"] == 4 and row["n_completed"] == 2 and row["n_diverged"] == 2


def test_runs_with_final_metrics_and_filters(results_db):
    rows = json.loads(invoke("runs", "res", "--db", results_db, "--json").stdout)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed", "diverged"}
    done = [r for r in rows if r["status"] == "completed"]
    assert all(0.4 < r["final_test_loss"] < 1.0 for r in done)
    picked = json.loads(invoke("runs", "res", "--db", results_db, "--json", "--where",
                               "lr >= 0.05 and lr < 1 and batch_size in (8, 16) and status = 'completed'").stdout)
    assert sorted(r["seed"] for r in picked) == [0, 1] and all(r["lr"] == 0.05 for r in picked)
    none = invoke("runs", "res", "--db", results_db, "--json", "--where", "final_test_loss < 0")
    assert json.loads(none.stdout) == []


@pytest.mark.parametrize("expr", ["1=1; drop table runs", "status = 'x' or 1=1 --", "lr > 0 /* */",
                                  "status = 'completed'); drop table runs; --"])
def test_injections_are_rejected_and_change_nothing(results_db, expr):
    result = invoke("runs", "res", "--db", results_db, "--where", expr)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    engine = sa.create_engine(results_db)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("select count(*) from runs")) == 4
    engine.dispose()


def test_quoted_injection_is_just_a_string(results_db):
    result = invoke("runs", "res", "--db", results_db, "--json", "--where", "status = 'a'' or ''1''=''1'")
    assert result.exit_code == 0 and json.loads(result.stdout) == []


def test_unknown_column_names_the_valid_ones(results_db):
    result = invoke("runs", "res", "--db", results_db, "--where", "learning_rate > 0.1")
    assert result.exit_code == 2 and "learning_rate" in result.stderr and "lr" in result.stderr


def test_show_run_by_trial_id(results_db):
    rows = json.loads(invoke("runs", "res", "--db", results_db, "--json").stdout)
    result = invoke("show", rows[0]["trial_id"], "--db", results_db, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["run"]["trial_id"] == rows[0]["trial_id"]
    assert [p["epoch"] for p in shown["points"]] == [0, 0.25, 0.5]
    plain = invoke("show", str(rows[0]["run_id"]), "--db", results_db)
    assert plain.exit_code == 0 and "trajectory" in plain.stdout


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export(results_db, tmp_path, fmt):
    result = invoke("export", "res", "--db", results_db, "--format", fmt, "-o", str(tmp_path / fmt))
    assert result.exit_code == 0, result.output
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    runs, points = read(tmp_path / fmt / f"runs.{fmt}"), read(tmp_path / fmt / f"points.{fmt}")
    assert len(runs) == 4 and len(points) == 2 * 3 + len(points[points.status == "diverged"])
    assert {"sde_time", "test_loss", "lr", "svag_l"} <= set(points.columns)


@pytest.mark.parametrize("args", [("runs", "nope"), ("show", "t000000"), ("export", "nope", "-o", "x")])
def test_unknown_study_or_run_is_one_line(results_db, args):
    result = invoke(*args, "--db", results_db)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr


def test_database_at_another_revision_is_refused_with_the_command(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url)
    migrate.stamp(url, "base")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # an unknown (newer) revision
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS sweeper_alembic_version (version_num VARCHAR(32))")
        conn.exec_driver_sql("DELETE FROM sweeper_alembic_version")
        conn.exec_driver_sql("INSERT INTO sweeper_alembic_version VALUES ('9999_future')")
    engine.dispose()
    result = invoke("studies", "--db", url)
    assert result.exit_code == 2 and f"sweeper db upgrade --db {url}" in result.stderr


def test_db_upgrade_and_current(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert invoke("db", "upgrade", "--db", url).exit_code == 0
    current = json.loads(invoke("db", "current", "--db", url, "--json").stdout)
    assert current["up_to_date"] and current["current"] == migrate.head()


def test_passwords_are_never_printed():
    result = invoke("db", "current", "--db", "postgresql://alice:s3cret@127.0.0.1:1/nowhere")
    assert result.exit_code == 2 and "s3cret" not in result.output and "***" in result.stderr


def test_unreachable_database_is_one_line_without_the_password():
    result = invoke("studies", "--db", "postgresql://bob:pw123@127.0.0.1:1/nowhere")
    assert result.exit_code == 2 and "pw123" not in result.output
    assert result.stderr.startswith("error: cannot use the database:") and result.stderr.count("\n") == 1


def test_studies_json_reports_interrupted_from_the_heartbeat(tmp_path):
    """A constructed database: a running study whose heartbeat is stale lists as interrupted (its running runs
    too), one beating now as running, a finished one as completed; the stored status stays as it was."""
    import datetime as dt

    from db.models import HEARTBEAT_GRACE_S, Study
    from db.writer import update_study

    url = f"sqlite:///{tmp_path / 'live.db'}"
    spec = make_spec(name="x", seeds=[0], sweep={"batch_size": [8], "lr": [0.05]}, budget={"epochs": 0.5})
    trial = expand(spec)[0]
    now = dt.datetime.now(dt.timezone.utc)
    engine = open_db(url, create=True)
    with Session(engine) as session, session.begin():
        for name, status, beat in (("dead", "running", now - dt.timedelta(seconds=HEARTBEAT_GRACE_S + 60)),
                                   ("alive", "running", now),
                                   ("done", "completed", now - dt.timedelta(days=1))):
            study = ensure_study(session, name, {**spec.model_dump(mode="json"), "name": name})
            run_id = ensure_runs(session, study, [trial])[trial.trial_id]
            update_run(session, run_id, status="completed" if status == "completed" else "running")
            update_study(session, study.id, status=status, heartbeat_at=beat)
    result = invoke("studies", "--db", url, "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {n: r["status"] for n, r in rows.items()} == {"dead": "interrupted", "alive": "running",
                                                        "done": "completed"}
    assert rows["alive"]["heartbeat_at"].startswith(now.isoformat()[:19])
    plain = invoke("studies", "--db", url)
    assert plain.exit_code == 0 and "interrupted" in plain.stdout
    (run,) = json.loads(invoke("runs", "dead", "--db", url, "--json").stdout)
    assert run["status"] == "interrupted"
    listed = invoke("runs", "dead", "--db", url)
    assert listed.exit_code == 0 and "sweeper resume dead" in listed.stdout
    assert [r["status"] for r in json.loads(invoke("runs", "alive", "--db", url, "--json").stdout)] == ["running"]
    with engine.connect() as conn:
        assert conn.scalar(sa.select(Study.status).where(Study.name == "dead")) == "running"
    engine.dispose()


def test_a_study_without_diagnostics_or_verdicts(results_db, tmp_path):
    assert json.loads(invoke("verdicts", "res", "--db", results_db, "--json").stdout) == []
    plain = invoke("verdicts", "res", "--db", results_db)
    assert plain.exit_code == 0 and "no stored verdicts" in plain.stdout
    written = json.loads(invoke("export", "res", "--db", results_db, "-o", str(tmp_path), "--json").stdout)
    rows = {f["table"]: f["rows"] for f in written["files"]}
    assert (rows["runs"], rows["diagnostics"], rows["verdicts"]) == (4, 0, 0)
    assert (tmp_path / "diagnostics.csv").is_file() and (tmp_path / "verdicts.csv").is_file()
