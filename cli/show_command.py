"""``sweeper show RUN``: one run — its columns, full config, trajectory and diagnostics, read as plain rows
(:mod:`db.rows`: no pandas; numpy only to decode payloads)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Annotated, Any

import typer

from cli.options import Db, Json
from cli.output import fail, plain, plain_rows, print_json
from cli.results_commands import engine_or_exit
from cli.tables import fmt, print_rows


def register(app: typer.Typer) -> None:
    app.command()(show)


def show(
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run id (number) or trial id.", show_default=False)],
    study: Annotated[str | None, typer.Option("--study", help="Study, when a trial id is in several.")] = None,
    payloads: Annotated[bool, typer.Option(
        "--payloads", help="Also every diagnostic record with its payload array (large).")] = False,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """One run: status, full config (data, model, optimizer, budget, …), trajectory, and a summary of each
    diagnostic kind (count, steps, last value and summary; every record and payload with --payloads)."""
    from db.errors import SweeperDBError
    from db.rows import find_run, run_diagnostics, run_points

    engine = engine_or_exit(db)
    run_id = int(run) if run.isascii() and run.isdigit() else None
    if run_id is not None and run_id >= 2**63:
        fail(f"no run with id {run} (run ids are below 2**63; `sweeper runs STUDY` lists them)")
    try:
        found = find_run(engine, run if run_id is None else run_id, study)
    except SweeperDBError as exc:
        fail(str(exc))
    info = {k: plain(v) for k, v in found.items()}
    points = plain_rows(run_points(engine, found["id"]))
    diagnostics = diagnostic_summaries(run_diagnostics(engine, found["id"]), with_records=payloads)
    if json_out:
        print_json({"run": info, "points": points, "diagnostics": diagnostics})
        return
    title = f"run {found['id']} ({found['trial_id']})"
    print_rows([{"field": k, "value": v} for k, v in info.items() if k != "config" and v is not None], title=title)
    print_rows([{"field": k, "value": v} for k, v in flatten(info.get("config") or {}).items()], title="config")
    print_rows(points, title="trajectory")
    _print_diagnostics(diagnostics)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys (``data.n_train``, ``budget.epochs``); lists stay whole."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def diagnostic_summaries(rows: Sequence[Mapping[str, Any]], with_records: bool = False) -> list[dict[str, Any]]:
    """One dict per diagnostic kind of one run's diagnostics (:func:`db.rows.run_diagnostics`: by kind, then
    step): ``kind``, ``count``, ``first_step``, ``last_step``, ``value`` and ``summary`` of the last record,
    ``payload`` (dtype and shape of the last payload, or None); with ``with_records`` also ``records``: every
    ``step``, ``wall_seconds``, ``value``, ``summary`` and ``payload`` (as nested lists)."""
    from db.rows import load_npy

    out = []
    for kind, group in groupby(rows, key=lambda row: row["kind"]):
        kept = list(group)
        first, last = kept[0], kept[-1]
        array = load_npy(last["payload"])
        entry: dict[str, Any] = {
            "kind": kind, "count": len(kept), "first_step": first["step"], "last_step": last["step"],
            "value": plain(last["value"]), "summary": last["summary"],
            "payload": None if array is None else {"dtype": str(array.dtype), "shape": list(array.shape)}}
        if with_records:
            entry["records"] = plain_rows({"step": r["step"], "wall_seconds": r["wall_seconds"], "value": r["value"],
                                           "summary": r["summary"], "payload": load_npy(r["payload"])} for r in kept)
        out.append(entry)
    return out


def _print_diagnostics(diagnostics: list[dict[str, Any]]) -> None:
    if not diagnostics:
        typer.echo("diagnostics: none recorded for this run")
        return
    print_rows([{"kind": d["kind"], "count": d["count"], "steps": f"{d['first_step']}–{d['last_step']}",
                 "value": d["value"],
                 "summary": ", ".join(f"{k}={fmt(v)}" for k, v in (d["summary"] or {}).items()),
                 "payload": d["payload"] and f"{d['payload']['dtype']} {tuple(d['payload']['shape'])}"}
                for d in diagnostics], title="diagnostics (last record of each kind)")
    for d in diagnostics:
        for record in d.get("records", []):
            typer.echo(f"{d['kind']} step {record['step']}: value={fmt(record['value'])} "
                       f"summary={record['summary']} payload={record['payload']}")
