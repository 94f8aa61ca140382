"""Shared CLI output: strict JSON (non-finite floats as "NaN"/"Infinity"/"-Infinity") and one-line errors."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer


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


def fail(*lines: str, code: int = 2) -> NoReturn:
    """Print each line as ``error: …`` on stderr and exit with ``code``."""
    for line in lines:
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


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
