#!/usr/bin/env python
"""Reading results at scale: a study of ``--runs`` runs × ``--points`` points (default 1,000 × 1,000 = 1 M points).

The study is written through ``db.writer`` into a SQLite file, the way a sweep writes it: trials report in batches of
``--batch`` points, ``--concurrent`` trials at a time interleaved (so the ``points`` B-tree fills as it does in a
real sweep, not in one sorted pass). It is a linear-scaling (LSR) study of SGD on a linreg-like task — paths of
κ = 1, 2, 4, 8 × 2 seeds, every point carrying the columns a linreg trial logs (``train_acc``, ``test_acc`` and the
online-noise columns NULL) — whose ``test_loss`` depends on SDE time only, so the ``lsr`` check has real work to do.
The file is cached under ``--cache`` (keyed by the sizes and the schema revision); ``--rebuild`` writes it anew.

Printed (CPU seconds, ``time.process_time``, best of ``--repeat``; ratios against reading the same rows from
Parquet with pandas):

* ``check lsr``: what ``sweeper check lsr STUDY --no-store`` does — load the study, run the check;
* ``points_frame``: ``db.queries.points_frame`` of the whole study (its runs are sealed: read from their blocks,
  ``db.blocks``), of the same study written with its runs left running (SQLite; a second cached file: each run's
  points are chunks and the rows after them), and from the rows alone (no block at all);
* ``export parquet``: the tables of ``sweeper export --format parquet`` (``cli.export_command.study_tables``)
  written as Parquet files;
* ``parquet → pandas`` (and ``duckdb``, when installed): the same points read back from that Parquet file;
* bytes per point of the SQLite file (its ``points`` rows and ``point_blocks``) and of the Parquet file.

Building the study prints the CPU its writes took, and how much of it went into sealing the runs.

    python bench/bench_queries.py                  # 1,000 runs × 1,000 points (built once: about half a minute)
    python bench/bench_queries.py --runs 100       # a quick look
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KAPPAS = (1, 2, 4, 8)
SEEDS = (0, 1)
BASE_BATCH = 8
LOG_EVERY = 8
"""Raw steps between logged points at κ = 1 (a κ run logs every LOG_EVERY/κ steps: the same SDE times)."""


def trial_hparams(index: int, n_runs: int) -> dict[str, Any]:
    """Trial ``index`` of the study: path ``index // 8`` (its base lr), κ and seed from the rest."""
    path, rest = divmod(index, len(KAPPAS) * len(SEEDS))
    kappa, seed = KAPPAS[rest // len(SEEDS)], SEEDS[rest % len(SEEDS)]
    base_lr = 0.01 * (1 + path / max(1, n_runs // 8))
    return {"optimizer": "sgd", "model": "linear", "dataset": "linreg", "batch_size": BASE_BATCH * kappa,
            "lr": base_lr * kappa, "weight_decay": 0.0, "svag_l": 1.0, "seed": seed, "momentum": 0.0,
            "beta1": None, "beta2": None, "eps": None, "scaling_rule": "linear", "kappa": float(kappa)}


def trial_points(hp: dict[str, Any], n_points: int, index: int) -> list[dict[str, Any]]:
    """The trial's points: test_loss a function of SDE time plus seed noise (so LSR holds)."""
    import numpy as np

    kappa, lr = int(hp["kappa"]), float(hp["lr"])
    steps = np.arange(n_points) * (LOG_EVERY // kappa)
    rng = np.random.default_rng(index)
    t = steps * lr
    decay = np.exp(-t / (t[-1] + 1e-12) * 3.0)
    test = 0.5 + decay + 0.01 * rng.standard_normal(n_points)
    train = test + 0.02 * rng.standard_normal(n_points)
    norm = 1.0 + 0.1 * (1 - decay) + 1e-3 * rng.standard_normal(n_points)
    grad = 0.3 * decay + 0.05 + 1e-3 * rng.standard_normal(n_points)
    per_epoch = 16384 / hp["batch_size"]
    cols = {"effective_step": steps * kappa, "epoch": steps / per_epoch, "sde_time": t, "lr": np.full(n_points, lr),
            "weight_decay": np.zeros(n_points), "train_loss": train, "test_loss": test, "weight_norm": norm,
            "effective_lr": lr / norm**2, "angular_update": 1e-3 * decay + 1e-4, "grad_norm": grad}
    return [{"step": int(s), **{k: float(v[i]) for k, v in cols.items()}} for i, s in enumerate(steps)]


def reports(n_runs: int, n_points: int, batch: int,
            concurrent: int) -> Iterator[tuple[int, list[dict[str, Any]], bool]]:
    """(trial index, points, whether it is the trial's last report) in the order a sweep of ``concurrent`` trials
    at a time reports them."""
    for first in range(0, n_runs, concurrent):
        block = range(first, min(n_runs, first + concurrent))
        pts = {i: trial_points(trial_hparams(i, n_runs), n_points, i) for i in block}
        for start in range(0, n_points, batch):
            for i in block:
                yield i, pts[i][start : start + batch], start + batch >= n_points


def build(url: str, args: argparse.Namespace, status: str = "completed") -> None:
    """Write the study into the new, empty database at ``url`` through db.writer, as the driver's callback does: a
    run's last points and its ``status`` in one transaction (``completed`` seals it: ``db.blocks``)."""
    from sqlalchemy.orm import Session

    from db import writer
    from db.engine import open_db

    engine = open_db(url, create=True)
    with Session(engine) as session, session.begin():
        study = writer.ensure_study(session, "bench", {"name": "bench"})
        trials = [writer.PlainTrial(f"t{i:05d}", i, trial_hparams(i, args.runs)) for i in range(args.runs)]
        run_ids = writer.ensure_runs(session, study, trials)
    start, cpu_start, sealing = time.perf_counter(), time.process_time(), 0.0
    for i, batch, last in reports(args.runs, args.points, args.batch, args.concurrent):
        with Session(engine) as session, session.begin():
            writer.write_points(session, run_ids[f"t{i:05d}"], batch)
            if last:
                before = time.process_time()
                writer.update_run(session, run_ids[f"t{i:05d}"], status=status)
                sealing += time.process_time() - before
    print(f"built ({status}): {args.runs * args.points:,} points in {time.perf_counter() - start:.0f} s wall, "
          f"{time.process_time() - cpu_start:.1f} CPU s, of which {sealing:.1f} sealing the runs "
          f"({1e3 * sealing / args.runs:.1f} ms per run)")
    engine.dispose()


def cached_study(args: argparse.Namespace, status: str = "completed") -> Path:
    from db.migrate import head

    folder = Path(args.cache)
    folder.mkdir(parents=True, exist_ok=True)
    running = "-running" if status == "running" else ""
    path = folder / f"study-{args.runs}x{args.points}-b{args.batch}-c{args.concurrent}{running}-{head()}.db"
    if args.rebuild or not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        build(f"sqlite:///{tmp}", args, status)
        tmp.rename(path)
    return path


def storage(path: Path, out: Path, n: int) -> str:
    """Bytes per point: the file, the ``points`` and ``point_blocks`` B-trees (``dbstat``: payload, free space), the
    file after ``VACUUM`` (pages refilled in key order)."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        try:
            stats = conn.execute("SELECT name, sum(pgsize), sum(payload), sum(unused) FROM dbstat WHERE name IN "
                                 "('points', 'point_blocks') GROUP BY name ORDER BY name DESC").fetchall()
            trees = [f"{name} {size / n:.1f} (payload {payload / n:.1f}, free {unused / n:.1f}, page and cell "
                     f"headers {(size - payload - unused) / n:.1f})" for name, size, payload, unused in stats]
        except sqlite3.OperationalError:  # SQLite built without dbstat
            trees = ["no dbstat in this SQLite"]
        vacuumed = out / "vacuumed.db"
        conn.execute("VACUUM INTO ?", (str(vacuumed),))
    return f"{path.stat().st_size / n:.1f} file; {'; '.join(trees)}; {vacuumed.stat().st_size / n:.1f} after VACUUM"


def cpu(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best CPU seconds of ``repeat`` calls, and the last result."""
    best, out = math.inf, None
    for _ in range(repeat):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1000, help="points per run")
    parser.add_argument("--batch", type=int, default=50, help="points per report")
    parser.add_argument("--concurrent", type=int, default=16, help="trials reporting at the same time")
    parser.add_argument("--repeat", type=int, default=2, help="timings: best of this many")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "sweeper-bench-queries"))
    parser.add_argument("--rebuild", action="store_true", help="write the study anew even if cached")
    parser.add_argument("--pg", metavar="URL", help="also on PostgreSQL: a role that may CREATE DATABASE (the study "
                        "is written into a new database, dropped afterwards; e.g. $SWEEPER_TEST_PG_URL)")
    args = parser.parse_args()
    path = cached_study(args)
    measure(f"sqlite:///{path}", args, path, f"sqlite:///{cached_study(args, 'running')}")
    if args.pg:
        sys.path.insert(0, str(REPO / "bench"))
        from bench_db_write import fresh_database

        with fresh_database("postgresql", args.pg, "queries") as url:
            build(url, args)
            measure(url, args, None)


def without_blocks(engine: Any, read: Callable[[Any], Any]) -> Any:
    """``read(conn)`` with the study's blocks deleted in a transaction rolled back afterwards: the row path."""
    import sqlalchemy as sa

    from db.models import PointBlock

    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(sa.delete(PointBlock))
        out = read(conn)
        tx.rollback()
    return out


def measure(url: str, args: argparse.Namespace, sqlite_file: Path | None, running_url: str | None = None) -> None:
    """Print the timings on the study at ``url`` (and the SQLite file's bytes per point; ``points_frame`` of the
    study at ``running_url`` too, whose runs are running)."""

    import pandas as pd

    from cli.export_command import study_tables
    from db.engine import open_db
    from db.queries import points_frame
    from sweeper.checks.base import StudyData
    from sweeper.checks.registry import run_check

    n = args.runs * args.points
    engine = open_db(url)
    out = Path(tempfile.mkdtemp(prefix="bench-queries-"))

    def check() -> str:
        return run_check("lsr", StudyData.load(engine, "bench")).verdict

    def export() -> None:
        for name, frame in study_tables(engine, "bench", payloads=False).items():
            frame.to_parquet(out / f"{name}.parquet", index=False)

    rows: list[tuple[str, float, str]] = []
    t_check, verdict = cpu(check, args.repeat)
    rows.append(("check lsr (load + check)", t_check, verdict))
    t_points, frame = cpu(lambda: points_frame(engine, "bench"), args.repeat)
    rows.append(("points_frame", t_points, f"{frame.shape[0]:,} × {frame.shape[1]}; sealed runs: from blocks"))
    if running_url is not None:
        running = open_db(running_url)
        t_running, _ = cpu(lambda: points_frame(running, "bench"), args.repeat)
        rows.append(("points_frame, running", t_running, "runs running: from chunks and the rows after them"))
        running.dispose()
    t_rows, _ = cpu(lambda: without_blocks(engine, lambda conn: points_frame(conn, "bench")), args.repeat)
    rows.append(("points_frame, rows only", t_rows, "no block at all"))
    t_export, _ = cpu(export, args.repeat)
    rows.append(("export parquet", t_export, ""))
    parquet = out / "points.parquet"
    t_parquet, _ = cpu(lambda: pd.read_parquet(parquet), args.repeat)
    rows.append(("parquet → pandas", t_parquet, ""))
    try:
        import duckdb

        t_duck, _ = cpu(lambda: duckdb.sql(f"SELECT * FROM read_parquet('{parquet}')").df(), args.repeat)
        rows.append(("parquet → duckdb → pandas", t_duck, ""))
    except ImportError:
        pass
    engine.dispose()

    print(f"{engine.dialect.name}: {args.runs:,} runs × {args.points:,} points = {n:,} points; CPU s of this "
          f"process, best of {args.repeat}")
    print(f"{'what':<28} {'CPU s':>8} {'µs/point':>9} {'× parquet':>10}  note")
    for name, t, note in rows:
        print(f"{name:<28} {t:8.3f} {1e6 * t / n:9.2f} {t / t_parquet:9.1f}×  {note}")
    if sqlite_file is not None:
        print(f"bytes/point — SQLite: {storage(sqlite_file, out, n)}; Parquet points file: "
              f"{parquet.stat().st_size / n:.1f}")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
