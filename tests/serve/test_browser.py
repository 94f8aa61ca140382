"""A real browser on a study that is being written: headless Chromium opens the study page served by uvicorn
while a thread writes points (as a launch's driver would), and the page — without a reload — draws the plot and
shows the point count growing; then a screenshot at 1400 px.

Needs ``chromium`` on PATH (``.ci/chromium.sh`` installs it): skipped locally without it, but fails when ``CI``
is set (the ``chromium`` fixture and ``browse`` of tests/report/test_report.py). The page records each point count
it polled in ``body[data-points-seen]`` and the points it drew in ``data-points`` of the plot, which ``--dump-dom``
shows.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from matplotlib.image import imread

from db.engine import open_db
from sweeper.serve import create_app
from tests.report.test_report import browse, chromium  # noqa: F401 (chromium: the fixture)
from tests.serve.synthetic import LiveWriter, create_study, trial_configs


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, LiveWriter]]:
    """The dashboard on a free loopback port over a study of 8 runs that gains 2 points per run every 0.1 s."""
    engine = open_db(f"sqlite:///{tmp_path / 'live.db'}", create=True)
    trials = trial_configs([0.05, 0.1], [1, 2], [0, 1])
    ids = create_study(engine, "live-study", trials)
    writer = LiveWriter(engine, "live-study", trials, ids, points=600, batch=2, interval=0.1)
    server = uvicorn.Server(uvicorn.Config(create_app(engine, allowed_hosts=["127.0.0.1"]), host="127.0.0.1",
                                           port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    writer.start()
    yield f"http://127.0.0.1:{port}", writer
    writer.stop()
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.mark.slow
def test_study_page_draws_and_grows_while_written(chromium, served, tmp_path):  # noqa: F811
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
