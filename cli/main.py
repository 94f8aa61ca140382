"""The ``sweeper`` command line (Typer): study commands, result commands and database commands."""

from __future__ import annotations

import typer

from cli import calibrate_commands, check_commands, db_commands, results_commands, study_commands

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Sweeps of SGD/Adam runs with a results database, to confirm or refute SGD theory.")
study_commands.register(app)
results_commands.register(app)
check_commands.register(app)
calibrate_commands.register(app)
app.add_typer(db_commands.app, name="db", help="Database schema: upgrade, current revision.")
