"""End to end: `sweeper launch` a small real study on local Ray, then `sweeper check` and `sweeper report`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.helpers import REPO_ROOT

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SPEC = """
name = "e2e-lsr"
seeds = [0, 1, 2]
device = "cpu"
[data]
name = "linreg"
n_train = 1024
dim = 8
condition = 4.0
[model]
name = "linear"
[optimizer]
name = "sgd"
[sweep]
batch_size = [4]
lr = [0.02]
[scaling]
rule = "linear"
factors = [1, 2]
[budget]
epochs = 6
[log]
every_epochs = 0.25
[diagnostics.noise]
batches = 50
"""


def sweeper(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=600, check=False)


def test_launch_then_check_then_report(tmp_path):
    spec = tmp_path / "study.toml"
    spec.write_text(SPEC)
    db = f"sqlite:///{tmp_path / 'sweeper.db'}"
    launched = sweeper("launch", str(spec), "--db", db, "--storage", str(tmp_path / "ray"), "--json")
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert json.loads(launched.stdout)["runs"] == {"completed": 6}

    checked = sweeper("check", "lsr", "e2e-lsr", "--db", db, "--json")
    assert checked.returncode == 0, checked.stderr[-3000:]
    verdict = json.loads(checked.stdout)
    assert verdict["verdict"] == "CONFIRMED", verdict["summary"]
    assert verdict["statistic"] == 2 and verdict["evidence"]
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        stored = conn.execute(sa.text('select "check", verdict from verdicts')).all()
    engine.dispose()
    assert stored == [("lsr", "CONFIRMED")]

    everything = sweeper("check", "all", "e2e-lsr", "--db", db, "--json", "--no-store")
    assert everything.returncode == 0, everything.stderr[-3000:]
    by_check = {v["check"]: v for v in json.loads(everything.stdout)}
    assert by_check["lsr"]["verdict"] == "CONFIRMED"
    assert by_check["limit-cycles"]["verdict"] == "INCONCLUSIVE" and by_check["limit-cycles"]["missing"]

    reported = sweeper("report", "e2e-lsr", "--db", db, "-o", str(tmp_path / "report"))
    assert reported.returncode == 0, reported.stderr[-3000:]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "e2e-lsr" in page and "CONFIRMED" in page
