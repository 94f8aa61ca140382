#!/usr/bin/env python
"""Server CPU time of `sweeper serve` on a large study (issue 13: a study page of 1,000 runs × 1,000 points
answers in ≤ 1 s of server time).

Builds the study through ``db.writer`` (``tests/serve/synthetic.py``: η0 × κ × seeds of SGD runs on linear-scaling
paths, every point with step, epoch, SDE time and four metrics; every run completed, so its points are also a
columnar block; with ``--run-status running`` each run is written in reports of ``--report`` points and left
running, so its points are chunks and the rows after them, ``db.blocks``) in a SQLite file (or ``--db URL``), then
requests routes through Starlette's TestClient in this process and prints CPU seconds (``time.process_time``: the
app's threads and, on SQLite, the database engine; best of ``--repeat``):

* each route on a cold cache (a new app per request), with wall seconds, the response size and the ratio to 1 s;
* the page's sums: a first visit (the seven requests the study page makes, in its order, on a new app: the HTML,
  the summary, the runs table, the trajectory plot, the scaling path, diagnostics and verdicts), a second visit of
  the unchanged study (another tab), a poll of the unchanged study (the summary), and the summary and the five
  data routes after a write: a verdict stored (the study changed, no run did: every view is rebuilt from the
  runs table and points kept) and one run's row changed (as when it reports: that run is read again).

    python bench/bench_serve.py [--runs 1000] [--points 1000] [--db sqlite:///PATH] [--repeat 3]
                                [--run-status completed|running] [--report 50]

A ``--db`` that already holds the study is reused (building 10⁶ points takes ~20 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.serve.synthetic

from sqlalchemy.orm import Session

from db import writer
from db.engine import open_db
from db.models import Run
from db.queries import list_studies, runs_frame
from sweeper.checks.base import Verdict, store
from sweeper.serve import create_app
from tests.serve.synthetic import build_study

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

TARGET_S = 1.0
STUDY = "bench-serve"


def grid(runs: int) -> dict[str, list]:
    """η0 × κ × seeds with about ``runs`` runs: 5 κ, 20 seeds, the rest η0 values."""
    kappas, seeds = [1, 2, 4, 8, 16], list(range(20))
    n_lr = max(1, round(runs / (len(kappas) * len(seeds))))
    return {"lrs": [0.01 * (i + 1) for i in range(n_lr)], "kappas": kappas, "seeds": seeds}


def ensure_study(url: str, runs: int, points: int, status: str, report: int):
    engine = open_db(url, create=True)
    if STUDY not in set(list_studies(engine).name):
        start = time.perf_counter()
        build_study(engine, STUDY, points=points, stride=10, status=status,
                    report=report if status == "running" else None, **grid(runs))
        print(f"built {STUDY}: {len(runs_frame(engine, STUDY))} runs × {points} points in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    return engine


def request(client: TestClient, path: str) -> tuple[float, float, int, int]:
    """CPU and wall seconds, status and bytes of one request."""
    c0, w0 = time.process_time(), time.perf_counter()
    response = client.get(path)
    return time.process_time() - c0, time.perf_counter() - w0, response.status_code, len(response.content)


def cold(engine, path: str, repeat: int) -> tuple[float, float, int, int]:
    """Best CPU and wall seconds over ``repeat`` requests, each on a new app (an empty cache)."""
    runs = [request(TestClient(create_app(engine)), path) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2], runs[-1][3]


def visit(client: TestClient, paths: list[str]) -> float:
    """CPU seconds of requesting ``paths`` in order (any non-200 stops the benchmark)."""
    total = 0.0
    for path in paths:
        cpu, _, status, _ = request(client, path)
        if status != 200:
            raise SystemExit(f"{path}: HTTP {status}")
        total += cpu
    return total


def reported(engine, run_id: int) -> None:
    """Change one run's row (its steps_done), as a report does: the dashboard reads that run again."""
    with Session(engine) as session, session.begin():
        writer.update_run(session, run_id, steps_done=Run.steps_done + 1)


def sums(engine, page: list[str], run_id: int, repeat: int) -> dict[str, float]:
    """Best CPU seconds of a first visit, a second visit, a poll, and polls after writes (see the module doc)."""
    out: dict[str, list[float]] = {"first": [], "second": [], "poll": [], "verdict": [], "run": []}
    for _ in range(repeat):
        client = TestClient(create_app(engine))
        out["first"].append(visit(client, page))
        out["second"].append(visit(client, page))
        out["poll"].append(visit(client, page[1:2]))
        store(engine, STUDY, Verdict("lsr", "INCONCLUSIVE", "bench_serve: a write that changes the study"))
        out["verdict"].append(visit(client, page[1:]))
        reported(engine, run_id)
        out["run"].append(visit(client, page[1:]))
    return {k: min(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--db", help="database URL (default: a SQLite file in a temporary folder)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--run-status", choices=["completed", "running"], default="completed",
                        help="the runs' status when the study is built (running: written in reports, read from "
                        "chunks and the rows after them)")
    parser.add_argument("--report", type=int, default=50, help="points per report of a running run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/bench.db"
        engine = ensure_study(url, args.runs, args.points, args.run_status, args.report)
        run_id = int(runs_frame(engine, STUDY).run_id.iloc[0])
        api = f"/api/studies/{STUDY}"
        page = [f"/studies/{STUDY}", api, f"{api}/runs", f"{api}/trajectories?width=1200",
                f"{api}/scaling?width=1200", f"{api}/diagnostics", f"{api}/verdicts"]
        others = ["/", "/api/studies", f"{api}/trajectories?width=1200&seeds=lines",
                  f"{api}/trajectories?width=1200&logx=1&x=epoch",
                  f"{api}/trajectories?width=1200&where=kappa%20%3D%201",
                  f"{api}/runs?where=final_test_loss%20%3C%200.6&sort=final_test_loss", f"/runs/{run_id}",
                  f"/api/runs/{run_id}", f"/api/runs/{run_id}/trajectory", f"/api/runs/{run_id}/diagnostics"]
        print(f"\n{'route (cold cache)':72s} {'cpu s':>7s} {'wall s':>7s} {'status':>6s} {'bytes':>9s} {'cpu/1s':>7s}")
        for path in [*page, *others]:
            cpu, wall, status, size = cold(engine, path, args.repeat)
            print(f"{path:72s} {cpu:7.3f} {wall:7.3f} {status:6d} {size:9d} {cpu / TARGET_S:7.2f}")
        labels = {"first": "first visit (the page's 7 requests, new app)",
                  "second": "second visit of the unchanged study (7 requests)",
                  "poll": "poll of the unchanged study (the summary)",
                  "verdict": "poll after a verdict is stored (summary + 5 data routes)",
                  "run": "poll after one run reports (summary + 5 data routes)"}
        print(f"\n{'study page, sums':72s} {'cpu s':>7s} {'':7s} {'':6s} {'':9s} {'cpu/1s':>7s}")
        for key, cpu in sums(engine, page, run_id, args.repeat).items():
            print(f"{labels[key]:72s} {cpu:7.3f} {'':7s} {'':6s} {'':9s} {cpu / TARGET_S:7.2f}")
        engine.dispose()


if __name__ == "__main__":
    main()
