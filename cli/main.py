"""The ``sweeper`` command line (Typer)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.output import fail, print_json
from sweeper.expand import expand, find_trial
from sweeper.spec import SpecError, StudySpec, load_spec

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Sweeps of SGD/Adam runs with a results database.")


def read_spec(path: Path) -> StudySpec:
    try:
        return load_spec(path)
    except SpecError as exc:
        fail(*exc.lines)


@app.command()
def trial(
    spec: Path = typer.Argument(..., help="Study file (TOML)."),
    trial_key: str = typer.Option(..., "--trial", help="Trial id (from --dry-run) or index."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
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
    typer.echo(f"trial {config.trial_id}: {result.status} after {result.steps_done} steps on {result.device}")
    last = result.points[-1]
    typer.echo("  ".join(f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float)))


@app.command()
def launch(
    spec: Path = typer.Argument(..., help="Study file (TOML)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the expanded trials and exit."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Launch a study (Ray Tune); with --dry-run print its expanded trials."""
    study = read_spec(spec)
    trials = expand(study)
    if dry_run:
        rows = [{"trial_id": t.trial_id, "index": t.index, **t.hyperparameters()} for t in trials]
        if json_out:
            print_json(rows)
        else:
            for row in rows:
                typer.echo("  ".join(f"{k}={v}" for k, v in row.items() if v is not None))
        return
    fail("launching on Ray is not available in this build; use --dry-run or `sweeper trial`")
