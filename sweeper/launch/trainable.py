"""The Ray Tune function trainable: runs one pack of trials (one trial, or K packed ones: ``sweeper.train.pack``)
and talks to Tune through :class:`TuneReporter`.

Runs on a Ray worker. It never touches the database: points travel in ``tune.report`` results to the driver,
whose callback writes them — a result holds ``members``: per trial id, that trial's points, diagnostics, status,
step and info. Checkpoints (``state.pt``) hold every running member's trial state; a member absent from it had
finished before it was taken.

Workers are reused (``TuneConfig(reuse_actors=True)``): one process trains trial after trial, so the imports and
the data set (``build_dataset(..., cache=True)``) are paid once per process. Nothing else carries over: each
trial seeds its own generators and builds its own model and optimizer.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from ray import tune

from sweeper.expand import TrialConfig
from sweeper.launch.experiment import STATE_FILE, STEPS_FILE
from sweeper.reporter import Report
from sweeper.train.loop import run_trial
from sweeper.train.pack import PackedTrial

HOOKS_ENV = "SWEEPER_TRIAL_HOOKS"
"""Names a module with ``at_start(trial_id)`` and ``after_checkpoint(trial_id)`` that the worker calls around each
trial (the launch tests' fault injection, ``sweeper.testing.faults``); unset: no hooks."""


def _hooks() -> ModuleType | None:
    name = os.environ.get(HOOKS_ENV)
    return importlib.import_module(name) if name else None


class TuneReporter:
    """Reporter for a pack of trials inside Ray Tune (a ``PackReporter``; ``member`` gives one trial's view).

    Resumes from Tune's checkpoint of this run (a retried attempt), else from ``resume_from`` (a checkpoint folder
    of an earlier launch of the study, found by the driver)."""

    def __init__(self, trial_ids: list[str], resume_from: str | None = None):
        self.trial_ids, self.resume_from = trial_ids, resume_from
        # pid and niceness: which worker process ran the trial, at what priority (the launch tests check both)
        self.where = {"host": socket.gethostname(), "node_id": _node_id(), "pid": os.getpid(), "nice": os.nice(0)}

    def checkpoint(self) -> dict[str, dict[str, Any]] | None:
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as directory:
                return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
        if self.resume_from is not None:
            return torch.load(Path(self.resume_from) / STATE_FILE, map_location="cpu", weights_only=True)
        return None

    def report(self, reports: dict[str, Report]) -> None:
        members = {tid: {"points": r.points, "diagnostics": r.diagnostics, "status": r.status, "step": r.step,
                         "info": r.info | self.where} for tid, r in reports.items()}
        metrics = {"members": members, "step": max(r.step for r in reports.values())}
        states = {tid: r.state for tid, r in reports.items() if r.state is not None}
        if not states:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as directory:
            torch.save(states, Path(directory) / STATE_FILE)
            (Path(directory) / STEPS_FILE).write_text(json.dumps({tid: reports[tid].step for tid in states}))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        hooks = _hooks()
        if hooks is not None:
            for trial_id in states:
                hooks.after_checkpoint(trial_id)

    def member(self, trial_id: str) -> _Member:
        return _Member(self, trial_id)


class _Member:
    """One unpacked trial's ``Reporter`` on top of the pack reporter."""

    def __init__(self, pack: TuneReporter, trial_id: str):
        self.pack, self.trial_id = pack, trial_id

    def checkpoint(self) -> dict[str, Any] | None:
        return (self.pack.checkpoint() or {}).get(self.trial_id)

    def report(self, report: Report) -> None:
        self.pack.report({self.trial_id: report})


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def train(param: dict[str, Any]) -> None:
    """Tune entry point: ``param["pack"]`` holds ``trials`` (TrialConfigs as JSON) and ``resume_from``."""
    configs = [TrialConfig.model_validate(t) for t in param["pack"]["trials"]]
    hooks = _hooks()
    if hooks is not None:
        for config in configs:
            hooks.at_start(config.trial_id)
    reporter = TuneReporter([c.trial_id for c in configs], param["pack"].get("resume_from"))
    if len(configs) == 1:
        run_trial(configs[0], reporter.member(configs[0].trial_id))
    else:
        PackedTrial(configs).run(reporter)
