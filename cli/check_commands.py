"""`sweeper check` and `sweeper report`: verdicts on the theory's predictions, stored, and a study report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from cli.options import DbOption, JsonOption
from cli.output import fail, prepare_output_dir, print_json
from cli.results_commands import engine_or_exit
from cli.tables import print_rows


def register(app: typer.Typer) -> None:
    app.command()(check)
    app.command()(report)


def _load(engine, study: str):
    from db.errors import SweeperDBError
    from sweeper.checks.base import StudyData

    try:
        return StudyData.load(engine, study)
    except SweeperDBError as exc:
        fail(str(exc))


def check(
    name: str = typer.Argument(..., help="lsr, sqrt-rule, svag, nsr, intrinsic-lr, noise-rank, limit-cycles, "
                                         "sharpness, or all."),
    study: str = typer.Argument(..., help="Study name."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Metric the check compares (its default if unset)."),
    tolerance: Optional[float] = typer.Option(None, "--tolerance", help="Override the check's default tolerance."),
    store: bool = typer.Option(True, "--store/--no-store", help="Record the verdict in the verdicts table."),
    db: Optional[str] = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Confirm or refute a prediction on a study's runs; prints the verdict, its statistic and evidence."""
    from sweeper.checks import registry
    from sweeper.checks.base import store as store_verdict

    names = list(registry.MODULES) if name == "all" else [name]
    if name != "all" and name not in registry.MODULES:
        fail(f"unknown check {name!r}; valid: {', '.join(registry.MODULES)}, all")
    if name == "all" and (metric or tolerance is not None):
        fail("--metric and --tolerance apply to one check, not to `all`")
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance > 0):
        fail(f"--tolerance: must be a finite number > 0 (got {tolerance:g})")
    engine = engine_or_exit(db)
    data = _load(engine, study)
    verdicts = [registry.run_check(n, data, metric, tolerance) for n in names]
    if store:
        for verdict in verdicts:
            store_verdict(engine, study, verdict)
    if json_out:
        print_json([v.as_json() for v in verdicts] if name == "all" else verdicts[0].as_json())
        return
    for v in verdicts:
        typer.echo(f"{v.check}: {v.verdict} — {v.summary}")
        if v.missing:
            typer.echo("  to decide, add: " + "; ".join(v.missing))
        if v.evidence and name != "all":
            print_rows(v.evidence, title=f"{v.check} evidence")


def report(
    study: str = typer.Argument(..., help="Study name."),
    out: Path = typer.Option(..., "-o", "--output", help="Output directory (created)."),
    db: Optional[str] = DbOption,
) -> None:
    """Write PNG figures and one HTML page: spec, runs, every check's verdict with its figure."""
    from sweeper.checks import registry
    from sweeper.report import write_report

    engine = engine_or_exit(db)
    data = _load(engine, study)
    prepare_output_dir("-o", out)
    verdicts = registry.run_all(data)
    figures = {v.check: registry.figure(v.check, data, v) for v in verdicts}
    try:
        index = write_report(data, verdicts, out, {k: f for k, f in figures.items() if f is not None})
    except OSError as exc:
        fail(f"-o: cannot write the report into {out}: {exc.strerror or type(exc).__name__}")
    typer.echo(f"{index}")
