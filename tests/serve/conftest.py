"""Fixtures of the dashboard tests: a SQLite database with a finished study (diagnostics on some runs, a failed
run with an error), a study whose name and config carry HTML, and a TestClient over the app."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

with warnings.catch_warnings():  # starlette ≥ 1.10 asks for httpx2; httpx works with every supported starlette
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

from db import writer
from db.engine import open_db
from sweeper.serve import create_app
from tests.serve.synthetic import (
    build_study,
    create_study,
    trial_configs,
    write_diagnostics,
)
from tests.serve.synthetic import run_ids as study_run_ids

EVIL = '<img src=x onerror=alert(1)>&"'
"""A study name with markup (no '/': a name is one path segment)."""
EVIL_TEXT = '</script><script>alert("x")</script> & <b>bold</b>'
STUDY = "serve-study"
DIAGNOSED = [(0.05, 1.0, 0), (0.05, 1.0, 1)]
"""(lr, κ, seed) of the runs with diagnostics: κ = 1 on the η0 = 0.05 path."""
FAILED = (0.2, 2.0, 1)
"""(lr, κ, seed) of the failed run."""
DIAG_STEPS = [0, 100, 245, 250, 490]
"""Steps of the known diagnostics: logged points, except 245, between the points at steps 240 and 250."""


@pytest.fixture(scope="module")
def db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve") / "sweeper.db"


@pytest.fixture(scope="module")
def engine(db_file: Path) -> Iterator[Engine]:
    """``serve-study``: η0 ∈ {0.05, 0.1} × κ ∈ {1, 2} × seeds {0, 1}, 50 points each (steps 0–490), completed;
    noise/covariance/sharpness/trajectory_stats on the DIAGNOSED runs; the FAILED run failed with an error.
    ``EVIL``: one run whose trial id (so its config) carries HTML."""
    eng = open_db(f"sqlite:///{db_file}", create=True)
    build_study(eng, STUDY, lrs=[0.05, 0.1], kappas=[1, 2], seeds=[0, 1], points=50, stride=10,
                spec={"name": STUDY, "seeds": [0, 1], "note": "spec text"})
    ids = study_run_ids(eng, STUDY)
    for key in DIAGNOSED:
        write_diagnostics(eng, ids[key], DIAG_STEPS)
    with Session(eng) as session, session.begin():
        writer.update_run(session, ids[FAILED], status="failed", error=f"RuntimeError: boom {EVIL_TEXT}")
    evil = trial_configs([0.05], [1], [0])[0].model_copy(update={"trial_id": EVIL_TEXT})
    create_study(eng, EVIL, [evil], spec={"name": EVIL, "note": EVIL_TEXT}, status="completed")
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def client(engine: Engine) -> TestClient:
    return TestClient(create_app(engine))


@pytest.fixture(scope="module")
def run_ids(engine: Engine) -> dict[tuple[float, float, int], int]:
    """``{(lr, κ, seed): run_id}`` of ``serve-study``."""
    return study_run_ids(engine, STUDY)
