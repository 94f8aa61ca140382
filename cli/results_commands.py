"""Commands that read results: studies, runs, show, export."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Optional

import typer

from cli.options import DbOption, JsonOption
from cli.output import database_problem, fail, prepare_output_dir, print_json
from cli.tables import print_rows

RUN_SUMMARY = ["run_id", "trial_id", "status", "optimizer", "batch_size", "lr", "weight_decay", "svag_l", "seed",
               "kappa", "steps_done", "final_epoch", "final_train_loss", "final_test_loss", "final_test_acc", "error"]


def register(app: typer.Typer) -> None:
    app.command()(studies)
    app.command()(runs)
    app.command()(show)
    app.command()(export)


def engine_or_exit(db: str | None):
    from sqlalchemy.exc import DBAPIError

    from db.engine import open_db
    from db.errors import SweeperDBError

    try:
        return open_db(db)
    except SweeperDBError as exc:
        fail(str(exc))
    except DBAPIError as exc:  # unreachable server, bad credentials, a file that is not a database, ...
        fail(database_problem(exc))


def _plain(value):
    if isinstance(value, float) and value != value:
        return None  # pandas reads "not measured" (NULL) as NaN; shown as empty
    return value.isoformat() if hasattr(value, "isoformat") else value


def _records(frame) -> list[dict]:
    """DataFrame rows as plain dicts (NaN → None, timestamps as ISO strings)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def studies(db: Optional[str] = DbOption, json_out: bool = JsonOption) -> None:
    """List the studies in the database with their run counts."""
    from db.queries import list_studies

    frame = list_studies(engine_or_exit(db))
    rows = _records(frame.drop(columns=[c for c in ("spec",) if c in frame.columns]))
    if json_out:
        print_json(rows)
    else:
        print_rows(rows, title="studies", columns=["id", "name", "status", "n_runs", "n_completed", "n_running",
                                                   "n_pending", "n_failed", "n_diverged", "created_at"])


def runs(
    study: str = typer.Argument(..., help="Study name."),
    where: Optional[str] = typer.Option(None, "--where", help="Filter, e.g. \"lr >= 0.1 and status = 'completed'\"."),
    db: Optional[str] = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """A study's runs with their hyperparameters and final metrics (final_<metric>), optionally filtered."""
    from db.errors import SweeperDBError
    from db.queries import runs_with_final
    from db.where import WhereError

    try:
        frame = runs_with_final(engine_or_exit(db), study, where=where)
    except SweeperDBError as exc:
        fail(str(exc))
    except WhereError as exc:
        fail(f"--where: {exc}")
    rows = _records(frame.drop(columns=["config"]))
    if json_out:
        print_json(rows)
    else:
        lost = sum(r["status"] == "interrupted" for r in rows)
        note = f" ({lost} interrupted: the driver died; continue with `sweeper resume {study}`)" if lost else ""
        print_rows(rows, title=f"{study}: {len(rows)} runs{note}", columns=RUN_SUMMARY)


def show(
    run: str = typer.Argument(..., help="Run id (number) or trial id."),
    study: Optional[str] = typer.Option(None, "--study", help="Study, when a trial id is in several."),
    db: Optional[str] = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """One run: config, status and trajectory."""
    from db.errors import SweeperDBError
    from db.queries import get_run, points_frame

    engine = engine_or_exit(db)
    run_id = int(run) if run.isascii() and run.isdigit() else None
    if run_id is not None and run_id >= 2**63:
        fail(f"no run with id {run} (run ids are below 2**63; `sweeper runs STUDY` lists them)")
    try:
        found = get_run(engine, run if run_id is None else run_id, study)
    except SweeperDBError as exc:
        fail(str(exc))
    info = found.as_dict()
    points = _records(points_frame(engine, found.study_id, [found.id]).drop(
        columns=["run_id", "trial_id", "status", "optimizer", "model", "dataset", "batch_size", "lr",
                 "weight_decay", "svag_l", "seed", "momentum", "beta1", "beta2", "eps", "scaling_rule", "kappa"],
        errors="ignore"))
    if json_out:
        print_json({"run": {k: _plain(v) for k, v in info.items()},
                    "points": points})
        return
    summary = {k: v for k, v in info.items() if k != "config"}
    print_rows([{"field": k, "value": v} for k, v in summary.items()], title=f"run {found.id} ({found.trial_id})")
    print_rows(points, title="trajectory")


def export(
    study: str = typer.Argument(..., help="Study name."),
    out: Path = typer.Option(..., "-o", "--output", help="Output directory (created)."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    db: Optional[str] = DbOption,
) -> None:
    """Write a study's runs and points as runs.<fmt> and points.<fmt>."""
    from db.errors import SweeperDBError
    from db.queries import points_frame, runs_frame

    if fmt not in ("csv", "parquet"):
        fail(f"--format: {fmt!r} is not one of csv, parquet")
    engine = engine_or_exit(db)
    if out.exists() and not out.is_dir():
        fail(f"-o: {out} exists and is not a folder (give a folder to write into)")
    try:
        frames = {"runs": runs_frame(engine, study), "points": points_frame(engine, study)}
    except SweeperDBError as exc:
        fail(str(exc))
    if fmt == "parquet" and not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
        fail("--format parquet needs pyarrow: pip install pyarrow")
    prepare_output_dir("-o", out)
    frames["runs"]["config"] = frames["runs"]["config"].map(json.dumps)
    for name, frame in frames.items():
        path = out / f"{name}.{fmt}"
        try:
            if fmt == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)
        except OSError as exc:
            fail(f"-o: cannot write {path}: {exc.strerror or type(exc).__name__}")
        typer.echo(f"{path}: {len(frame)} rows")
