"""The driver killed mid-study (SIGKILL of `sweeper launch`), then `sweeper resume`: complete, unique points."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from db.models import Run
from tests.helpers import REPO_ROOT
from tests.launch.study import assert_complete, stored

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SPEC = """
name = "killed-driver"
seeds = [0, 1]
device = "cpu"
[data]
name = "linreg"
n_train = 1024
dim = 4
[model]
name = "linear"
[optimizer]
name = "sgd"
[sweep]
batch_size = [8]
lr = [0.05, 0.1]
svag_l = [1, 2]
[budget]
epochs = 30  # packed (one pack per l), so that the l = 2 pack is still running when the l = 1 one is done
[log]
every_epochs = 0.1
eval_samples = 256
report_seconds = 0.000001
"""


def sweeper(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=REPO_ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def statuses(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.scalars(sa.select(Run.status)))
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


def test_resume_after_the_driver_is_killed(sqlite_url, tmp_path):
    spec_path = tmp_path / "study.toml"
    spec_path.write_text(SPEC)
    storage = str(tmp_path / "ray")
    driver = sweeper("launch", str(spec_path), "--db", sqlite_url, "--storage", storage, "--json")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        done = statuses(sqlite_url)
        if done.count("completed") >= 4:  # the l = 1 pack (half the steps of the l = 2 one)
            break
        assert driver.poll() is None, driver.communicate()
        time.sleep(0.2)
    else:
        pytest.fail("the study never got going")
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    time.sleep(3)  # let Ray's reaper take down the orphaned local cluster
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)  # whatever is left of that process group
    before = statuses(sqlite_url)
    assert before.count("completed") < 8, "the kill came too late to test anything"

    resumed = sweeper("resume", "killed-driver", "--db", sqlite_url, "--json")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    result = json.loads(out)
    assert result["status"] == "completed" and result["runs"] == {"completed": 8}

    from sweeper.spec import load_spec

    assert_complete(load_spec(spec_path), stored(sqlite_url, "killed-driver"))
