"""Launching onto a running Ray cluster by address, as a cluster operator starts one (``ray start --head``): Ray
(≥ 2.5x) starts it with token authentication, and a launch without ``--address`` must not join it by accident."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from sweeper.launch.runner import _auth_hint
from sweeper.testing.ray_head import ray_head
from tests.helpers import REPO_ROOT, TINY_LINREG, study_toml


def launch(tmp_path: Path, name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    spec = tmp_path / f"{name}.toml"
    spec.write_text(study_toml(name=name, seeds=[0, 1], data=TINY_LINREG, sweep={"lr": [0.05, 0.1]},
                               budget={"epochs": 1}, log={"every_epochs": 0.5}))
    return subprocess.run([sys.executable, "-m", "cli", "launch", str(spec), "--db", f"sqlite:///{tmp_path}/c.db",
                           "--storage", str(tmp_path / "ray"), "--json", *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
@pytest.mark.ray
def test_a_study_runs_on_a_cluster_by_address_and_a_local_launch_keeps_its_own_ray(tmp_path):
    with ray_head(cpus=1) as head:
        on_cluster = launch(tmp_path, "on-cluster", head.env, "--address", head.address)
        assert on_cluster.returncode == 0, on_cluster.stderr[-3000:]
        local = launch(tmp_path, "local", {k: v for k, v in head.env.items() if k != "RAY_ADDRESS"})
        assert local.returncode == 0, local.stderr[-3000:]
    engine = sa.create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as conn:
        studies = dict(conn.execute(sa.text("SELECT name, ray_cpus FROM studies")).all())
        statuses = conn.execute(sa.text("SELECT DISTINCT status FROM runs")).scalars().all()
    # the head has 1 CPU; a local Ray of sweeper's own has this machine's (a bare ray.init() would join the head)
    assert studies == {"on-cluster": 1.0, "local": float(os.cpu_count())}
    assert statuses == ["completed"]


def test_a_refused_connection_names_ray_token_mode_where_a_token_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert _auth_hint() == ""
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x" * 32)
    assert "export RAY_AUTH_MODE=token" in _auth_hint()
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # already sent: the token is not why
    assert _auth_hint() == ""
