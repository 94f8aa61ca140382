"""`sweeper check` and `sweeper report`: verdicts on the theory's predictions, stored, and a study report."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from cli.options import CheckName, Db, Json, OutputDir, StudyName
from cli.output import EXIT_FAILED, fail, prepare_output_dir, print_json
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
    name: Annotated[CheckName, typer.Argument(
        metavar="NAME", show_default=False, help="The check (a prediction of docs/theory.md), or all.")],
    study: StudyName,
    metric: Annotated[str | None, typer.Option(
        "--metric", help="Metric the check compares (its default if unset).")] = None,
    tolerance: Annotated[float | None, typer.Option(
        "--tolerance", help="Override the check's default tolerance (a finite number > 0).")] = None,
    store: Annotated[bool, typer.Option("--store/--no-store", help="Record the verdict in the verdicts table.")] = True,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """Confirm or refute a prediction on a study's runs; prints the verdict, its statistic and evidence."""
    from sweeper.checks import registry
    from sweeper.checks.base import store as store_verdict

    every = name.value == "all"
    names = list(registry.MODULES) if every else [name.value]
    if every and (metric or tolerance is not None):
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
        print_json([v.as_json() for v in verdicts] if every else verdicts[0].as_json())
        return
    for v in verdicts:
        typer.echo(f"{v.check}: {v.verdict} — {v.summary}")
        if v.missing:
            typer.echo("  to decide, add: " + "; ".join(v.missing))
        if v.evidence and not every:
            print_rows(v.evidence, title=f"{v.check} evidence")


def report(study: StudyName, out: OutputDir, db: Db = None, json_out: Json = False) -> None:
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
        fail(f"-o: cannot write the report into {out}: {exc.strerror or type(exc).__name__}", code=EXIT_FAILED)
    if json_out:
        print_json({"study": study, "index": str(index), "verdicts": [v.as_json() for v in verdicts]})
    else:
        typer.echo(f"{index}")
