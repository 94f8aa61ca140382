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

EVIL = '<img src=x onerror=alert(1)>&"'
"""A study name with markup (no '/': a name is one path segment)."""
EVIL_TEXT = '</script><script>alert("x")</script> & <b>bold</b>'
STUDY = "serve-study"
DIAG_STEPS = [0, 100, 245, 250, 490]
"""Steps of the known diagnostics: logged points, except 245, between the points at steps 240 and 250."""


@pytest.fixture(scope="module")
def db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve") / "sweeper.db"


@pytest.fixture(scope="module")
def engine(db_file: Path) -> Iterator[Engine]:
    """``serve-study``: lr ∈ {0.05, 0.1} × κ ∈ {1, 2} × seeds {0, 1}, 50 points each (steps 0–490), completed;
    noise/covariance/sharpness/trajectory_stats on the two κ = 1, lr = 0.05 runs; the last run failed with an
    error. ``EVIL``: one run whose trial id and config carry HTML."""
    eng = open_db(f"sqlite:///{db_file}", create=True)
    ids = build_study(eng, STUDY, lrs=[0.05, 0.1], kappas=[1, 2], seeds=[0, 1], points=50, stride=10,
                      spec={"name": STUDY, "seeds": [0, 1], "note": "spec text"})
    for trial in ("t00000", "t00001"):
        write_diagnostics(eng, ids[trial], DIAG_STEPS)
    with Session(eng) as session, session.begin():
        writer.update_run(session, ids["t00007"], status="failed", error=f"RuntimeError: boom {EVIL_TEXT}")
    evil = trial_configs([0.05], [1], [0])
    evil[0].update(trial_id=EVIL_TEXT, note=EVIL_TEXT)
    create_study(eng, EVIL, evil, spec={"name": EVIL, "note": EVIL_TEXT}, status="completed")
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def client(engine: Engine) -> TestClient:
    return TestClient(create_app(engine))


@pytest.fixture(scope="module")
def run_ids(engine: Engine) -> dict[str, int]:
    """``{trial_id: run_id}`` of ``serve-study``."""
    from db.queries import runs_frame

    runs = runs_frame(engine, STUDY)
    return dict(zip(runs.trial_id, runs.run_id.astype(int)))
