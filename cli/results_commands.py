"""Commands that list results: studies, runs (with ``--where``). ``show``, ``export`` and ``verdicts`` live in their
own modules; every command opens its database with :func:`engine_or_exit`. The listings read plain rows
(:mod:`db.rows`), neither pandas nor Alembic, so that they start quickly (issue 11)."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from cli.options import Db, Json, StudyName
from cli.output import database_problem, fail, plain_rows, print_json, warn
from cli.tables import print_rows

FINAL_SHOWN = ("final_epoch", "final_train_loss", "final_test_loss", "final_test_acc")
"""The final metrics ``sweeper runs`` tabulates (``--json`` has every ``final_<metric>``)."""


def register(app: typer.Typer) -> None:
    app.command()(studies)
    app.command()(runs)


def engine_or_exit(db: str | None):
    """The database's Engine, or exit 2 with one line (bad URL, unreachable server, wrong schema revision)."""
    from sqlalchemy.exc import DBAPIError

    from db.engine import open_db
    from db.errors import SweeperDBError

    try:
        return open_db(db)
    except SweeperDBError as exc:
        fail(str(exc))
    except DBAPIError as exc:  # unreachable server, bad credentials, a file that is not a database, ...
        fail(database_problem(exc))


def studies(db: Db = None, json_out: Json = False) -> None:
    """List the studies in the database with their run counts."""
    from db.rows import list_studies

    rows = plain_rows(list_studies(engine_or_exit(db)))
    if json_out:
        print_json(rows)
    else:
        print_rows(rows, title="studies", columns=["id", "name", "status", "n_runs", "n_completed", "n_running",
                                                   "n_pending", "n_failed", "n_diverged", "created_at"])


def runs(
    study: StudyName,
    where: Annotated[str | None, typer.Option(
        "--where", help="Filter over run columns and final_<metric>, e.g. \"lr >= 0.1 and status = 'completed'\" "
                        "(README.md, 'Command line').")] = None,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """A study's runs with their hyperparameters and final metrics (final_<metric>), optionally filtered."""
    from db.errors import SweeperDBError
    from db.models import RUN_HPARAMS
    from db.rows import RUNS_COLUMNS, runs_with_final
    from db.where import WhereError

    engine = engine_or_exit(db)
    try:
        found = runs_with_final(engine, study, where=where)
    except SweeperDBError as exc:
        fail(str(exc))
    except WhereError as exc:
        fail(f"--where: {exc}")
    if where and not found:
        _warn_unmeasured(engine, study, where, list(RUNS_COLUMNS))
    rows = plain_rows({k: v for k, v in row.items() if k != "config"} for row in found)
    if json_out:
        print_json(rows)
        return
    lost = sum(r["status"] == "interrupted" for r in rows)
    note = f" ({lost} interrupted: the driver died; continue with `sweeper resume {study}`)" if lost else ""
    print_rows(rows, title=f"{study}: {len(rows)} runs{note}",
               columns=["run_id", "trial_id", "status", *RUN_HPARAMS, "steps_done", *FINAL_SHOWN, "error"])


_QUOTED = re.compile(r"'(?:[^'\\]|''|\\.)*'|\"(?:[^\"\\]|\"\"|\\.)*\"")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def referenced_columns(where: str, columns: list[str]) -> list[str]:
    """The columns of ``columns`` that the ``--where`` expression names (string literals are not names)."""
    named = set(_NAME.findall(_QUOTED.sub(" ", where)))
    return [c for c in columns if c in named]


def _warn_unmeasured(engine, study: str, where: str, columns: list[str]) -> None:
    """A filter that matched nothing because a column it names is NULL in every run of the study (a metric this
    study never measures, such as final_test_acc on a regression) says so in one line."""
    from db.rows import runs_with_final

    def matches(expr: str) -> bool:
        return bool(runs_with_final(engine, study, where=expr))

    for column in referenced_columns(where, columns):
        if not matches(f"{column} is not null") and matches(f"{column} is null"):
            warn(f"--where: {column} is NULL for every run of study {study!r} (never measured): a comparison on "
                 f"it matches no run; filter on a column the study measures")
