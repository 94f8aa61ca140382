"""`sweeper calibrate`: a check's measured operating characteristic — known-truth studies run many times."""

from __future__ import annotations

from typing import Optional

import typer

from cli.options import JsonOption
from cli.output import fail, print_json


def register(app: typer.Typer) -> None:
    app.command()(calibrate)


def calibrate(
    check: str = typer.Argument(..., help="The check to calibrate (lsr, svag, limit-cycles, noise-rank), or all."),
    replicates: int = typer.Option(20, "--replicates", "-r", min=1, help="Studies per case, each with fresh seeds."),
    seeds: int = typer.Option(2, "--seeds", min=1, help="Seeds per setting in each replicate study."),
    case: Optional[str] = typer.Option(None, "--case", help="Only this case (holds, fails, borderline)."),
    json_out: bool = JsonOption,
) -> None:
    """Run each known-truth case of CHECK R times (in-process, scratch database) and tabulate verdict against
    truth: wrong-way rate (REFUTED when it holds, CONFIRMED when it fails) and decisive rate."""
    from sweeper.calibrate.cases import CASES, cases_for
    from sweeper.calibrate.run import run_case, table

    try:
        chosen = CASES if check == "all" else cases_for(check)
    except KeyError as exc:
        fail(str(exc.args[0]))
    if case is not None:
        chosen = [c for c in chosen if c.name == case]
        if not chosen:
            fail(f"--case {case!r}: no such case for {check}; cases are holds, fails, borderline")
    results = []
    for c in chosen:
        if not json_out:
            typer.echo(f"{c.check} / {c.name}: {c.truth()[2]}", err=True)
        results.append(run_case(c, replicates, seeds))
    if json_out:
        print_json([r.as_json() for r in results])
    else:
        typer.echo(table(results))
