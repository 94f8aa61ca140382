"""Commands that run things: launch, resume, trial."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.options import DbOption, JsonOption
from cli.output import database_problem, fail, print_json
from sweeper.expand import expand, find_trial
from sweeper.spec import SpecError, StudySpec, load_spec


def read_spec(path: Path) -> StudySpec:
    try:
        return load_spec(path)
    except SpecError as exc:
        fail(*exc.lines)


def register(app: typer.Typer) -> None:
    app.command()(launch)
    app.command()(resume)
    app.command()(trial)


def _execute(run, target, json_out: bool, **option_fields) -> None:
    """Run ``launch_study``/``resume_study`` on ``target`` and report; one-line errors for bad input."""
    from sqlalchemy.exc import OperationalError

    from db.errors import SweeperDBError
    from sweeper.launch.runner import LaunchError, LaunchOptions

    try:
        outcome = run(target, LaunchOptions(progress=not json_out, **option_fields))
    except (LaunchError, SweeperDBError) as exc:
        fail(str(exc))
    except OperationalError as exc:
        fail(database_problem(exc))
    _outcome(outcome, json_out)


def _outcome(outcome, json_out: bool) -> None:
    if json_out:
        print_json({"study": outcome.study, "status": outcome.status, "runs": outcome.counts,
                    "already_done": outcome.already_done})
    else:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(outcome.counts.items()))
        prefix = "already finished" if outcome.already_done else "finished"
        typer.echo(f"study {outcome.study!r} {prefix}: {outcome.status} ({counts}); "
                   f"see `sweeper runs {outcome.study}`")
    if not outcome.ok:
        raise typer.Exit(1)


def launch(
    spec: Path = typer.Argument(..., help="Study file (TOML)."),
    db: Optional[str] = DbOption,
    address: Optional[str] = typer.Option(None, "--address", envvar="RAY_ADDRESS",
                                          help="Ray cluster address (default: start a local Ray)."),
    cpus_per_trial: float = typer.Option(1.0, "--cpus-per-trial", help="CPUs reserved per trial."),
    gpus_per_trial: float = typer.Option(0.0, "--gpus-per-trial", help="GPUs per trial; fractions share a GPU."),
    max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent", help="Trials running at once."),
    max_failures: int = typer.Option(2, "--max-failures", help="Retries of a trial whose worker died."),
    storage: Optional[str] = typer.Option(None, "--storage",
                                          help="Ray Tune storage for checkpoints (shared by all nodes)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the expanded trials and exit."),
    json_out: bool = JsonOption,
) -> None:
    """Launch a study on Ray Tune; every point lands in the database. Exit 1 if a trial failed."""
    study = read_spec(spec)
    trials = expand(study)
    if dry_run:
        rows = [{"trial_id": t.trial_id, "index": t.index, **t.hyperparameters()} for t in trials]
        if json_out:
            print_json(rows)
        else:
            from cli.tables import print_rows

            print_rows(rows, title=f"{study.name}: {len(rows)} trials")
        return
    from sweeper.launch.runner import launch_study

    _execute(launch_study, study, json_out, db_url=db, address=address, cpus_per_trial=cpus_per_trial,
             gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, max_failures=max_failures, storage=storage)


def resume(
    study: str = typer.Argument(..., help="Study name."),
    db: Optional[str] = DbOption,
    address: Optional[str] = typer.Option(None, "--address", envvar="RAY_ADDRESS"),
    cpus_per_trial: float = typer.Option(1.0, "--cpus-per-trial"),
    gpus_per_trial: float = typer.Option(0.0, "--gpus-per-trial"),
    max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent"),
    max_failures: int = typer.Option(2, "--max-failures"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Also rerun trials that failed."),
    json_out: bool = JsonOption,
) -> None:
    """Continue a study's unfinished trials from their last checkpoints."""
    from sweeper.launch.runner import resume_study

    _execute(resume_study, study, json_out, db_url=db, address=address, cpus_per_trial=cpus_per_trial,
             gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, max_failures=max_failures,
             retry_failed=retry_failed)


def trial(
    spec: Path = typer.Argument(..., help="Study file (TOML)."),
    trial_key: str = typer.Option(..., "--trial", help="Trial id (from --dry-run) or index."),
    json_out: bool = JsonOption,
) -> None:
    """Run one expanded trial in the foreground (no Ray, no database)."""
    from sweeper.reporter import ListReporter
    from sweeper.train.loop import run_trial

    trials = expand(read_spec(spec))
    try:
        config = find_trial(trials, trial_key)
    except KeyError as exc:
        fail(exc.args[0])
    result = run_trial(config, ListReporter())
    if json_out:
        print_json({"config": config.model_dump(mode="json"), "status": result.status, "points": result.points})
        return
    from cli.tables import print_rows

    print_rows(result.points, title=f"trial {config.trial_id}: {result.status} after {result.steps_done} steps "
                                    f"on {result.device}")
