"""End to end on a local Ray with 2 CPUs: every point lands in SQL, failures and retries included."""

from __future__ import annotations

import json

import numpy as np
import pytest
import ray
import sqlalchemy as sa

from db.queries import diagnostics_frame
from sweeper.expand import expand
from sweeper.launch.faults import FAULTS_ENV
from sweeper.launch.runner import LaunchError, LaunchOptions, launch_study
from tests.launch.study import assert_complete, small_study, stored

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def faults_file(tmp_path_factory):
    """A local Ray (2 CPUs) for this module whose workers read fault instructions from a file."""
    path = tmp_path_factory.mktemp("faults") / "faults.json"
    path.write_text("{}")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {FAULTS_ENV: str(path)}})
    yield path
    ray.shutdown()


def options(url: str, tmp_path, **kw) -> LaunchOptions:
    return LaunchOptions(db_url=url, storage=str(tmp_path / "ray"), progress=False, **kw)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_study_lands_completely(backend, request, faults_file, tmp_path):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    spec = small_study(diagnostics={"noise": {"every_epochs": 1.0, "batches": 10},
                                    "trajectory": {"projections": 4, "every_steps": 2}})
    outcome = launch_study(spec, options(url, tmp_path))
    assert outcome.status == "completed" and outcome.counts == {"completed": 8}
    rows = stored(url, spec.name)
    assert_complete(spec, rows)
    assert all(r["attempts"] == 1 and r["host"] and r["device"] == "cpu" for r in rows.values())
    engine = sa.create_engine(url)
    diagnostics = diagnostics_frame(engine, spec.name, decode_payload=True)
    engine.dispose()
    for trial in expand(spec):
        mine = diagnostics[diagnostics.trial_id == trial.trial_id]
        assert list(mine[mine.kind == "noise"].step) == [0, trial.step_multiplier * 64, trial.step_multiplier * 128]
        assert (mine.kind == "trajectory_stats").sum() == 1
        samples = np.concatenate(list(mine[mine.kind == "trajectory"].payload))
        assert np.array_equal(samples[:, 0], np.arange(0, trial.step_multiplier * 128 + 1, 2))
    # launching the identical finished study again says so and changes nothing
    again = launch_study(spec, options(url, tmp_path))
    assert again.already_done and again.counts == {"completed": 8}
    assert stored(url, spec.name) == rows
    # a different spec under the same name is refused
    with pytest.raises(LaunchError, match="already exists with a different spec"):
        launch_study(small_study(epochs=1.0), options(url, tmp_path))


def test_failing_trial_is_recorded_and_the_others_go_on(faults_file, sqlite_url, tmp_path):
    spec = small_study(name="with-failure")
    bad = expand(spec)[3].trial_id
    faults_file.write_text(json.dumps({"raise": [bad]}))
    try:
        outcome = launch_study(spec, options(sqlite_url, tmp_path, max_failures=0))
    finally:
        faults_file.write_text("{}")
    assert outcome.status == "failed" and outcome.counts == {"completed": 7, "failed": 1}
    rows = stored(sqlite_url, spec.name)
    assert_complete(spec, rows, failed={bad})
    assert "injected failure" in rows[bad]["error"]


def test_killed_worker_is_retried_from_its_checkpoint(faults_file, sqlite_url, tmp_path):
    spec = small_study(name="with-kill")
    victims = [t.trial_id for t in expand(spec)[:2]]
    faults_file.write_text(json.dumps({"kill_once": victims, "dir": str(tmp_path)}))
    try:
        outcome = launch_study(spec, options(sqlite_url, tmp_path, max_failures=2))
    finally:
        faults_file.write_text("{}")
    assert outcome.counts == {"completed": 8}
    assert all((tmp_path / f"{v}.killed").exists() for v in victims)  # the kills really happened
    rows = stored(sqlite_url, spec.name)
    assert_complete(spec, rows)  # complete and unique despite the retry
    assert [rows[v]["attempts"] for v in victims] == [2, 2]
