"""Fixtures of the database tests: a migrated engine on each backend and a small study to read back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db import writer
from db.engine import open_db


def trial_config(i: int, **overrides: Any) -> writer.PlainTrial:
    """Trial ``i`` of an Adam study on a sqrt path; ``overrides`` replace hyperparameters."""
    hparams: dict[str, Any] = {
        "optimizer": "adam", "model": "mlp", "dataset": "teacher", "batch_size": [32, 64][i % 2],
        "lr": [0.01, 0.02][i // 2 % 2], "weight_decay": 5e-4, "svag_l": 1.0, "seed": i, "momentum": None,
        "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "scaling_rule": "sqrt", "kappa": 2.0,
    } | overrides
    config = {
        "trial_id": f"trial-{i:03d}",
        "index": i,
        "optimizer": {"name": hparams["optimizer"], "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
        "model": {"name": hparams["model"], "width": 64},
        "data": {"name": hparams["dataset"], "n_train": 512},
        **{k: hparams[k] for k in ("batch_size", "lr", "weight_decay", "svag_l", "seed")},
        "scaling": {"rule": hparams["scaling_rule"], "kappa": hparams["kappa"]},
        "schedule": {"lr": {"kind": "constant"}},
    }
    return writer.PlainTrial(f"trial-{i:03d}", i, hparams, config)


@pytest.fixture
def make_config() -> Callable[..., writer.PlainTrial]:
    """:func:`trial_config`, for tests that need more trial configs."""
    return trial_config


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a fresh database migrated to head (SQLite and PostgreSQL)."""
    eng = open_db(db_url, create=True)
    yield eng
    eng.dispose()


@pytest.fixture
def study(engine: Engine) -> dict[str, Any]:
    """A study 'demo' with 4 runs; returns ``{"study_id": ..., "runs": {trial_id: run_id}}``."""
    with Session(engine) as session, session.begin():
        st = writer.ensure_study(session, "demo", {"name": "demo", "lr": [0.01, 0.02]}, package_version="0.1.0")
        runs = writer.ensure_runs(session, st, [trial_config(i) for i in range(4)])
        return {"study_id": st.id, "runs": runs}
