"""Synthetic studies written through ``db.writer`` (no training): the dashboard's tests and ``bench/bench_serve.py``.

A study is the real expansion (``sweeper.expand``) of a linreg spec: η0 × κ (linear scaling path: B = κ·B0,
η = κ·η0) × seeds of SGD trials, whose points are made up: the loss decays as ``0.5 + exp(-t)`` in SDE time t (so
the linear scaling rule holds by construction) plus seeded noise. Points are at raw steps 0, ``stride``,
2·``stride``, … with ``epoch`` = step·B/n_train and ``sde_time`` = step·η, and carry the columns a trial logs
without the online noise scale (``noise_trace``, ``grad_sq``, ``noise_scale`` stay NULL).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db import writer
from db.models import Study
from db.queries import runs_frame
from sweeper.expand import TrialConfig, expand
from tests.helpers import make_spec

N_TRAIN = 4096
B0 = 8


def trial_configs(lrs: Sequence[float], kappas: Sequence[float], seeds: Sequence[int]) -> list[TrialConfig]:
    """The trials of η0 ∈ ``lrs`` × κ ∈ ``kappas`` × ``seeds`` (B0 = 8), as ``sweeper launch`` expands them."""
    spec = make_spec(name="synthetic", seeds=list(seeds), data={"name": "linreg", "n_train": N_TRAIN, "dim": 8},
                     sweep={"batch_size": [B0], "lr": list(lrs)},
                     scaling={"rule": "linear", "factors": list(kappas)})
    return expand(spec)


def create_study(engine: Engine, name: str, trials: Sequence[TrialConfig], *, spec: dict[str, Any] | None = None,
                 status: str = "running") -> dict[str, int]:
    """The study (``status``; a running one gets a fresh heartbeat) and its pending runs; returns
    ``{trial_id: run_id}``."""
    with Session(engine) as session, session.begin():
        study = writer.ensure_study(session, name, spec or {"name": name, "seeds": [0]}, status=status)
        if status == "running":
            writer.write_heartbeat(session, study.id)
        return writer.ensure_runs(session, study, list(trials))


def run_ids(engine: Engine, name: str) -> dict[tuple[float, float, int], int]:
    """``{(lr, κ, seed): run_id}`` of a study (lr as run: κ·η0)."""
    runs = runs_frame(engine, name)
    return {(float(r.lr), float(r.kappa), int(r.seed)): int(r.run_id) for r in runs.itertuples()}


def trajectory(trial: TrialConfig, steps: np.ndarray) -> list[dict[str, Any]]:
    """The run's points at ``steps`` (raw steps)."""
    lr, batch = float(trial.lr), int(trial.batch_size)
    rng = np.random.default_rng([int(trial.seed), int(trial.index)])
    t = steps * lr
    noise = 0.01 * rng.standard_normal((2, len(steps)))
    test = 0.5 + np.exp(-t) + noise[0]
    train = 0.5 + np.exp(-t) + noise[1]
    return [{"step": int(s), "effective_step": float(s), "epoch": float(s * batch / N_TRAIN), "sde_time": float(ti),
             "lr": lr, "weight_decay": 0.0, "train_loss": float(a), "test_loss": float(b),
             "train_acc": float(1 - a / 2), "test_acc": float(1 - b / 2), "weight_norm": 1.0 + float(ti),
             "effective_lr": lr / (1.0 + float(ti)) ** 2, "angular_update": 0.1 * lr, "grad_norm": float(a)}
            for s, ti, a, b in zip(steps, t, train, test, strict=True)]


def write_run(engine: Engine, run_id: int, trial: TrialConfig, steps: np.ndarray, *,
              status: str | None = None) -> None:
    """Write the run's points at ``steps`` (and set its status when given) in one transaction."""
    with Session(engine) as session, session.begin():
        writer.write_points(session, run_id, trajectory(trial, steps))
        if status is not None:
            writer.update_run(session, run_id, status=status, steps_done=int(steps[-1]) if len(steps) else 0)


def write_diagnostics(engine: Engine, run_id: int, steps: Sequence[int], *, g_over_n: float = 0.5) -> None:
    """One noise, covariance, sharpness and trajectory_stats measurement at each step (known values: G_t = 1,
    N_t = 1/g_over_n, spectrum 1, 1/2, 1/4, …, λ_max = 10 + step/1000, Lévy z = 0.5)."""
    rows = []
    for step in steps:
        n_t = 1.0 / g_over_n
        rows += [
            {"step": step, "kind": "noise", "value": g_over_n,
             "summary": {"g_t": 1.0, "n_t": n_t, "b_simple": B0 * n_t, "s": 1.0, "trace_sigma": B0 * n_t}},
            {"step": step, "kind": "covariance", "value": 0.1, "summary": {"trace": 2.0, "rank": 3},
             "payload": 0.5 ** np.arange(8)},
            {"step": step, "kind": "sharpness", "value": 10.0 + step / 1000, "summary": {"converged": True}},
            {"step": step, "kind": "trajectory_stats", "value": 0.6,
             "summary": {"levy_statistic": 0.1, "levy_z": 0.5, "levy_p": 0.6, "low_freq_ratio": 1.0,
                         "acf_fraction_outside": 0.01, "msd_exponent": 1.0}},
        ]
    writer.write_diagnostics(engine, run_id, rows)


def build_study(engine: Engine, name: str, *, lrs: Sequence[float] = (0.05,), kappas: Sequence[float] = (1, 2),
                seeds: Sequence[int] = (0, 1), points: int = 50, stride: int = 10, status: str = "completed",
                spec: dict[str, Any] | None = None, study_status: str = "completed",
                report: int | None = None) -> dict[str, int]:
    """A whole study: every run with ``points`` points and ``status``, written in reports of ``report`` points
    (default: all at once; the status with the last); returns ``{trial_id: run_id}``."""
    trials = trial_configs(lrs, kappas, seeds)
    ids = create_study(engine, name, trials, spec=spec, status=study_status)
    steps = np.arange(points) * stride
    size = report or max(points, 1)
    for trial in trials:
        for start in range(0, max(points, 1), size):
            last = start + size >= points
            write_run(engine, ids[trial.trial_id], trial, steps[start:start + size], status=status if last else None)
    return ids


class LiveWriter(threading.Thread):
    """Writes a running study's points as a launch would: every ``interval`` seconds, the next ``batch`` points
    of every run (and a heartbeat), until each run has ``points`` points (then its status is completed) or
    :meth:`stop` is called. ``batches`` counts the batches written."""

    def __init__(self, engine: Engine, name: str, trials: Sequence[TrialConfig], ids: dict[str, int], *,
                 points: int, batch: int, interval: float, stride: int = 10):
        super().__init__(daemon=True)
        self.engine, self.name, self.trials, self.ids = engine, name, trials, ids
        self.steps = np.arange(points) * stride
        self.batch, self.interval, self.batches = batch, interval, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as conn:
            study_id = conn.scalar(sa.select(Study.id).where(Study.name == self.name))
        for start in range(0, len(self.steps), self.batch):
            if self._stop_event.wait(self.interval):
                return
            last = start + self.batch >= len(self.steps)
            for trial in self.trials:
                write_run(self.engine, self.ids[trial.trial_id], trial, self.steps[start:start + self.batch],
                          status="completed" if last else "running")
            writer.write_heartbeat(self.engine, study_id)
            self.batches += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)
