"""Test-only fault injection for trials on Ray: the trial hooks module the launch tests give their workers.

A worker calls ``at_start`` and ``after_checkpoint`` only when ``SWEEPER_TRIAL_HOOKS`` names this module
(``sweeper.launch.trainable.HOOKS_ENV``). ``SWEEPER_TEST_FAULTS`` names a JSON file:
``{"raise": [trial ids], "kill_once": [trial ids], "dir": path}``.
A trial in ``raise`` raises at its start; a trial in ``kill_once`` SIGKILLs its own worker process right after
its first checkpoint, once (a marker file in ``dir`` remembers it). The launch tests use it to prove that failures,
retries and restores keep the database complete.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

FAULTS_ENV = "SWEEPER_TEST_FAULTS"


def _faults() -> dict:
    path = os.environ.get(FAULTS_ENV)
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else {}


def at_start(trial_id: str) -> None:
    if trial_id in _faults().get("raise", []):
        raise RuntimeError(f"injected failure in trial {trial_id} ({FAULTS_ENV})")


def after_checkpoint(trial_id: str) -> None:
    faults = _faults()
    if trial_id not in faults.get("kill_once", []):
        return
    marker = Path(faults["dir"]) / f"{trial_id}.killed"
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
