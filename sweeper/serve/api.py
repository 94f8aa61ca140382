"""The JSON routes under ``/api`` (what the pages draw, and what a notebook can read): one function per route.

Errors are raised, not returned: unknown studies/runs (``db.errors``) become 404, :class:`~sweeper.serve.params.
BadRequest` and ``--where`` errors 400, each with ``{"error": message}`` (``sweeper.serve.app``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TypeVar

import pandas as pd
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from db.errors import UnknownRun
from db.models import RUN_HPARAMS
from db.queries import runs_frame
from sweeper.serve import buckets, diagnostics, overview, scaling, trajectories, verdicts
from sweeper.serve.cache import Stamp, StudyCache
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

T = TypeVar("T")


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


def cache_of(request: Request) -> StudyCache:
    return request.app.state.cache


def run_id_of(request: Request) -> int:
    """The ``{run_id}`` path parameter as a run id; anything else is an unknown run (404)."""
    raw = request.path_params["run_id"]
    if not (raw.isascii() and raw.isdigit()) or int(raw) >= 2**63:
        raise UnknownRun(f"no run with id {raw[:40]!r} (run ids are whole numbers; the study page lists them)")
    return int(raw)


class StudyNow(NamedTuple):
    """The study a request is about, as it is now (at its stamp): what is read from it is memoized per stamp
    (``cache.StudyCache``) and shared between requests, so it must not be changed."""

    engine: Engine
    cache: StudyCache
    name: str
    id: int
    stamp: Stamp

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        return self.cache.view(self.id, self.stamp, key, compute)

    def runs(self) -> pd.DataFrame:
        """Every run with its hyperparameters (``runs_frame``)."""
        return self.memo("runs", lambda: runs_frame(self.engine, self.id))

    def table(self, where: str | None) -> pd.DataFrame:
        """The runs table (``overview.runs_table``) filtered by ``where``, unsorted."""
        return self.cache.table(self.id, self.stamp, where)

    def selected(self, where: str | None) -> pd.DataFrame:
        """The runs matching ``where`` (all when None), with their hyperparameters."""
        return self.table(where) if where else self.runs()

    def series(self, axis: str, metric: str) -> buckets.Series:
        return self.cache.series(self.id, self.stamp, axis, metric)


def study_of(request: Request) -> StudyNow:
    cache, name = cache_of(request), request.path_params["name"]
    return StudyNow(engine_of(request), cache, name, *cache.stamp(name))


def memo_json(request: Request, compute: Callable[[StudyNow], Any]) -> Response:
    """The JSON of ``compute(study)`` for this route and query, computed once per study stamp."""
    study_ = study_of(request)
    key = (request.url.path, tuple(sorted(request.query_params.multi_items())))
    return Response(study_.memo(key, lambda: Json(compute(study_)).body), media_type="application/json")


def list_studies(request: Request) -> Json:
    return Json({"studies": overview.studies(engine_of(request))})


def study(request: Request) -> Json:
    s = study_of(request)
    return Json(overview.study(s.engine, s.id, s.stamp.text, s.cache.point_count(s.id, s.stamp)))


def runs(request: Request) -> Response:
    q = request.query_params

    def compute(s: StudyNow) -> dict[str, Any]:
        frame = overview.sort_runs(s.table(q.get("where") or None), q.get("sort") or None, flag(q, "desc"))
        return {"columns": list(frame.columns), "count": len(frame), "rows": overview.records(frame)}

    return memo_json(request, compute)


def _plot_query(request: Request, runs_: pd.DataFrame) -> PlotQuery:
    return PlotQuery.parse(request.query_params, trajectories.default_colour(runs_))


def study_trajectories(request: Request) -> Response:
    where = request.query_params.get("where") or None

    def compute(s: StudyNow) -> dict[str, Any]:
        runs_ = s.selected(where)
        q = _plot_query(request, runs_)
        series = s.series(q.axis, q.metric)
        return trajectories.plot(series.of(list(runs_.run_id)) if where else series, runs_, q)

    return memo_json(request, compute)


def study_scaling(request: Request) -> Response:
    q = request.query_params
    metric = choice(q, "metric", METRICS, "test_loss")
    width = integer(q, "width", DEFAULT_WIDTH, MIN_WIDTH, MAX_WIDTH)
    tolerance, index = positive(q, "tolerance"), integer(q, "path", 0, 0, 10**6)
    return memo_json(request, lambda s: scaling.view(s.runs(), lambda axis: s.series(axis, metric), metric, width,
                                                     tolerance, index))


def study_diagnostics(request: Request) -> Response:
    def compute(s: StudyNow) -> dict[str, Any]:
        runs_ = s.selected(request.query_params.get("where") or None)
        q = _plot_query(request, runs_)
        return diagnostics.study_view(s.engine, s.name, runs_, q.axis, q.colour)

    return memo_json(request, compute)


def study_covariance(request: Request) -> Response:
    run_id = run_id_of(request)
    x = choice(request.query_params, "x", AXES, "step")

    def compute(s: StudyNow) -> dict[str, Any]:
        if run_id not in set(s.runs().run_id.astype(int)):
            raise UnknownRun(f"no run with id {run_id} in study {s.name!r}")
        return diagnostics.spectra(s.engine, run_id, x)

    return memo_json(request, compute)


def study_verdicts(request: Request) -> Response:
    return memo_json(request, lambda s: verdicts.history(s.engine, s.name))


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
    found = overview.run(engine_of(request), run_id_of(request))
    frame = pd.DataFrame([{k: found[k] for k in ("run_id", "trial_id", *RUN_HPARAMS)}])
    q = PlotQuery.parse({**request.query_params, "seeds": "lines", "colour": "lr"})
    series = buckets.read(engine_of(request), found["study_id"], q.axis, q.metric, [found["run_id"]])
    return Json(trajectories.plot(series, frame, q))


def run_diagnostics(request: Request) -> Json:
    engine = engine_of(request)
    found = overview.run(engine, run_id_of(request))
    return Json(diagnostics.run_view(engine, found, choice(request.query_params, "x", AXES, "step")))
