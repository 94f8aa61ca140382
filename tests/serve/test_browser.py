"""The dashboard in a real browser (headless Chromium, tests/browser.py; the ``chromium`` fixture of
tests/conftest.py: skipped locally without it, failed when ``CI`` is set), served by uvicorn in a thread.

* A study page while a thread writes points (as a launch's driver would): without a reload it draws the plot and
  shows the point count growing (the page records each count it polled in ``body[data-points-seen]`` and the
  points it drew in ``data-points`` of the plot, which ``--dump-dom`` shows); then a screenshot at 1400 px.
* Live updates driven over the DevTools protocol: a filter that leaves out the diagnosed runs removes their panels;
  a run page whose draw failed once draws on the next poll; a run that fails while its page is open shows its
  error without a reload.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from db import writer
from db.engine import open_db
from sweeper.serve import create_app
from tests.browser import Browser, browse
from tests.serve.conftest import DIAGNOSED, EVIL_TEXT, STUDY
from tests.serve.server import serving
from tests.serve.synthetic import LiveWriter, create_study, trial_configs, write_run

UNDIAGNOSED = (0.1, 1.0, 0)
"""(lr, κ, seed) of a run of ``serve-study`` without diagnostics."""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, LiveWriter]]:
    """The dashboard over a study of 8 runs that gains 2 points per run every 0.1 s."""
    engine = open_db(f"sqlite:///{tmp_path / 'live.db'}", create=True)
    trials = trial_configs([0.05, 0.1], [1, 2], [0, 1])
    ids = create_study(engine, "live-study", trials)
    writer = LiveWriter(engine, "live-study", trials, ids, points=600, batch=2, interval=0.1)
    with serving(create_app(engine, allowed_hosts=["127.0.0.1"])) as base:
        writer.start()
        yield base, writer
        writer.stop()
    engine.dispose()


@pytest.mark.slow
def test_study_page_draws_and_grows_while_written(chromium, served, tmp_path):
    base, writer = served
    url = f"{base}/studies/live-study"
    dom = browse(chromium, tmp_path / "profile", "--virtual-time-budget=9000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500] + dom.stderr[-2000:]
    seen = re.search(r'data-points-seen="([\d,]+)"', body.group(0))
    assert seen, f"the page never polled its study: {body.group(0)}"
    counts = [int(c) for c in seen.group(1).split(",")]
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0, counts  # it grew without a reload
    plot = re.search(r'<div id="plot-trajectories"[^>]*>', dom.stdout)
    assert plot and 'data-points="' in plot.group(0), "the trajectory plot was not drawn"
    assert int(re.search(r'data-points="(\d+)"', plot.group(0)).group(1)) > 0
    assert 'class="main-svg"' in dom.stdout and "scatterlayer" in dom.stdout  # Plotly rendered its SVG
    assert re.search(r'<span id="n-points">(\d+)</span>', dom.stdout).group(1) == str(counts[-1])
    # A screenshot at 1400 px: the page paints its tables and plots (many colours, dark ink, not blank).
    shot = tmp_path / "study.png"
    res = browse(chromium, tmp_path / "profile", "--window-size=1400,2400", "--virtual-time-budget=5000",
                 f"--screenshot={shot}", url)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[1] == 1400
    rgb = (pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 200 and (rgb.min(axis=1) < 128).mean() > 0.01
    assert writer.batches > 0


def panels(page) -> int:
    return page.evaluate("document.querySelectorAll('#diagnostics .plot').length")


@pytest.mark.slow
def test_a_filter_without_the_diagnosed_runs_removes_their_panels(chromium, engine, run_ids, tmp_path):
    with serving(create_app(engine)) as base, Browser(chromium, tmp_path / "profile") as browser:
        page = browser.open(f"{base}/studies/{STUDY}")
        # G/N, noise scale, λ_max and Lévy z of the two diagnosed runs, the Lévy table and a covariance spectrum
        page.wait_for("document.querySelectorAll('#diagnostics .plot').length === 4")
        page.wait_for("document.querySelector('#levy-table td') && !document.getElementById('covariance').hidden")
        error = page.evaluate("[...document.querySelectorAll('#runs tr.status-failed td')].map(td => td.title)")
        assert f"RuntimeError: boom {EVIL_TEXT}" in error  # the runs table's error cell holds the whole message
        page.evaluate(f"document.getElementById('where').value = 'run_id = {run_ids[UNDIAGNOSED]}';"
                      "document.getElementById('filter').requestSubmit()")
        page.wait_for("document.getElementById('run-count').textContent === '1 runs'")
        page.wait_for("!document.getElementById('diag-none').hidden")
        assert panels(page) == 0
        assert page.evaluate("document.getElementById('levy-table').children.length") == 0
        assert page.evaluate("document.getElementById('covariance').hidden")
        page.evaluate("document.getElementById('where').value = '';"
                      "document.getElementById('filter').requestSubmit()")
        page.wait_for("document.querySelectorAll('#diagnostics .plot').length === 4")
        assert page.evaluate("document.getElementById('diag-none').hidden")


class FailOnce:
    """ASGI wrapper: the first request to a path ending in ``suffix`` answers 503 (the database was busy)."""

    def __init__(self, app: ASGIApp, suffix: str):
        self.app, self.suffix, self.failed = app, suffix, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith(self.suffix) and not self.failed:
            self.failed += 1
            await JSONResponse({"error": "the database did not answer"}, status_code=503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


@pytest.mark.slow
def test_a_finished_run_page_redraws_after_a_failed_draw(chromium, engine, run_ids, tmp_path):
    run_id = run_ids[DIAGNOSED[0]]
    app = FailOnce(create_app(engine), "/trajectory")
    with serving(app) as base, Browser(chromium, tmp_path / "profile") as browser:
        page = browser.open(f"{base}/runs/{run_id}")
        page.wait_for("document.getElementById('live').className === 'live stale'")  # the first draw failed
        assert app.failed == 1
        assert int(page.wait_for("document.getElementById('plot-trajectory').dataset.points", timeout=8)) == 50


@pytest.mark.slow
def test_a_run_that_fails_while_its_page_is_open_shows_its_error(chromium, tmp_path):
    engine = open_db(f"sqlite:///{tmp_path / 'fail.db'}", create=True)
    trial = trial_configs([0.05], [1], [0])[0]
    run_id = create_study(engine, "failing", [trial])[trial.trial_id]
    write_run(engine, run_id, trial, np.arange(5) * 10, status="running")
    with serving(create_app(engine)) as base, Browser(chromium, tmp_path / "profile") as browser:
        page = browser.open(f"{base}/runs/{run_id}")
        page.wait_for("document.getElementById('plot-trajectory').dataset.points === '5'")
        assert page.evaluate("document.getElementById('error').hidden")
        with Session(engine) as session, session.begin():
            writer.update_run(session, run_id, status="failed", error=f"RuntimeError: boom {EVIL_TEXT}")
        page.wait_for("!document.getElementById('error').hidden", timeout=8)
        assert page.evaluate("document.getElementById('error-text').textContent") == f"RuntimeError: boom {EVIL_TEXT}"
        assert page.evaluate("document.getElementById('status').textContent") == "failed"
    engine.dispose()
