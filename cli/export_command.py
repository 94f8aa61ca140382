"""``sweeper export STUDY``: runs, points, diagnostics and verdicts as files for pandas, R or a spreadsheet."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.options import Db, ExportFormat, Json, OutputDir, StudyName
from cli.output import EXIT_FAILED, fail, prepare_output_dir, print_json
from cli.results_commands import engine_or_exit

TABLES = ("runs", "points", "diagnostics", "verdicts")
"""The files ``export`` writes, ``<table>.<format>``, in this order."""


def register(app: typer.Typer) -> None:
    app.command()(export)


def export(
    study: StudyName,
    out: OutputDir,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="File format of every table.")] = ExportFormat.csv,
    payloads: Annotated[bool, typer.Option(
        "--payloads", help="Also each diagnostic's payload array (a JSON list in the 'payload' column).")] = False,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """Write a study's runs, points, diagnostics and verdicts as runs.<fmt>, points.<fmt>, diagnostics.<fmt> and
    verdicts.<fmt> (JSON-valued columns — config, diagnostic summaries' nested values, verdict parameters and
    evidence — as JSON text)."""
    from db.errors import SweeperDBError

    engine = engine_or_exit(db)
    if out.exists() and not out.is_dir():
        fail(f"-o: {out} exists and is not a folder (give a folder to write into)")
    if fmt is ExportFormat.parquet and not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
        fail("--format parquet needs pyarrow: pip install pyarrow")
    try:
        frames = study_tables(engine, study, payloads)
    except SweeperDBError as exc:
        fail(str(exc))
    prepare_output_dir("-o", out)
    written = [_write(frame, out / f"{name}.{fmt.value}", fmt) for name, frame in frames.items()]
    if json_out:
        print_json({"study": study, "format": fmt.value, "files": written})
    else:
        for entry in written:
            typer.echo(f"{entry['path']}: {entry['rows']} rows")


def study_tables(engine: Any, study: str, payloads: bool) -> dict[str, Any]:
    """The four tables of ``TABLES`` as DataFrames whose cells a CSV or Parquet file can hold."""
    from cli.verdict_commands import verdict_table
    from db.queries import diagnostics_frame, points_frame, runs_frame, verdicts_frame

    diagnostics = diagnostics_frame(engine, study, decode_payload=payloads)
    if payloads:
        diagnostics["payload"] = [None if a is None else a.tolist() for a in diagnostics["payload"]]
    else:
        diagnostics = diagnostics.drop(columns=["payload"])
    return {"runs": json_text(runs_frame(engine, study)), "points": points_frame(engine, study),
            "diagnostics": json_text(diagnostics), "verdicts": json_text(verdict_table(verdicts_frame(engine, study)))}


def json_text(frame: Any) -> Any:
    """``frame`` with every list or dict cell (a config, a tolerance, a payload) as its JSON text."""
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, (list, dict))).any():
            frame[column] = frame[column].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    return frame


def _write(frame: Any, path: Path, fmt: ExportFormat) -> dict[str, Any]:
    """Write one table; a write that fails part-way is one line, exit 1."""
    try:
        if fmt is ExportFormat.csv:
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    except OSError as exc:
        fail(f"-o: cannot write {path}: {exc.strerror or type(exc).__name__}", code=EXIT_FAILED)
    return {"table": path.stem, "path": str(path), "rows": len(frame)}
