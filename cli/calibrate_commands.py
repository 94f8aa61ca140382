"""`sweeper calibrate`: a check's measured operating characteristic — known-truth studies run many times."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import CalibrationCase, CheckName, Json
from cli.output import fail, print_json


def register(app: typer.Typer) -> None:
    app.command()(calibrate)


def calibrate(
    check: Annotated[CheckName, typer.Argument(
        metavar="CHECK", show_default=False,
        help="The check to calibrate (those with known-truth cases: lsr, svag, sqrt-rule, limit-cycles, noise-rank, "
             "nsr), or all.")],
    replicates: Annotated[int, typer.Option("--replicates", "-r", min=1,
                                            help="Studies per case, each with fresh seeds.")] = 20,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per setting in each replicate study.")] = 2,
    case: Annotated[CalibrationCase | None, typer.Option("--case", help="Only this case.")] = None,
    json_out: Json = False,
) -> None:
    """Run each known-truth case of CHECK R times (in-process, scratch database) and tabulate verdict against
    truth: wrong-way rate (REFUTED when it holds, CONFIRMED when it fails) and decisive rate."""
    from sweeper.calibrate.cases import CASES, cases_for
    from sweeper.calibrate.run import run_case, table

    try:
        chosen = CASES if check.value == "all" else cases_for(check.value)
    except KeyError as exc:
        fail(str(exc.args[0]))
    if case is not None:
        chosen = [c for c in chosen if c.name == case.value]
        if not chosen:
            fail(f"--case {case.value}: {check.value} has no such case")
    results = []
    for c in chosen:
        if not json_out:
            typer.echo(f"{c.check} / {c.name}: {c.truth()[2]}", err=True)
        results.append(run_case(c, replicates, seeds))
    if json_out:
        print_json([r.as_json() for r in results])
    else:
        typer.echo(table(results))
