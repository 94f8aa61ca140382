"""Options shared by several commands."""

from __future__ import annotations

import typer

DbOption = typer.Option(None, "--db", envvar="SWEEPER_DB", show_envvar=True,
                        help="Database URL (default sqlite:///sweeper.db; PostgreSQL: postgresql://user@host/db).")
JsonOption = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")
