"""``sweeper verdicts STUDY``: the history of verdicts stored by ``sweeper check``, oldest first."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.options import CheckName, Db, Json, StudyName
from cli.output import fail, print_json, records
from cli.results_commands import engine_or_exit
from cli.tables import fmt, print_rows

COLUMNS = ("id", "check", "verdict", "statistic", "tolerance", "provisional", "summary", "created_at")
"""What ``sweeper verdicts`` shows of each stored verdict (``--json`` adds ``parameters`` and ``evidence``)."""


def register(app: typer.Typer) -> None:
    app.command()(verdicts)


def verdicts(
    study: StudyName,
    check: Annotated[CheckName, typer.Option("--check", help="Only this check's verdicts.")] = CheckName["all"],
    db: Db = None,
    json_out: Json = False,
) -> None:
    """Every verdict stored for a study (oldest first): check, verdict, statistic, tolerance, when, and the
    verdict the finished runs alone gave when runs were still unfinished (provisional)."""
    from db.errors import SweeperDBError
    from db.queries import verdicts_frame

    engine = engine_or_exit(db)
    try:
        frame = verdicts_frame(engine, study, None if check.value == "all" else check.value)
    except SweeperDBError as exc:
        fail(str(exc))
    rows = records(verdict_table(frame))
    if json_out:
        print_json(rows)
        return
    if not rows:
        typer.echo(f"{study}: no stored verdicts; `sweeper check NAME {study}` stores one")
        return
    for row in rows:
        row["tolerance"] = thresholds(row["tolerance"])
    print_rows(rows, title=f"{study}: {len(rows)} verdicts", columns=list(COLUMNS))


def thresholds(tolerance: Any) -> Any:
    """A check's tolerance as a short text, ``relative=0.05, alpha=0.05`` (its ``why`` left to ``--json``)."""
    if not isinstance(tolerance, dict):
        return tolerance
    return ", ".join(f"{k}={fmt(v)}" for k, v in tolerance.items() if k != "why")


def verdict_table(frame: Any) -> Any:
    """``db.queries.verdicts_frame`` rows with what ``evidence`` holds pulled out as columns: ``tolerance``,
    ``summary`` and ``provisional`` (the finished runs' verdict when the stored one is provisional, else None)."""
    evidence = frame["evidence"].map(lambda e: e or {})
    provisional = evidence.map(lambda e: ((e.get("details") or {}).get("provisional") or {}).get("verdict"))
    table = frame.assign(tolerance=evidence.map(lambda e: e.get("tolerance")), provisional=provisional,
                         summary=evidence.map(lambda e: e.get("summary")))
    return table[[*COLUMNS, "parameters", "evidence"]]
