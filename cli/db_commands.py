"""`sweeper db upgrade|current`: the schema's Alembic revision."""

from __future__ import annotations

import typer

from cli.options import Db, Json
from cli.output import fail, print_json

app = typer.Typer(no_args_is_help=True)


def _url(db: str | None):
    """The parsed database URL, or exit 2 with one line naming the supported schemes."""
    from db.engine import DatabaseURLError, resolve_url

    try:
        return resolve_url(db)
    except DatabaseURLError as exc:
        fail(str(exc))


@app.command()
def upgrade(db: Db = None, json_out: Json = False) -> None:
    """Create the database or migrate it to this version's schema (safe to repeat)."""
    from db import migrate
    from db.engine import redact

    url = _url(db)
    try:
        before = migrate.current(url)
        migrate.upgrade(url)
    except Exception as exc:  # a database that cannot be reached or migrated: one line, no URL password
        fail(f"cannot upgrade {redact(url)}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    after = migrate.head()
    if json_out:
        print_json({"database": redact(url), "before": before, "after": after})
    else:
        typer.echo(f"{redact(url)}: {before or 'empty'} → {after}")


@app.command()
def current(db: Db = None, json_out: Json = False) -> None:
    """Print the database's revision and this code's head revision."""
    from db import migrate
    from db.engine import redact

    url = _url(db)
    try:
        rev = migrate.current(url)
    except Exception as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        fail(f"cannot read {redact(url)}: {type(exc).__name__}" + (f": {detail[0]}" if detail else ""))
    head = migrate.head()
    if json_out:
        print_json({"database": redact(url), "current": rev, "head": head, "up_to_date": rev == head})
        return
    state = "up to date" if rev == head else f"needs `sweeper db upgrade` (head is {head})"
    typer.echo(f"{redact(url)}: {rev or 'empty'} — {state}")
