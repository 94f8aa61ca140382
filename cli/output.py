"""Shared CLI output: strict JSON (non-finite floats as "NaN"/"Infinity"/"-Infinity"), plain records from rows and
DataFrames, one-line errors and warnings, and the exit codes."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import typer

EXIT_FAILED = 1
"""The command ran, but what it did failed (a trial failed, a write failed part-way)."""
EXIT_BAD_INPUT = 2
"""Bad input: a usage error or input refused before anything was done."""


def _portable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_portable(value), allow_nan=False) + "\n")


def plain(value: Any) -> Any:
    """A DataFrame cell as JSON would hold it: NULL/NaN/NA as None, timestamps as ISO strings, numpy scalars as
    Python numbers, arrays as lists."""
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        value = value.tolist()
    if value is None or type(value).__name__ == "NAType" or (isinstance(value, float) and math.isnan(value)):
        return None  # "not measured" (NULL), which pandas reads as NaN; shown as empty
    return value.isoformat() if hasattr(value, "isoformat") else value


def plain_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows (e.g. of :mod:`db.rows`) as plain dicts (see :func:`plain`)."""
    return [{k: plain(v) for k, v in row.items()} for row in rows]


def records(frame: Any) -> list[dict[str, Any]]:
    """DataFrame rows as plain dicts (see :func:`plain`)."""
    return plain_rows(frame.to_dict(orient="records"))


def fail(*lines: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print each line as ``error: …`` on stderr and exit with ``code`` (bad input unless told)."""
    for line in lines:
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


def warn(line: str) -> None:
    """One ``warning: …`` line on stderr; the command goes on."""
    typer.echo(f"warning: {line}", err=True)


def database_problem(exc: Exception) -> str:
    """One line for a database that cannot be reached (driver messages carry no password)."""
    first = str(getattr(exc, "orig", exc)).strip().splitlines()
    return f"cannot use the database: {first[0] if first else type(exc).__name__}"


def prepare_output_dir(flag: str, out: Path) -> None:
    """Create the output folder ``out`` (and its parents), or exit 2 with one line saying why it cannot be."""
    if out.exists() and not out.is_dir():
        fail(f"{flag}: {out} exists and is not a folder (give a folder to write into)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"{flag}: cannot create the folder {out}: {exc.strerror or type(exc).__name__}")
    if not os.access(out, os.W_OK | os.X_OK):
        fail(f"{flag}: cannot write into {out}: permission denied")
