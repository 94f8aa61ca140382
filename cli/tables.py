"""Rich tables for terminal output."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
if not console.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    console = Console(width=240)


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_rows(rows: Iterable[dict[str, Any]], title: str | None = None, columns: list[str] | None = None) -> None:
    rows = list(rows)
    columns = columns or (list(rows[0]) if rows else [])
    columns = [c for c in columns if any(r.get(c) is not None for r in rows)] or columns
    table = Table(title=None if title is None else escape(title), header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*(escape(fmt(row.get(c))) for c in columns))  # values are text, not Rich markup
    console.print(table)
