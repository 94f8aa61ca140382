"""Database faults in the middle of a real study (`sweeper launch` in a subprocess, a local Ray):

* PostgreSQL stopped for OUTAGE_S and restarted: the study completes by itself, every point once;
* SQLite write-locked by another process for LOCK_S (past the engine's 30 s busy timeout): completes by itself;
* disk full (SQLite on a small tmpfs, root only): a clean stop in one line, the study reads as interrupted, the
  journal kept; `sweeper resume` completes it once space is freed;
* two launches of one study name at the same moment: exactly one study, run once; the other launch is refused in
  one line (exit 2).

The ≥ 5-minute outage and the 30-minute limit are shown with a fake clock in ``test_resilient_writer.py``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from db.engine import open_db
from db.models import HEARTBEAT_GRACE_S, Point, Study
from db.queries import study_status
from sweeper.expand import expand
from sweeper.launch.experiment import JOURNAL_FILE
from sweeper.launch.runner import StudyStopped
from sweeper.spec import load_spec
from tests.helpers import REPO_ROOT, TINY_LINREG, study_toml
from tests.launch.study import assert_complete, expected_steps, stored

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RAY_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(INFO|WARNING) ")
OUTAGE_S = 15.0
LOCK_S = 45.0


@pytest.fixture
def ray_tmp() -> Iterator[str]:
    """A Ray temp folder of this test's own (short: Ray's socket paths are limited), so that its `sweeper launch`
    starts a local Ray rather than joining another one on the machine."""
    folder = tempfile.mkdtemp(prefix="rc", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def spec_path(tmp_path) -> Path:
    path = tmp_path / "chaos.toml"
    path.write_text(study_toml(name="chaos", seeds=[0, 1], data=TINY_LINREG,
                               sweep={"lr": [0.05, 0.1], "svag_l": [1, 2]}, budget={"epochs": 20},
                               log={"every_epochs": 0.1, "eval_samples": 128, "report_seconds": 1e-6}))
    return path


def sweeper(ray_tmp: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=REPO_ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def n_points(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(sa.select(sa.func.count()).select_from(Point))
    except sa.exc.DBAPIError:  # no schema yet, or the server is down
        return 0
    finally:
        engine.dispose()


def wait_for_points(url: str, driver: subprocess.Popen, at_least: int = 20, timeout_s: float = 240) -> None:
    """Until the study has written ``at_least`` points (it is running, Ray and all)."""
    deadline = time.monotonic() + timeout_s
    while n_points(url) < at_least:
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "the study never got going"
        time.sleep(0.2)


def finish(driver: subprocess.Popen, timeout_s: float = 300) -> tuple[int, str, str]:
    try:
        out, err = driver.communicate(timeout=timeout_s)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, 9)  # whatever is left of its process group (its local Ray)
    return driver.returncode, out, err


def error_lines(stderr: str) -> list[str]:
    """What sweeper wrote on stderr (Ray may log a warning of its own there as it starts)."""
    return [line for line in stderr.splitlines() if line.strip() and not RAY_LOG_LINE.match(line)]


def assert_completed(url: str, spec_path: Path, out: str) -> None:
    result = json.loads(out)
    assert result["status"] == "completed" and result["runs"] == {"completed": 8}, result
    assert_complete(load_spec(spec_path), stored(url, "chaos"))  # every point, exactly once


def launch(ray_tmp: str, spec_path: Path, url: str, storage: Path) -> subprocess.Popen:
    return sweeper(ray_tmp, "launch", str(spec_path), "--db", url, "--storage", str(storage), "--json")


# ------------------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def private_pg(pg_admin_url) -> Iterator[tuple[str, dict[str, str]]]:
    """A PostgreSQL server of this test's own (``.ci/postgres.sh`` with its own folder; stopping the shared one
    would break other tests): (URL, the environment that addresses it with ``.ci/postgres.sh``)."""
    base = tempfile.mkdtemp(prefix="sweeper-chaos-pg-", dir="/tmp")  # the server's OS user must reach it
    env = {**os.environ, "SWEEPER_PG_DIR": base}
    started = subprocess.run([str(REPO_ROOT / ".ci/postgres.sh")], env=env, capture_output=True, text=True, check=False)
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip().split("=", 1)[1]
    try:
        yield url, env
    finally:
        subprocess.run([str(REPO_ROOT / ".ci/postgres.sh"), "--purge"], env=env, capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.postgres
def test_postgresql_stopped_and_restarted_mid_study(private_pg, spec_path, tmp_path, ray_tmp):
    url, env = private_pg
    script = str(REPO_ROOT / ".ci/postgres.sh")
    driver = launch(ray_tmp, spec_path, url, tmp_path / "ray")
    wait_for_points(url, driver)
    subprocess.run([script, "--stop"], env=env, capture_output=True, check=True)
    time.sleep(OUTAGE_S)
    assert driver.poll() is None, "the driver died while the database was down"
    subprocess.run([script], env=env, capture_output=True, check=True)  # the same port again
    rc, out, err = finish(driver)
    assert rc == 0, err[-3000:]
    assert_completed(url, spec_path, out)


# ------------------------------------------------------------------------------------------------ SQLite


def test_sqlite_write_locked_past_the_busy_timeout_mid_study(sqlite_url, spec_path, tmp_path, ray_tmp):
    driver = launch(ray_tmp, spec_path, sqlite_url, tmp_path / "ray")
    wait_for_points(sqlite_url, driver)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None, timeout=60)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, as another process holding a long transaction
    try:
        time.sleep(LOCK_S)
        assert driver.poll() is None, "the driver died while the database was locked"
    finally:
        holder.execute("COMMIT")
        holder.close()
    rc, out, err = finish(driver)
    assert rc == 0, err[-3000:]
    assert_completed(sqlite_url, spec_path, out)


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 16 MiB tmpfs (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    folder = Path(tempfile.mkdtemp(prefix="sweeper-full-", dir="/tmp"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True,
                             text=True, check=False)
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
        folder.rmdir()


def fill(folder: Path) -> Path:
    """A file that takes every free byte of ``folder``'s file system (unbuffered writes, down to single bytes)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_disk_full_stops_cleanly_and_resume_completes(small_disk, spec_path, tmp_path, ray_tmp):
    url = f"sqlite:///{small_disk / 'sweeper.db'}"
    open_db(url, create=True).dispose()
    storage = tmp_path / "ray"
    driver = launch(ray_tmp, spec_path, url, storage)
    wait_for_points(url, driver)
    filler = fill(small_disk)
    rc, out, err = finish(driver)
    assert "Traceback" not in err and out == ""
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: study 'chaos' stopped: the database refused a write: "
                                                   "database or disk is full"), err
    journal = storage / "chaos" / JOURNAL_FILE
    assert f"kept in {journal}" in lines[0] and journal.exists()
    assert lines[0].endswith("continue with `sweeper resume chaos`")
    stopped_rc = rc
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # marked interrupted, or read so once its heartbeat is past the grace
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=HEARTBEAT_GRACE_S + 1)
        assert study_status(conn, "chaos", now=later) == "interrupted"
        done = conn.scalar(sa.select(sa.func.count()).select_from(Point))
    engine.dispose()
    assert 0 < done < sum(len(expected_steps(t)) for t in expand(load_spec(spec_path)))  # stopped mid-study
    filler.unlink()
    rc, out, err = finish(sweeper(ray_tmp, "resume", "chaos", "--db", url, "--json"))
    assert rc == 0, err[-3000:]
    assert not journal.exists()  # replayed
    assert_completed(url, spec_path, out)
    assert stopped_rc == StudyStopped.exit_code == 1  # a study that did not complete, not bad input (2)


# ----------------------------------------------------------------------------------- same name, same time


def test_two_launches_of_one_name_at_the_same_moment(sqlite_url, spec_path, tmp_path, ray_tmp):
    open_db(sqlite_url, create=True).dispose()
    drivers = [launch(ray_tmp, spec_path, sqlite_url, tmp_path / "ray") for _ in range(2)]
    (rc_a, out_a, err_a), (rc_b, out_b, err_b) = [finish(d) for d in drivers]
    assert sorted([rc_a, rc_b]) == [0, 2], (err_a[-2000:], err_b[-2000:])
    out, err = (out_a, err_b) if rc_a == 0 else (out_b, err_a)
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: study 'chaos' ") and "Traceback" not in err, err
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Study)) == 1
    engine.dispose()
    assert_completed(sqlite_url, spec_path, out)
