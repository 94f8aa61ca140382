"""Small builders shared by the tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from sweeper.expand import TrialConfig, expand
from sweeper.spec import StudySpec, parse_spec

REPO_ROOT = Path(__file__).resolve().parents[1]

BASE: dict[str, Any] = {
    "name": "t",
    "seeds": [0],
    "data": {"name": "linreg", "n_train": 2048, "dim": 8, "condition": 4.0, "noise": 1.0},
    "model": {"name": "linear"},
    "optimizer": {"name": "sgd"},
    "sweep": {"batch_size": [8], "lr": [0.1]},
    "budget": {"epochs": 1},
    "log": {"every_epochs": 0.25, "eval_samples": 512},
    "device": "cpu",
}


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in, section by section (a None value removes the key).

    A section that names a ``name`` (data, model, optimizer) or is ``budget`` replaces the base section whole.
    """
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict) and "name" not in value and key != "budget":
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def study_toml(**changes: Any) -> str:
    """``BASE`` with ``changes`` (merged as :func:`merged` does) as the text of a study file."""
    from sweeper.report.spec_toml import dumps

    return dumps(merged(BASE, changes))


TINY_LINREG = {"name": "linreg", "n_train": 512, "dim": 4}
"""A data section for launches that only need some trials to run (≈ 0.1 s each)."""


def make_spec(**changes: Any) -> StudySpec:
    return parse_spec(merged(BASE, changes))


def make_trial(**changes: Any) -> TrialConfig:
    """The first trial of ``BASE`` with ``changes``."""
    return expand(make_spec(**changes))[0]
