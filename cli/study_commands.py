"""Commands that run things: launch, resume, trial."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import (
    DEFAULT_CPUS_PER_TRIAL,
    DEFAULT_GPUS_PER_TRIAL,
    DEFAULT_MAX_FAILURES,
    DEFAULT_PACK,
    Address,
    CpusPerTrial,
    Db,
    GpusPerTrial,
    Json,
    MaxConcurrent,
    MaxFailures,
    MaxTrials,
    Pack,
    SpecFile,
    StudyName,
    parse_pack,
)
from cli.output import EXIT_BAD_INPUT, EXIT_FAILED, database_problem, fail, print_json
from sweeper.limits import DEFAULT_MAX_TRIALS

if TYPE_CHECKING:
    from sweeper.spec import StudySpec


def read_spec(path: Path, max_trials: int | None = None) -> StudySpec:
    """The validated spec at ``path``; with ``max_trials``, also refused when its grid is larger (counted from the
    axes, before anything is expanded). Exits 2 with one line per problem."""
    from sweeper.expand import TooManyTrials, check_trial_count
    from sweeper.spec import SpecError, load_spec

    try:
        spec = load_spec(path)
        if max_trials is not None:
            check_trial_count(spec, max_trials)
        return spec
    except SpecError as exc:
        fail(*exc.lines)
    except TooManyTrials as exc:
        fail(f"sweep: {exc}")


def check_run_options(cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, max_concurrent: int | None = None,
                      max_failures: int = 0, max_trials: int = 1) -> None:
    """Refuse impossible resource options in one line (exit 2), before anything is read, expanded or written."""
    import math

    for flag, value in (("--cpus-per-trial", cpus_per_trial), ("--gpus-per-trial", gpus_per_trial)):
        if not math.isfinite(value) or value < 0:
            fail(f"{flag}: must be a finite number ≥ 0 (got {value:g})")
    if gpus_per_trial > 1 and not gpus_per_trial.is_integer():
        fail(f"--gpus-per-trial: above 1 it must be a whole number of GPUs (got {gpus_per_trial:g})")
    if max_concurrent is not None and max_concurrent < 1:
        fail(f"--max-concurrent: must be ≥ 1 (got {max_concurrent})")
    if max_failures < 0:
        fail(f"--max-failures: must be ≥ 0 (got {max_failures})")
    if max_trials < 1:
        fail(f"--max-trials: must be ≥ 1 (got {max_trials})")


def _check_storage(storage: str) -> None:
    """``--storage`` must be a folder that exists or can be created (on a cluster, one every node mounts)."""
    if "://" in storage:  # sweeper keeps its packs file, journal and driver lock beside the checkpoints
        fail(f"--storage: {storage} is a URI; use a folder every node mounts (e.g. NFS)")
    path = Path(storage).expanduser()
    if path.exists() and not path.is_dir():
        fail(f"--storage: {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--storage: cannot create the folder {path}: {exc.strerror or type(exc).__name__}")


def _check_db_url(db: str | None) -> None:
    """A database URL sweeper can use (SQLite or PostgreSQL), checked before anything else is done."""
    from db.engine import DatabaseURLError, resolve_url

    try:
        resolve_url(db)
    except DatabaseURLError as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    app.command()(launch)
    app.command()(resume)
    app.command()(trial)


def _execute(run, target, json_out: bool, **option_fields) -> None:
    """Run ``launch_study``/``resume_study`` on ``target`` and report; one-line errors for bad input."""
    from sqlalchemy.exc import DBAPIError

    from db.errors import SweeperDBError
    from sweeper.launch.runner import LaunchError, LaunchOptions
    from sweeper.spec import SpecError

    try:
        outcome = run(target, LaunchOptions(progress=not json_out, **option_fields))
    except (LaunchError, SweeperDBError) as exc:  # bad input (2), or a study stopped by a fault (StudyStopped: 1)
        fail(str(exc), code=getattr(exc, "exit_code", EXIT_BAD_INPUT))
    except SpecError as exc:  # a stored spec that this version refuses (resume)
        fail(*exc.lines)
    except DBAPIError as exc:
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
        raise typer.Exit(EXIT_FAILED)


def launch(
    spec: SpecFile,
    db: Db = None,
    address: Address = None,
    cpus_per_trial: CpusPerTrial = DEFAULT_CPUS_PER_TRIAL,
    gpus_per_trial: GpusPerTrial = DEFAULT_GPUS_PER_TRIAL,
    max_concurrent: MaxConcurrent = None,
    max_failures: MaxFailures = DEFAULT_MAX_FAILURES,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Ray Tune storage for checkpoints (shared by all nodes).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the expanded trials and exit.")] = False,
    max_trials: MaxTrials = DEFAULT_MAX_TRIALS,
    pack: Pack = DEFAULT_PACK,
    json_out: Json = False,
) -> None:
    """Launch a study on Ray Tune; every point lands in the database. Exit 1 if a trial failed."""
    check_run_options(cpus_per_trial, gpus_per_trial, max_concurrent, max_failures, max_trials)
    pack_size = parse_pack(pack)
    if not dry_run:
        _check_db_url(db)
    study = read_spec(spec, max_trials)
    if storage is not None and not dry_run:
        _check_storage(storage)
    from sweeper.expand import expand

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
             gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, max_failures=max_failures, storage=storage,
             pack=pack_size)


def resume(
    study: StudyName,
    db: Db = None,
    address: Address = None,
    cpus_per_trial: CpusPerTrial = DEFAULT_CPUS_PER_TRIAL,
    gpus_per_trial: GpusPerTrial = DEFAULT_GPUS_PER_TRIAL,
    max_concurrent: MaxConcurrent = None,
    max_failures: MaxFailures = DEFAULT_MAX_FAILURES,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Also rerun trials that failed.")] = False,
    pack: Pack = DEFAULT_PACK,
    json_out: Json = False,
) -> None:
    """Continue a study's unfinished trials from their last checkpoints."""
    from sweeper.launch.runner import resume_study

    check_run_options(cpus_per_trial, gpus_per_trial, max_concurrent, max_failures)
    pack_size = parse_pack(pack)
    _check_db_url(db)
    _execute(resume_study, study, json_out, db_url=db, address=address, cpus_per_trial=cpus_per_trial,
             gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, max_failures=max_failures,
             retry_failed=retry_failed, pack=pack_size)


def trial(
    spec: SpecFile,
    trial_key: Annotated[str, typer.Option("--trial", help="Trial id (from --dry-run) or index.",
                                           show_default=False)],
    max_trials: MaxTrials = DEFAULT_MAX_TRIALS,
    json_out: Json = False,
) -> None:
    """Run one expanded trial in the foreground (no Ray, no database)."""
    from sweeper.expand import expand, find_trial
    from sweeper.reporter import ListReporter
    from sweeper.train.loop import run_trial

    check_run_options(max_trials=max_trials)
    trials = expand(read_spec(spec, max_trials))
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
