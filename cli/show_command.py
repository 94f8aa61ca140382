"""``sweeper show RUN``: one run — its columns, full config, trajectory and diagnostics."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.options import Db, Json
from cli.output import fail, plain, print_json, records
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
    from db.models import RUN_HPARAMS
    from db.queries import diagnostics_frame, get_run, points_frame

    engine = engine_or_exit(db)
    run_id = int(run) if run.isascii() and run.isdigit() else None
    if run_id is not None and run_id >= 2**63:
        fail(f"no run with id {run} (run ids are below 2**63; `sweeper runs STUDY` lists them)")
    try:
        found = get_run(engine, run if run_id is None else run_id, study)
    except SweeperDBError as exc:
        fail(str(exc))
    info = {k: plain(v) for k, v in found.as_dict().items()}
    per_run = ["run_id", "trial_id", "status", *RUN_HPARAMS]
    points = records(points_frame(engine, found.study_id, [found.id]).drop(columns=per_run, errors="ignore"))
    diagnostics = diagnostic_summaries(
        diagnostics_frame(engine, found.study_id, run_ids=[found.id], expand_summary=False, decode_payload=True),
        with_records=payloads)
    if json_out:
        print_json({"run": info, "points": points, "diagnostics": diagnostics})
        return
    title = f"run {found.id} ({found.trial_id})"
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


def diagnostic_summaries(frame: Any, with_records: bool = False) -> list[dict[str, Any]]:
    """One dict per diagnostic kind of one run's ``diagnostics_frame`` (payloads decoded): ``kind``, ``count``,
    ``first_step``, ``last_step``, ``value`` and ``summary`` of the last record, ``payload`` (dtype and shape of
    the last payload, or None); with ``with_records`` also ``records``: every ``step``, ``wall_seconds``,
    ``value``, ``summary`` and ``payload`` (as nested lists)."""
    out = []
    for kind, group in frame.groupby("kind", sort=True):
        rows = records(group[["step", "wall_seconds", "value", "summary", "payload"]])
        last = rows[-1]
        array = group["payload"].iloc[-1]
        entry = {"kind": kind, "count": len(rows), "first_step": rows[0]["step"], "last_step": last["step"],
                 "value": last["value"], "summary": last["summary"],
                 "payload": None if array is None else {"dtype": str(array.dtype), "shape": list(array.shape)}}
        if with_records:
            entry["records"] = rows
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
