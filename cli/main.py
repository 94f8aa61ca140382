"""The ``sweeper`` command line (Typer): study commands, result commands and database commands.

Exit codes: 0 success; 1 the command ran but its outcome failed (a trial failed, a write failed part-way);
2 bad input — a usage error (unknown option, missing argument, a value outside its choices) or input the command
refuses before doing anything. Every error is one line ``error: …`` on stderr.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from cli import (
    calibrate_commands,
    check_commands,
    db_commands,
    export_command,
    results_commands,
    serve_commands,
    show_command,
    study_commands,
    verdict_commands,
)


class OneLineErrors(TyperGroup):
    """The root group: Click's usage errors (and aborts) become one ``error: …`` line on stderr, exit 2 (1)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError

        from cli.output import EXIT_BAD_INPUT, EXIT_FAILED

        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        except NoArgsIsHelpError as exc:  # `sweeper`, `sweeper db`: the help, as a usage error
            typer.echo(exc.format_message(), err=True)
            code = EXIT_BAD_INPUT
        except ClickException as exc:
            typer.echo(f"error: {usage_line(exc)}", err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            code = EXIT_FAILED
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def usage_line(exc: Exception) -> str:
    """A Click error as one line: the command it concerns, the message, and where to read the usage."""
    message = re.sub(r"\s+", " ", exc.format_message()).strip()  # type: ignore[attr-defined]
    message = message.replace("Value error, ", "")  # typer's choice coercion prefix
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return message
    return f"{ctx.command_path}: {message} (see `{ctx.command_path} --help`)"


app = typer.Typer(name="sweeper", cls=OneLineErrors, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Sweeps of SGD/Adam runs with a results database, to confirm or refute SGD theory.")
study_commands.register(app)
results_commands.register(app)
show_command.register(app)
export_command.register(app)
check_commands.register(app)
verdict_commands.register(app)
calibrate_commands.register(app)
serve_commands.register(app)
app.add_typer(db_commands.app, name="db", help="Database schema: upgrade, current revision.")
