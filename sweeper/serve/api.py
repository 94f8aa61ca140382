"""The JSON routes under ``/api`` (what the pages draw, and what a notebook can read): one function per route.

Errors are raised, not returned: unknown studies/runs (``db.errors``) become 404, :class:`~sweeper.serve.params.
BadRequest` and ``--where`` errors 400, each with ``{"error": message}`` (``sweeper.serve.app``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from db.errors import UnknownRun
from db.models import RUN_HPARAMS
from db.queries import runs_frame
from sweeper.serve import diagnostics, overview, scaling, trajectories, verdicts
from sweeper.serve.params import (
    AXES,
    DEFAULT_WIDTH,
    MAX_WIDTH,
    METRICS,
    MIN_WIDTH,
    BadRequest,
    PlotQuery,
    choice,
    flag,
    integer,
    positive,
)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class Json(JSONResponse):
    """Strict JSON; NaN and ±inf (not measured, diverged) are written as null."""

    def render(self, content: Any) -> bytes:
        return json.dumps(_clean(content), allow_nan=False, separators=(",", ":")).encode()


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


def run_id_of(request: Request) -> int:
    """The ``{run_id}`` path parameter as a run id; anything else is an unknown run (404)."""
    raw = request.path_params["run_id"]
    if not (raw.isascii() and raw.isdigit()) or int(raw) >= 2**63:
        raise UnknownRun(f"no run with id {raw[:40]!r} (run ids are whole numbers; the study page lists them)")
    return int(raw)


def selected_runs(engine: Engine, name: str, where: str | None) -> pd.DataFrame:
    """The study's runs matching ``where`` (all when None), with their hyperparameters."""
    return overview.runs_table(engine, name, where) if where else runs_frame(engine, name)


def list_studies(request: Request) -> Json:
    return Json({"studies": overview.studies(engine_of(request))})


def study(request: Request) -> Json:
    return Json(overview.study(engine_of(request), request.path_params["name"]))


def runs(request: Request) -> Json:
    q = request.query_params
    frame = overview.runs_table(engine_of(request), request.path_params["name"], q.get("where") or None,
                                q.get("sort") or None, flag(q, "desc"))
    return Json({"columns": list(frame.columns), "count": len(frame), "rows": overview.records(frame)})


def _plot_query(request: Request, runs_: pd.DataFrame) -> PlotQuery:
    return PlotQuery.parse(request.query_params, trajectories.default_colour(runs_))


def study_trajectories(request: Request) -> Json:
    engine, name = engine_of(request), request.path_params["name"]
    where = request.query_params.get("where") or None
    runs_ = selected_runs(engine, name, where)
    return Json(trajectories.plot(engine, runs_, _plot_query(request, runs_)))


def study_scaling(request: Request) -> Json:
    q = request.query_params
    return Json(scaling.view(engine_of(request), request.path_params["name"],
                             choice(q, "metric", METRICS, "test_loss"),
                             integer(q, "width", DEFAULT_WIDTH, MIN_WIDTH, MAX_WIDTH), positive(q, "tolerance"),
                             integer(q, "path", 0, 0, 10**6)))


def study_diagnostics(request: Request) -> Json:
    engine, name = engine_of(request), request.path_params["name"]
    runs_ = selected_runs(engine, name, request.query_params.get("where") or None)
    q = _plot_query(request, runs_)
    return Json(diagnostics.study_view(engine, name, runs_, q.axis, q.colour))


def study_covariance(request: Request) -> Json:
    engine, name = engine_of(request), request.path_params["name"]
    run_id = run_id_of(request)
    if run_id not in set(runs_frame(engine, name).run_id.astype(int)):
        raise UnknownRun(f"no run with id {run_id} in study {name!r}")
    return Json(diagnostics.spectra(engine, run_id, choice(request.query_params, "x", AXES, "step")))


def study_verdicts(request: Request) -> Json:
    return Json(verdicts.history(engine_of(request), request.path_params["name"]))


async def run_check(request: Request) -> Json:
    """POST with a JSON body (``{}`` or ``{"metric": M, "tolerance": T}``): runs the check and stores its verdict.
    Only ``application/json`` is accepted, so a form on another site cannot post here."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadRequest("send the check's options as JSON (Content-Type: application/json), e.g. {}")
    try:
        body = json.loads(await request.body() or b"{}", parse_int=float)  # an integer too big for a float: inf
    except ValueError:
        raise BadRequest("the request body is not JSON; send {} or {\"metric\": ..., \"tolerance\": ...}") from None
    if not isinstance(body, dict) or set(body) - {"metric", "tolerance"}:
        raise BadRequest("the body takes only metric and tolerance")
    tolerance = body.get("tolerance")
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))):
        raise BadRequest(f"tolerance: {tolerance!r} is not a number")
    metric = body.get("metric")
    if metric is not None and not isinstance(metric, str):
        raise BadRequest(f"metric: {metric!r} is not a point column name")
    verdict = await run_in_threadpool(verdicts.run, engine_of(request), request.path_params["name"],
                                      request.path_params["check"], metric,
                                      None if tolerance is None else float(tolerance))
    return Json(verdict)


def run(request: Request) -> Json:
    return Json(overview.run(engine_of(request), run_id_of(request)))


def run_trajectory(request: Request) -> Json:
    engine = engine_of(request)
    found = overview.run(engine, run_id_of(request))
    frame = pd.DataFrame([{k: found[k] for k in ("run_id", "trial_id", *RUN_HPARAMS)}])
    q = PlotQuery.parse({**request.query_params, "seeds": "lines", "colour": "lr"})
    return Json(trajectories.plot(engine, frame, q))


def run_diagnostics(request: Request) -> Json:
    engine = engine_of(request)
    found = overview.run(engine, run_id_of(request))
    return Json(diagnostics.run_view(engine, found, choice(request.query_params, "x", AXES, "step")))
