"""End to end on a local Ray with 2 CPUs: every point lands in SQL, failures and retries included; workers are
reused across trials and run at nice 0."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import ray
import sqlalchemy as sa

from db.queries import diagnostics_frame
from sweeper.expand import expand
from sweeper.launch.experiment import read_packs
from sweeper.launch.runner import LaunchError, LaunchOptions, init_ray, launch_study
from sweeper.launch.trainable import HOOKS_ENV
from sweeper.launch.writer_callback import DbWriterCallback
from sweeper.testing.faults import FAULTS_ENV
from tests.launch.study import assert_complete, small_study, stored

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def faults_file(tmp_path_factory):
    """A local Ray (2 CPUs), started as sweeper starts one, for this module; its workers read fault instructions
    from a file."""
    path = tmp_path_factory.mktemp("faults") / "faults.json"
    path.write_text("{}")
    env = {HOOKS_ENV: "sweeper.testing.faults", FAULTS_ENV: str(path)}
    init_ray(LaunchOptions(ray_init_kwargs={"num_cpus": 2, "runtime_env": {"env_vars": env}}))
    yield path
    ray.shutdown()


def options(url: str, tmp_path, **kw) -> LaunchOptions:
    return LaunchOptions(db_url=url, storage=str(tmp_path / "ray"), progress=False, **kw)


@pytest.fixture
def trial_infos(monkeypatch) -> dict[str, list[dict]]:
    """{trial_id: [the ``info`` of each result]}, as the driver's DB callback received them."""
    seen: dict[str, list[dict]] = {}
    on_result = DbWriterCallback.on_trial_result

    def recording(self, iteration, trials, trial, result, **info):
        for trial_id, member in result["members"].items():
            seen.setdefault(trial_id, []).append(dict(member.get("info", {})))
        return on_result(self, iteration, trials, trial, result, **info)

    monkeypatch.setattr(DbWriterCallback, "on_trial_result", recording)
    return seen


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


def test_one_worker_trains_trial_after_trial_at_nice_0(faults_file, sqlite_url, tmp_path, trial_infos):
    """One trial at a time: a single reused worker process runs all of them (imports and data paid once), at the
    driver's priority rather than Ray's default nice 15."""
    spec = small_study(name="warm-worker")
    outcome = launch_study(spec, options(sqlite_url, tmp_path, max_concurrent=1, pack=1))
    assert outcome.counts == {"completed": 8}
    assert_complete(spec, stored(sqlite_url, spec.name))
    assert set(trial_infos) == {t.trial_id for t in expand(spec)}
    infos = [i for per_trial in trial_infos.values() for i in per_trial]
    pids = {i["pid"] for i in infos}
    assert len(pids) == 1 and os.getpid() not in pids, pids
    assert {i["nice"] for i in infos} == {os.nice(0)} == {0}


def test_failing_trial_is_recorded_and_the_others_go_on(faults_file, sqlite_url, tmp_path):
    spec = small_study(name="with-failure")
    bad = expand(spec)[3].trial_id
    faults_file.write_text(json.dumps({"raise": [bad]}))
    try:
        outcome = launch_study(spec, options(sqlite_url, tmp_path, max_failures=0, pack=1))
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
        outcome = launch_study(spec, options(sqlite_url, tmp_path, max_failures=2, pack=1))
    finally:
        faults_file.write_text("{}")
    assert outcome.counts == {"completed": 8}
    assert all((tmp_path / f"{v}.killed").exists() for v in victims)  # the kills really happened
    rows = stored(sqlite_url, spec.name)
    assert_complete(spec, rows)  # complete and unique despite the retry
    assert [rows[v]["attempts"] for v in victims] == [2, 2]
    assert all(rows[t.trial_id]["attempts"] == 1 for t in expand(spec)[2:])


def test_a_killed_reused_worker_is_replaced(faults_file, sqlite_url, tmp_path, trial_infos):
    """One trial at a time, so the victims run in a worker that earlier trials warmed up: its SIGKILL costs the
    victim one retry from its checkpoint (in a new process), and the trials after it still reuse workers."""
    spec = small_study(name="kill-warm")
    trials = expand(spec)
    victims = [trials[2].trial_id, trials[5].trial_id]
    faults_file.write_text(json.dumps({"kill_once": victims, "dir": str(tmp_path)}))
    try:
        outcome = launch_study(spec, options(sqlite_url, tmp_path, max_failures=1, max_concurrent=1, pack=1))
    finally:
        faults_file.write_text("{}")
    assert outcome.counts == {"completed": 8}
    rows = stored(sqlite_url, spec.name)
    assert_complete(spec, rows)
    assert {t.trial_id: rows[t.trial_id]["attempts"] for t in trials} == {
        t.trial_id: 2 if t.trial_id in victims else 1 for t in trials}
    pids = [{i["pid"] for i in trial_infos[t.trial_id]} for t in trials]
    # the victims' retries report from a new worker; a worker process dies only with a victim
    assert all(len(pids[i]) == 2 for i in (2, 5)), pids
    assert len(set().union(*pids)) <= 3, pids


def test_a_packed_launch_lands_like_an_unpacked_one(faults_file, sqlite_url, tmp_path, trial_infos):
    """--pack auto runs the 8 trials as 2 packs (one per svag_l); every run has the points of its unpacked twin."""
    packed, alone = small_study(name="packed"), small_study(name="alone")
    assert launch_study(packed, options(sqlite_url, tmp_path)).counts == {"completed": 8}
    assert launch_study(alone, options(sqlite_url, tmp_path / "b", pack=1)).counts == {"completed": 8}
    assert_complete(packed, stored(sqlite_url, "packed"))
    pids = {i["pid"] for t in expand(packed) for i in trial_infos[t.trial_id][:1]}
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        query = sa.text("select r.trial_id || '/' || p.step, p.test_loss from points p join runs r on r.id = p.run_id "
                        "join studies s on s.id = r.study_id where s.name = :n")
        loss = {name: dict(conn.execute(query, {"n": name}).all()) for name in ("packed", "alone")}
    engine.dispose()
    assert set(loss["packed"]) == set(loss["alone"]) and len(pids) <= 2
    assert all(abs(loss["packed"][k] - loss["alone"][k]) <= 1e-5 * abs(loss["alone"][k]) for k in loss["alone"])


def test_a_killed_pack_is_retried_from_its_checkpoint(faults_file, sqlite_url, tmp_path):
    """SIGKILL after a pack's first checkpoint: the whole pack retries from it; every member completes with its
    points complete and unique, each run counting the second attempt."""
    spec = small_study(name="kill-pack")
    trials = expand(spec)
    victim = trials[0].trial_id
    faults_file.write_text(json.dumps({"kill_once": [victim], "dir": str(tmp_path)}))
    try:
        outcome = launch_study(spec, options(sqlite_url, tmp_path, max_failures=1))
    finally:
        faults_file.write_text("{}")
    assert outcome.counts == {"completed": 8} and (tmp_path / f"{victim}.killed").exists()
    rows = stored(sqlite_url, spec.name)
    assert_complete(spec, rows)
    recorded = read_packs(str(tmp_path / "ray"), spec.name)
    assert sorted(i for p in recorded for i in p) == sorted(t.trial_id for t in trials) and len(recorded) > 1
    same_pack = next(p for p in recorded if victim in p)
    assert {rows[t]["attempts"] for t in same_pack} == {2}
    assert {rows[t.trial_id]["attempts"] for t in trials if t.trial_id not in same_pack} == {1}
