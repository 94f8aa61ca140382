#!/usr/bin/env python
"""Write throughput of the results database: ``db.writer.write_points`` vs MLflow's ``SqlAlchemyStore.log_batch``.

Both write the same synthetic trajectories — ``--runs`` runs × ``--points`` points × every metric column of ``points``,
sent in reports of ``--batch`` points (one transaction per report, as the driver's Tune callback does) — into a fresh
database on the same engine: a SQLite file (WAL for sweeper, MLflow's defaults for MLflow) and, when a URL is given, a
PostgreSQL server (a new database is created for each writer through that URL, and dropped afterwards). Throughput is
counted in metric values per second (points × metric columns); the target is sweeper ≥ 10× MLflow.

MLflow is not a project dependency; give it its own virtual environment:

    python -m venv /tmp/mlflowenv && /tmp/mlflowenv/bin/pip install mlflow "psycopg[binary]"
    python bench/bench_db_write.py --pg "$SWEEPER_TEST_PG_URL" --mlflow-python /tmp/mlflowenv/bin/python

(from the project's venv; the MLflow half runs in a subprocess under ``--mlflow-python``, or in-process when mlflow
imports). Without MLflow only sweeper's figures are printed. The PostgreSQL URL may also come from
``SWEEPER_BENCH_PG_URL`` or ``SWEEPER_TEST_PG_URL`` (e.g. ``eval "$(.ci/postgres.sh)"``); ``--no-pg`` skips it.
For figures that include fsync costs, start the server with ``SWEEPER_PG_DURABLE=1 .ci/postgres.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from db.models import POINT_METRICS as METRICS  # noqa: E402  (SQLAlchemy only: importable under MLflow's Python)

MLFLOW_MAX_METRICS_PER_CALL = 1000


def make_points(run: int, n_points: int, seed: int) -> list[dict[str, Any]]:
    """Deterministic synthetic points of run ``run`` (same values in every process)."""
    rng = random.Random(seed * 1_000_003 + run)
    return [{"step": 10 * i, **{m: rng.random() for m in METRICS}} for i in range(n_points)]


def reports(args: argparse.Namespace, run: int) -> Iterator[list[dict[str, Any]]]:
    points = make_points(run, args.points, args.seed)
    for start in range(0, len(points), args.batch):
        yield points[start : start + args.batch]


# ------------------------------------------------------------------------------------------- the writers


def bench_sweeper(url: str, args: argparse.Namespace) -> float:
    """Seconds spent writing every report through db.writer (schema creation and run setup not timed)."""
    from sqlalchemy.orm import Session

    from db import writer
    from db.engine import open_db

    engine = open_db(url, create=True)
    try:
        hparams = {"optimizer": "sgd", "model": "mlp", "dataset": "teacher", "batch_size": 128, "lr": 0.1,
                   "weight_decay": 0.0, "svag_l": 1.0, "momentum": None, "beta1": None, "beta2": None, "eps": None,
                   "scaling_rule": None, "kappa": None}
        configs = [writer.PlainTrial(f"t{r}", r, hparams | {"seed": r}) for r in range(args.runs)]
        with Session(engine) as session, session.begin():
            study = writer.ensure_study(session, "bench", {"name": "bench"})
            run_ids = writer.ensure_runs(session, study, configs)
        batches = [(run_ids[f"t{r}"], b) for r in range(args.runs) for b in reports(args, r)]
        start = time.perf_counter()
        written = 0
        for run_id, batch in batches:
            with engine.begin() as conn:
                written += writer.write_points(conn, run_id, batch)
        elapsed = time.perf_counter() - start
        assert written == args.runs * args.points, (written, args.runs * args.points)
        return elapsed
    finally:
        engine.dispose()


def bench_mlflow(url: str, args: argparse.Namespace) -> float:
    """Seconds spent logging every report with MLflow's SqlAlchemyStore.log_batch (≤1000 metrics a call)."""
    from mlflow.entities import Metric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    artifacts = tempfile.mkdtemp(prefix="mlflow-artifacts-")
    try:
        store = SqlAlchemyStore(url, artifacts)
        experiment = store.create_experiment("bench")
        run_ids = [store.create_run(experiment, "bench", 0, [], f"t{r}").info.run_id for r in range(args.runs)]
        calls = []
        for r in range(args.runs):
            for batch in reports(args, r):
                metrics = [Metric(m, p[m], 1_700_000_000_000 + p["step"], p["step"]) for p in batch for m in METRICS]
                for s in range(0, len(metrics), MLFLOW_MAX_METRICS_PER_CALL):
                    calls.append((run_ids[r], metrics[s : s + MLFLOW_MAX_METRICS_PER_CALL]))
        start = time.perf_counter()
        for run_id, metrics in calls:
            store.log_batch(run_id, metrics=metrics, params=[], tags=[])
        elapsed = time.perf_counter() - start
        store.engine.dispose()
        return elapsed
    finally:
        shutil.rmtree(artifacts, ignore_errors=True)


# --------------------------------------------------------------------------------------------- databases


@contextmanager
def fresh_database(kind: str, pg_url: str | None, tag: str) -> Iterator[str]:
    """A URL of a new, empty database (SQLite file or PostgreSQL database), removed afterwards."""
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix=f"bench-{tag}-")
        try:
            yield f"sqlite:///{folder}/{tag}.db"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    import sqlalchemy as sa

    admin_url = sa.engine.make_url(pg_url)
    if admin_url.drivername in ("postgresql", "postgres"):
        admin_url = admin_url.set(drivername="postgresql+psycopg")
    name = f"bench_{tag}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def run_mlflow(url: str, args: argparse.Namespace) -> float | None:
    """MLflow's seconds: in-process if mlflow imports, else under ``--mlflow-python``; None when unavailable."""
    try:
        import mlflow  # noqa: F401

        return bench_mlflow(url, args)
    except ImportError:
        pass
    if not args.mlflow_python:
        return None
    cmd = [
        args.mlflow_python,
        __file__,
        "--worker",
        url,
        "--runs",
        str(args.runs),
        "--points",
        str(args.points),
        "--batch",
        str(args.batch),
        "--seed",
        str(args.seed),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def redacted(url: str) -> str:
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<url>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pg",
        default=os.environ.get("SWEEPER_BENCH_PG_URL") or os.environ.get("SWEEPER_TEST_PG_URL"),
        help="PostgreSQL URL of a role that may CREATE DATABASE",
    )
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--points", type=int, default=1000, help="points per run")
    parser.add_argument("--batch", type=int, default=50, help="points per report (one transaction each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="fresh-database repeats per writer; the median is shown")
    default_py = "/tmp/mlflowenv/bin/python"
    parser.add_argument(
        "--mlflow-python",
        default=default_py if Path(default_py).exists() else None,
        help=f"python of a venv with mlflow (default {default_py} if present)",
    )
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)  # internal: MLflow half, JSON out
    args = parser.parse_args()

    if args.worker:
        print(json.dumps({"seconds": bench_mlflow(args.worker, args)}))
        return

    values = args.runs * args.points * len(METRICS)
    engines = ["sqlite"] + ([] if args.no_pg or not args.pg else ["postgresql"])
    print(
        f"{args.runs} runs × {args.points} points × {len(METRICS)} metrics = {values} metric values, "
        f"reports of {args.batch} points, median of {args.repeat}"
        + (f"; PostgreSQL at {redacted(args.pg)}" if "postgresql" in engines else "")
    )
    header = f"{'engine':<11} {'writer':<22} {'seconds':>8} {'values/s':>12} {'points/s':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for kind in engines:
        sweeper_times, mlflow_times = [], []
        for _ in range(args.repeat):
            with fresh_database(kind, args.pg, "sweeper") as url:
                sweeper_times.append(bench_sweeper(url, args))
            with fresh_database(kind, args.pg, "mlflow") as url:
                mlflow_times.append(run_mlflow(url, args))
        t_sweeper = statistics.median(sweeper_times)
        t_mlflow = None if None in mlflow_times else statistics.median(mlflow_times)  # type: ignore[type-var]
        n_points = args.runs * args.points
        ratio = f"{t_mlflow / t_sweeper:6.1f}×" if t_mlflow else "    n/a"
        print(
            f"{kind:<11} {'sweeper write_points':<22} {t_sweeper:8.3f} {values / t_sweeper:12,.0f} "
            f"{n_points / t_sweeper:10,.0f} {ratio:>7}"
        )
        if t_mlflow:
            print(
                f"{kind:<11} {'mlflow log_batch':<22} {t_mlflow:8.3f} {values / t_mlflow:12,.0f} "
                f"{n_points / t_mlflow:10,.0f} {'1.0×':>7}"
            )
        else:
            print(f"{kind:<11} {'mlflow log_batch':<22} (mlflow not available: see --help for installing it)")


if __name__ == "__main__":
    main()
