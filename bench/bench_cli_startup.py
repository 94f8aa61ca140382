#!/usr/bin/env python
"""Start-up cost of the commands that only read: CPU seconds of ``python -m cli ARGS`` (the whole process:
interpreter, imports, opening the database, the query, printing), against the 0.5 s target.

It builds a small SQLite study with ``db.writer`` (``--runs`` runs × ``--points`` points, no training, no Ray) in a
temporary folder, then runs each command ``--repeats`` times in a fresh process and keeps the least CPU time
(``getrusage(RUSAGE_CHILDREN)``: user + system; the least is the one least disturbed by other jobs). Each command
also reports whether torch, ray, pandas, numpy, Alembic, matplotlib or scipy were imported (``sys.modules``
at exit).

    python bench/bench_cli_startup.py [--root DIR] [--runs 20] [--points 50] [--repeats 3]

``--root`` runs the CLI of another source tree (e.g. ``git archive`` of an older commit unpacked in /tmp) against
the same database, for before/after figures.

Measured on 2 shared cores, 20 runs × 50 points, least of 5 (load average ≈ 2.4; the 83cc19e column was measured
earlier at load ≈ 8, its CPU seconds inflated by contention). 83cc19e: every command imported torch (``cli →
sweeper.expand → sweeper.spec → sweeper.data``); 4252ade: no torch, but pandas (``db.queries``) and Alembic (the
revision check of ``db.engine.open_db``); now: ``studies``, ``runs`` and ``show`` read plain rows (``db.rows``) and
``open_db`` compares the stored revision with ``db.migrate.HEAD_REVISION``, loading Alembic only for a database not
at head:

    command        83cc19e   4252ade    now    target 0.5 s
    --help            2.11      0.11    0.10   met
    studies           3.21      0.88    0.43   met
    runs STUDY        3.18      0.92    0.45   met
    show RUN          2.89      0.93    0.45   met

What is left is imports (CPU s): SQLAlchemy ≈ 0.15, its ORM and the declarative models ≈ 0.08, Typer ≈ 0.07 and the
pydantic adapters Typer builds to parse options ≈ 0.06; opening the database and the queries take ≈ 0.01, rich's
tables 0.02–0.04. ``show`` of a run with diagnostic payloads also imports numpy to decode them (≈ +0.03).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TARGET_S = 0.5
WATCHED = ("torch", "ray", "pandas", "numpy", "alembic", "matplotlib", "scipy")
PROBE = ("import runpy, sys\n"
         "sys.argv = ['sweeper', *sys.argv[1:]]\n"
         "try:\n"
         "    runpy.run_module('cli', run_name='__main__')\n"
         "finally:\n"
         f"    sys.stderr.write('imported: ' + ','.join(m for m in {WATCHED!r} if m in sys.modules) + '\\n')\n")


def build_study(url: str, runs: int, points: int) -> str:
    """A study of ``runs`` linreg runs with ``points`` points each, written through ``db.writer``; its name."""
    from sqlalchemy.orm import Session

    from db.engine import open_db
    from db.writer import ensure_runs, ensure_study, update_run, write_points
    from sweeper.expand import expand
    from sweeper.spec import parse_spec

    spec = parse_spec({"name": "bench", "seeds": list(range(runs)), "data": {"name": "linreg"},
                       "model": {"name": "linear"}, "optimizer": {"name": "sgd"},
                       "sweep": {"batch_size": [8], "lr": [0.1]}, "budget": {"epochs": 1},
                       "log": {"every_epochs": 1 / points}})
    trials = expand(spec)
    engine = open_db(url, create=True)
    with Session(engine) as session, session.begin():
        study = ensure_study(session, spec.name, spec.model_dump(mode="json"))
        ids = ensure_runs(session, study, list(trials))
        for trial in trials:
            write_points(session, ids[trial.trial_id],
                         [{"step": 10 * i, "epoch": i / points, "train_loss": 1.0 / (i + 1), "test_loss": 1.1 / (i + 1)}
                          for i in range(points)])
            update_run(session, ids[trial.trial_id], status="completed", steps_done=10 * (points - 1))
    engine.dispose()
    return spec.name


def cpu_seconds(root: Path, args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """CPU seconds (user + system) of one ``python -m cli ARGS`` in ``root``, and the watched modules it
    imported."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=root, env=env, capture_output=True, text=True,
                          check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    imported = done.stderr.rsplit("imported: ", 1)[-1].strip()
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, imported or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO, help="source tree whose CLI runs (default: this one)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        study = build_study(url, opts.runs, opts.points)
        env = {**os.environ, "SWEEPER_DB": url, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(opts.root.resolve())}
        commands = [["--help"], ["studies"], ["runs", study], ["show", "1"]]
        print(f"CLI start-up, CPU s (least of {opts.repeats}), {opts.runs} runs × {opts.points} points, "
              f"tree {opts.root}")
        print(f"{'command':<14} {'CPU s':>7} {'/ target':>9}  imported")
        for args in commands:
            measured = [cpu_seconds(opts.root, args, env) for _ in range(opts.repeats)]
            best = min(seconds for seconds, _ in measured)
            print(f"{' '.join(args):<14} {best:7.3f} {best / TARGET_S:8.2f}×  {measured[0][1]}")


if __name__ == "__main__":
    main()
