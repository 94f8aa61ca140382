"""Options shared by several commands."""

from __future__ import annotations

import typer

from sweeper.expand import DEFAULT_MAX_TRIALS

DbOption = typer.Option(None, "--db", envvar="SWEEPER_DB", show_envvar=True,
                        help="Database URL (default sqlite:///sweeper.db; PostgreSQL: postgresql://user@host/db).")
JsonOption = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")
MaxTrialsOption = typer.Option(DEFAULT_MAX_TRIALS, "--max-trials",
                               help="Refuse a study whose grid has more trials (counted before expanding).")
PackOption = typer.Option("auto", "--pack",
                          help="Trials per pack (one process, one vectorized step): 'auto' (pack where it is faster: "
                               "small models on a CPU, memory-bounded on CUDA) or at most N; 1 disables packing.")


def parse_pack(value: str) -> int | str:
    """``--pack``: 'auto' or a whole number ≥ 1; one line, exit 2, otherwise."""
    from cli.output import fail

    if value == "auto":
        return value
    if value.isascii() and value.isdigit() and int(value) >= 1:
        return int(value)
    fail(f"--pack: 'auto' or a whole number ≥ 1 (got {value!r})")
