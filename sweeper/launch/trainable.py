"""The Ray Tune function trainable: runs one trial and talks to Tune through :class:`TuneReporter`.

Runs on a Ray worker. It never touches the database: points travel in ``tune.report`` results to the driver,
whose callback writes them. Checkpoints are the trial state (``state.pt``) reported with each batch.

Workers are reused (``TuneConfig(reuse_actors=True)``): one process trains trial after trial, so the imports and
the data set (``build_dataset(..., cache=True)``) are paid once per process. Nothing else carries over: each
trial seeds its own generators and builds its own model and optimizer.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from sweeper.expand import TrialConfig
from sweeper.launch import faults
from sweeper.reporter import Report
from sweeper.train.loop import run_trial

STATE_FILE = "state.pt"


class TuneReporter:
    """Reporter for a trial inside Ray Tune."""

    def __init__(self, trial_id: str):
        self.trial_id = trial_id
        # pid and niceness: which worker process ran the trial, at what priority (the launch tests check both)
        self.where = {"host": socket.gethostname(), "node_id": _node_id(), "pid": os.getpid(), "nice": os.nice(0)}

    def checkpoint(self) -> dict[str, Any] | None:
        ckpt = tune.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as directory:
            return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)

    def report(self, report: Report) -> None:
        metrics = {"points": report.points, "diagnostics": report.diagnostics, "status": report.status,
                   "step": report.step, "info": report.info | self.where}
        if report.state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as directory:
            torch.save(report.state, Path(directory) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        faults.after_checkpoint(self.trial_id)


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def train(param: dict[str, Any]) -> None:
    """Tune entry point: ``param["trial"]`` is a TrialConfig as JSON."""
    config = TrialConfig.model_validate(param["trial"])
    faults.at_start(config.trial_id)
    run_trial(config, TuneReporter(config.trial_id))
