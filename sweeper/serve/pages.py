"""The HTML pages: Jinja2 templates (autoescaped) with what does not change — names, the spec and a run's config as
TOML (the report's rendering, ``sweeper.report``, which escapes its own HTML) — and the choices of the plot
controls; the live parts are drawn by ``static/*.js`` from the ``/api`` routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from db.models import RUN_HPARAMS
from db.queries import resolve_study, study_spec
from sweeper.checks import registry
from sweeper.report.html import spec_section
from sweeper.report.spec_toml import full_toml
from sweeper.serve import overview
from sweeper.serve.api import engine_of, run_id_of
from sweeper.serve.params import AXES, METRICS
from sweeper.serve.trajectories import number_text, value

HERE = Path(__file__).parent
templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                                   autoescape=True, undefined=jinja2.StrictUndefined))


def studies(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "studies.html", {"title": "studies"})


def study(request: Request) -> HTMLResponse:
    engine, name = engine_of(request), request.path_params["name"]
    spec = study_spec(engine, resolve_study(engine, name))
    return templates.TemplateResponse(request, "study.html", {
        "title": name, "name": name, "spec": Markup(spec_section(spec)), "metrics": METRICS, "axes": AXES,
        "hparams": RUN_HPARAMS, "checks": list(registry.MODULES)})


def run(request: Request) -> HTMLResponse:
    found = overview.run(engine_of(request), run_id_of(request))
    return templates.TemplateResponse(request, "run.html", {
        "title": f"run {found['run_id']}", "run": found, "config": full_toml(found.get("config") or {}),
        "metrics": METRICS, "axes": AXES, "hparams": hparams(found)})


def hparams(run: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value as text) of the run's hyperparameters that are set."""
    return [(k, number_text(run[k])) for k in RUN_HPARAMS if value(run[k]) is not None]


def error(request: Request, status: int, message: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "error.html", {"title": f"error {status}", "status": status,
                                                              "message": message}, status_code=status)
