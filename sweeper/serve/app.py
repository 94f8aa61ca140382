"""The dashboard's Starlette app: routes, error pages and the access rules (``create_app``).

Read-only over the results database except ``POST /api/studies/{name}/checks/{check}`` (stores a verdict as
``sweeper check`` does). Requests run in Starlette's thread pool, each on its own pooled connection, so pages keep
answering while ``sweeper launch`` writes (SQLite in WAL mode lets readers and the writer proceed together).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from db.errors import AmbiguousRun, SweeperDBError, UnknownRun, UnknownStudy
from db.where import WhereError
from sweeper.serve import api, pages
from sweeper.serve.cache import StudyCache
from sweeper.serve.params import BadRequest
from sweeper.serve.security import NoFraming, TokenGate

STATIC = Path(__file__).parent / "static"


class Static(StaticFiles):
    """The pages' own scripts and styles, revalidated on every load (ETag: a 304 when unchanged), so a browser never
    runs a stale script against a newer server."""

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def plotly_js_path() -> Path:
    """``plotly.min.js`` as shipped inside the ``plotly`` wheel (nothing is fetched from the internet)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the dashboard needs the plotly package (pip install plotly) for plotly.min.js")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


def _plotly_js(request: Request) -> FileResponse:
    return FileResponse(plotly_js_path(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def _reply(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return api.Json({"error": message}, status_code=status)
    return pages.error(request, status, message)


def _not_found(request: Request, exc: Exception) -> Response:
    return _reply(request, 404, str(exc))


def _bad_request(request: Request, exc: Exception) -> Response:
    prefix = "where: " if isinstance(exc, WhereError) else ""
    return _reply(request, 400, prefix + str(exc))


def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = f"no page at {request.url.path[:200]}" if exc.status_code == 404 else str(exc.detail)
    return _reply(request, exc.status_code, message)


def _database(request: Request, exc: Exception) -> Response:
    first = str(getattr(exc, "orig", exc)).strip().splitlines()
    return _reply(request, 503, f"the database did not answer: {first[0] if first else type(exc).__name__}")


ROUTES = [
    Route("/", pages.studies),
    Route("/studies/{name}", pages.study),
    Route("/runs/{run_id}", pages.run),
    Route("/api/studies", api.list_studies),
    Route("/api/studies/{name}", api.study),
    Route("/api/studies/{name}/runs", api.runs),
    Route("/api/studies/{name}/trajectories", api.study_trajectories),
    Route("/api/studies/{name}/scaling", api.study_scaling),
    Route("/api/studies/{name}/diagnostics", api.study_diagnostics),
    Route("/api/studies/{name}/covariance/{run_id}", api.study_covariance),
    Route("/api/studies/{name}/verdicts", api.study_verdicts),
    Route("/api/studies/{name}/checks/{check}", api.run_check, methods=["POST"]),
    Route("/api/runs/{run_id}", api.run),
    Route("/api/runs/{run_id}/trajectory", api.run_trajectory),
    Route("/api/runs/{run_id}/diagnostics", api.run_diagnostics),
    Route("/static/plotly.min.js", _plotly_js),
    Mount("/static", Static(directory=STATIC), name="static"),
]


def create_app(engine: Engine, *, token: str | None = None, allowed_hosts: list[str] | None = None) -> Starlette:
    """The dashboard over ``engine``. ``token``: every request must present it (``security``); ``allowed_hosts``:
    the Host names answered (None: any)."""
    middleware = [Middleware(NoFraming)]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    if token is not None:
        middleware.append(Middleware(TokenGate, token=token))
    handlers = {UnknownStudy: _not_found, UnknownRun: _not_found, AmbiguousRun: _not_found, BadRequest: _bad_request,
                WhereError: _bad_request, HTTPException: _http, DBAPIError: _database, SweeperDBError: _database}
    app = Starlette(routes=ROUTES, middleware=middleware, exception_handlers=handlers)
    app.state.engine = engine
    app.state.cache = StudyCache(engine)
    return app
