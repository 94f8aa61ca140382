"""Options shared by several commands."""

from __future__ import annotations

import typer

from sweeper.expand import DEFAULT_MAX_TRIALS

DbOption = typer.Option(None, "--db", envvar="SWEEPER_DB", show_envvar=True,
                        help="Database URL (default sqlite:///sweeper.db; PostgreSQL: postgresql://user@host/db).")
JsonOption = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")
MaxTrialsOption = typer.Option(DEFAULT_MAX_TRIALS, "--max-trials",
                               help="Refuse a study whose grid has more trials (counted before expanding).")
