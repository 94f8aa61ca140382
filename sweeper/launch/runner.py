"""Launch and resume studies on Ray Tune (local Ray by default, an existing cluster with ``address``)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db.engine import open_db
from db.journal import Journal
from db.models import HEARTBEAT_GRACE_S, Run, Study
from db.types import utcnow
from db.writer import ensure_runs, ensure_study, spec_hash, update_study
from sweeper.expand import TrialConfig, expand
from sweeper.launch.experiment import (
    attempt_name,
    journal_path,
    latest_checkpoint,
    member_ids,
    pack_name,
    read_packs,
    write_packs,
)
from sweeper.launch.resilient_writer import OutagePolicy
from sweeper.spec import StudySpec, parse_spec

TERMINAL = ("completed", "diverged", "failed")
DEFAULT_STORAGE = "sweeper-results"

TUNE_ENVIRONMENT = {
    # Tune's own CSV/JSON/TensorBoard loggers would try to flatten our batches of points; the database is the log.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}
"""Set (unless already set) in the driver's environment before Tune runs; never at import."""

LOCAL_RAY_ENVIRONMENT = {
    # Ray's raylet starts workers at nice 15 (for a cluster's background work); a sweeper trial is the foreground
    # work, and on a shared host nice 15 starves it 3–5×. The raylet reads this at start, so it applies to a Ray
    # that sweeper starts; an existing cluster keeps its own setting (`RAY_worker_niceness=0 ray start ...`).
    "RAY_worker_niceness": "0",
    # Ray prestarts one idle worker per CPU for the first driver; Tune's trial actors start their own workers, so
    # those are started, importing Ray, and killed unused (≈ 0.3 CPU s each).
    "RAY_prestart_worker_first_driver": "0",
}
"""Set (unless already set) in the environment of the ``ray.init`` that starts a local Ray."""


def _setdefault_environment(values: dict[str, str]) -> None:
    for key, value in values.items():
        os.environ.setdefault(key, value)


class LaunchError(Exception):
    """A study cannot be launched or resumed as asked; the message is one line saying what to do."""

    exit_code = 2


class StudyStopped(LaunchError):
    """A running study was stopped because the database failed for good (or for too long); the message is one
    line saying what happened, where the unwritten results are kept and how to continue."""

    exit_code = 1


@dataclass
class LaunchOptions:
    db_url: str | None = None
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_failures: int = 2
    storage: str | None = None
    outage: OutagePolicy = field(default_factory=OutagePolicy)  # how database outages are waited out
    progress: bool = True
    retry_failed: bool = False
    pack: int | str = "auto"  # trials per Tune trial: "auto" or at most N (1: no packing; sweeper.train.pack.packs)
    ray_init_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class StudyOutcome:
    study: str
    status: str
    counts: dict[str, int]
    already_done: bool = False

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0 and self.status == "completed"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_counts(engine: Engine, study_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Run.status, sa.func.count()).where(Run.study_id == study_id).group_by(Run.status)
        ).all()
    return dict(rows)


def _finish(engine: Engine, study_id: int, name: str) -> StudyOutcome:
    counts = run_counts(engine, study_id)
    total = sum(counts.values())
    finished = sum(counts.get(s, 0) for s in TERMINAL)
    status = "interrupted" if finished < total else ("failed" if counts.get("failed") else "completed")
    with Session(engine) as session, session.begin():
        update_study(session, study_id, status=status)
    return StudyOutcome(name, status, counts)


def init_ray(options: LaunchOptions) -> dict[str, Any]:
    """Connect to ``options.address`` (or RAY_ADDRESS), else start a local Ray with sweeper's settings
    (:data:`LOCAL_RAY_ENVIRONMENT`), unless this process is already connected; returns the cluster's size.

    A notebook or a test that keeps one Ray up across launches starts it with this (``ray_init_kwargs`` for
    ``num_cpus``, ``runtime_env``, …); a Ray it starts with a bare ``ray.init`` runs trials at nice 15."""
    import ray

    if ray.is_initialized():
        return _cluster_size()
    kwargs = {"log_to_driver": False, "logging_level": logging.WARNING, "include_dashboard": False,
              "ignore_reinit_error": True} | options.ray_init_kwargs
    address = options.address or os.environ.get("RAY_ADDRESS")
    if address:
        kwargs.pop("include_dashboard")
        ray.init(address=address, **kwargs)
    else:
        _setdefault_environment(LOCAL_RAY_ENVIRONMENT)  # the raylet (and its workers) inherit this environment
        # "local": always a Ray of our own; a bare ray.init() would join a `ray start` cluster on this machine
        ray.init(address="local", **kwargs)
    return _cluster_size()


def _auth_hint() -> str:
    """A hint for a refused connection when Ray's token authentication may be why: ``ray start`` enables it and
    keeps the token in ``~/.ray/auth_token``, but a driver given ``HOST:PORT`` sends it only with
    ``RAY_AUTH_MODE=token`` (Ray's choice: a token is not sent to an arbitrary address unasked)."""
    token = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    if os.environ.get("RAY_AUTH_MODE") or not Path(token).is_file():
        return ""
    return " (a cluster started by `ray start` wants its auth token: export RAY_AUTH_MODE=token)"


def _cluster_size() -> dict[str, Any]:
    import ray

    resources = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {"ray_nodes": len(nodes), "ray_cpus": resources.get("CPU", 0.0), "ray_gpus": resources.get("GPU", 0.0)}


def _trainable(options: LaunchOptions):
    from ray import tune

    from sweeper.launch.trainable import train

    return tune.with_resources(train, {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial})


def _progress(total: int, finished: set[str], options: LaunchOptions) -> list:
    from sweeper.launch.progress import ProgressCallback

    return [ProgressCallback(total, finished)] if options.progress else []


def _storage_root(options: LaunchOptions) -> str:
    """The storage folder, absolute. Not a URI: sweeper keeps its packs file, outage journal and driver lock there
    beside Tune's checkpoints, as local files."""
    if options.storage and "://" in options.storage:
        raise LaunchError(f"--storage: {options.storage} is a URI; use a folder every node mounts (e.g. NFS)")
    return str(Path(options.storage or DEFAULT_STORAGE).expanduser().resolve())


def _check_resources(options: LaunchOptions) -> None:
    if options.cpus_per_trial < 0 or options.gpus_per_trial < 0:
        raise LaunchError("--cpus-per-trial and --gpus-per-trial must be ≥ 0")
    if options.gpus_per_trial > 1 and options.gpus_per_trial != int(options.gpus_per_trial):
        raise LaunchError("--gpus-per-trial above 1 must be a whole number of GPUs")
    if options.max_failures < 0:
        raise LaunchError("--max-failures must be ≥ 0")
    if options.max_concurrent is not None and options.max_concurrent < 1:
        raise LaunchError("--max-concurrent must be ≥ 1")
    if options.pack != "auto" and (not isinstance(options.pack, int) or isinstance(options.pack, bool)
                                   or options.pack < 1):
        raise LaunchError(f"--pack must be 'auto' or a whole number ≥ 1 (got {options.pack!r})")


def launch_study(spec: StudySpec, options: LaunchOptions) -> StudyOutcome:
    """Create the study and its pending runs, then run every trial on Ray Tune; returns the final counts."""
    _check_resources(options)
    _probe(options)
    trials = expand(spec)
    engine = open_db(options.db_url, create=True)
    try:
        existing = _existing_study(engine, spec)
        if existing is not None:
            return existing
        storage = _storage_root(options)
        if Journal(journal_path(storage, spec.name)):
            raise LaunchError(f"{journal_path(storage, spec.name)} holds unwritten results of an earlier study "
                              f"named {spec.name!r}, not of this one; move it away, or use another --storage")
        with _driver_lock(storage, spec.name), _ray(options) as size:  # reach the cluster before anything is written
            study_id, run_ids = _create_study(engine, spec, trials, storage)
            return _run_tuner(engine, study_id, spec.name, trials, run_ids, storage, options, size, restore=False)
    finally:
        engine.dispose()


def _create_study(engine: Engine, spec: StudySpec, trials: list[TrialConfig],
                  storage: str) -> tuple[int, dict[str, int]]:
    """Create the study and its pending runs in one transaction: (study id, {trial id: run id}). A LaunchError if
    another launch of the name has created it since :func:`_existing_study` looked (seen here, or refused by the
    unique name at the insert)."""
    taken = LaunchError(f"study {spec.name!r} was created by another launch at the same moment, which runs it; "
                        f"follow it with `sweeper runs {spec.name}`")
    try:
        with Session(engine) as session, session.begin():
            if session.scalar(sa.select(Study.id).where(Study.name == spec.name)) is not None:
                raise taken
            study = ensure_study(session, spec.name, spec.model_dump(mode="json"), git_commit=_git_commit())
            update_study(session, study.id, storage=storage, heartbeat_at=utcnow())  # alive from here on
            return study.id, ensure_runs(session, study, list(trials))
    except sa.exc.IntegrityError:
        raise taken from None


def _existing_study(engine: Engine, spec: StudySpec) -> StudyOutcome | None:
    """None if the name is free; the outcome if the identical study already finished; else LaunchError."""
    with Session(engine) as session:
        study = session.scalar(sa.select(Study).where(Study.name == spec.name))
        if study is None:
            return None
        identical = study.spec_hash == spec_hash(spec.model_dump(mode="json"))
        study_id = study.id
    counts = run_counts(engine, study_id)
    unfinished = sum(n for s, n in counts.items() if s not in TERMINAL)
    if _driver_alive(engine, study_id):
        raise LaunchError(f"study {spec.name!r} is running now (its driver's heartbeat is under "
                          f"{HEARTBEAT_GRACE_S:.0f} s old); follow it with `sweeper runs {spec.name}`")
    if identical and unfinished == 0:
        outcome = _finish(engine, study_id, spec.name)
        outcome.already_done = True
        return outcome
    if identical:
        raise LaunchError(f"study {spec.name!r} exists with {unfinished} unfinished runs; "
                          f"continue it with `sweeper resume {spec.name}`")
    raise LaunchError(f"study {spec.name!r} already exists with a different spec; "
                      f"choose a new name (or `sweeper resume {spec.name}` with its original spec)")


def _driver_alive(engine: Engine, study_id: int) -> bool:
    """Whether a driver runs the study now: stored ``running`` and a fresh heartbeat (``db.queries``)."""
    from db.queries import study_status

    with engine.connect() as conn:
        return study_status(conn, study_id) == "running"


DRIVER_LOCK = "sweeper-driver.lock"


@contextlib.contextmanager
def _driver_lock(storage: str, name: str) -> Iterator[None]:
    """Held (``flock``) while this process launches or resumes the study: a second driver would train its trials
    again beside this one and replay the journal this one appends to, so it is refused in one line. The kernel
    drops the lock when the process dies, so a killed driver's study is resumable at once, fresh heartbeat or not."""
    path = Path(storage) / name / DRIVER_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LaunchError(f"study {name!r} is run by another driver now (it holds {path}); follow it with "
                              f"`sweeper runs {name}`") from None
        except OSError:  # a file system without locks (some NFS mounts): the study runs unguarded
            pass
        yield


def resume_study(name: str, options: LaunchOptions) -> StudyOutcome:
    """Continue a study's unfinished trials from their last checkpoints (``sweeper.launch.experiment``)."""
    _check_resources(options)
    _probe(options)
    engine = open_db(options.db_url)
    try:
        with Session(engine) as session:
            study = session.scalar(sa.select(Study).where(Study.name == name))
            if study is None:
                raise LaunchError(f"no study named {name!r}; list them with `sweeper studies`")
            spec, storage, study_id = parse_spec(study.spec), study.storage or _storage_root(options), study.id
        with _driver_lock(storage, name):  # before the journal: a live driver appends to it
            Journal(journal_path(storage, name)).replay(engine)  # results an outage kept from the database
            trials = expand(spec)
            with Session(engine) as session, session.begin():
                run_ids = ensure_runs(session, study_id, list(trials))
                if options.retry_failed:
                    session.execute(sa.update(Run).where(Run.study_id == study_id, Run.status == "failed")
                                    .values(status="pending"))
                update_study(session, study_id, status="running")
            counts = run_counts(engine, study_id)
            if sum(n for s, n in counts.items() if s not in TERMINAL) == 0:
                outcome = _finish(engine, study_id, name)
                outcome.already_done = True
                return outcome
            with _ray(options) as size:
                return _run_tuner(engine, study_id, name, trials, run_ids, storage, options, size, restore=True)
    finally:
        engine.dispose()


def _run_tuner(engine: Engine, study_id: int, name: str, trials: list[TrialConfig], run_ids: dict[str, int],
               storage: str, options: LaunchOptions, size: dict[str, Any], restore: bool) -> StudyOutcome:
    """Run the unfinished trials in packs on Tune: a launch records its packs; a resume runs the recorded packs
    that still have unfinished members, each from its latest checkpoint (``sweeper.launch.experiment``)."""
    from ray import tune

    from sweeper.launch.resilient_writer import outage_engine
    from sweeper.launch.writer_callback import FINAL, DbWriterCallback, WriterStopper

    _setdefault_environment(TUNE_ENVIRONMENT)
    with Session(engine) as session, session.begin():  # alive from here on; DbWriterCallback keeps it fresh
        update_study(session, study_id, status="running", heartbeat_at=utcnow(), **size)
    status = {t.trial_id: _status(engine, run_ids[t.trial_id]) for t in trials}
    finished = {trial_id for trial_id, s in status.items() if s in TERMINAL}
    journal = journal_path(storage, name)
    final = [run_ids[trial_id] for trial_id, s in status.items() if s in FINAL]
    writer = DbWriterCallback(run_ids, journal, study_id, final_run_ids=final, policy=options.outage)
    writer.bind(outage_engine(engine.url, options.outage))
    by_id = {t.trial_id: t for t in trials}
    recorded = read_packs(storage, name) if restore else None
    if recorded is None:
        from sweeper.train.pack import packs  # torch: a driver that only validates or refuses never imports it

        slots = _slots(size, options)
        recorded = [[t.trial_id for t in p] for p in packs([t for t in trials if t.trial_id not in finished],
                                                            options.pack, slots)]
        if not restore:
            write_packs(storage, name, recorded)
    todo = [ids for ids in recorded if any(i not in finished for i in ids)]
    stored = _steps_done(engine, run_ids) if restore else {}
    params = [{"trials": [by_id[i].model_dump(mode="json") for i in ids],
               "resume_from": latest_checkpoint(storage, name, pack_name(ids), stored) if restore else None}
              for ids in todo]
    # reuse_actors: a worker process trains pack after pack (every Tune trial asks for the same resources),
    # paying its imports and its data set (build_dataset's process cache) once, not once per trial
    tuner = tune.Tuner(
        _trainable(options),
        param_space={"pack": tune.grid_search(params)},
        tune_config=tune.TuneConfig(max_concurrent_trials=options.max_concurrent, reuse_actors=True,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=attempt_name(storage, name), storage_path=storage, verbose=0, stop=WriterStopper(writer),
            callbacks=[writer, *_progress(len(trials), finished, options)],
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )
    logging.getLogger("ray.tune").setLevel(logging.ERROR)  # our progress bar and the database report
    try:
        tuner.fit()
    finally:
        writer.close()  # anything the database has not taken is in the journal
    if writer.stopped:
        _stopped(engine, study_id, name, writer.stopped, journal)
    return _finish(engine, study_id, name)


def _stopped(engine: Engine, study_id: int, name: str, reason: str, journal: Path) -> None:
    """Record the study as interrupted if the database still takes that (else its heartbeat, left to age, says
    so), then raise StudyStopped."""
    with contextlib.suppress(sa.exc.DBAPIError):
        _finish(engine, study_id, name)  # unfinished runs: the study is interrupted
    kept = f"; the results not yet written are kept in {journal}" if Journal(journal) else ""
    raise StudyStopped(f"study {name!r} stopped: {reason}{kept}; once the database is fixed, continue with "
                       f"`sweeper resume {name}`")


def _trial_name(trial: Any) -> str:
    return pack_name(member_ids(trial.config))


@contextlib.contextmanager
def _ray(options: LaunchOptions) -> Iterator[dict[str, Any]]:
    """Ray for a launch or resume: this process's connection if it has one, else a new one (shut down after);
    a cluster that refuses the connection is a LaunchError (one line)."""
    import ray

    connected_before = ray.is_initialized()
    try:
        size = init_ray(options)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        raise LaunchError(f"cannot connect to the Ray cluster at {options.address!r}: {str(exc).splitlines()[0]}"
                          f"{_auth_hint()}; run `ray status` on its head node, or use --address auto on a node of "
                          "the cluster") from None
    try:
        yield size
    finally:
        if not connected_before:
            ray.shutdown()


PROBE_TIMEOUT_S = 5.0


def _probe(options: LaunchOptions) -> None:
    """Refuse in one line, before anything is written, a ``host:port`` where no Ray head listens (``ray.init``
    would wait minutes, then fail with a traceback). ``auto``, ``ray://``, no address, or a process already
    connected to Ray are left alone."""
    import ray

    address = options.address or os.environ.get("RAY_ADDRESS")
    if not address or address == "auto" or "://" in address or ray.is_initialized():
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise LaunchError(f"--address {address!r}: expected HOST:PORT (the address `ray start --head` printed) "
                          "or auto")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise LaunchError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); use the address `ray "
                          "start --head` printed (it may be the node's IP, not 127.0.0.1), or --address auto on a "
                          "node of the cluster") from None


def _slots(size: dict[str, Any], options: LaunchOptions) -> int:
    """Trials (packs) the cluster runs at once: its CPUs (or GPUs) over what one asks for, capped by
    ``--max-concurrent``."""
    per = [size["ray_cpus"] / options.cpus_per_trial if options.cpus_per_trial else 0.0,
           size["ray_gpus"] / options.gpus_per_trial if options.gpus_per_trial else 0.0]
    slots = int(min(p for p in per if p > 0)) if any(p > 0 for p in per) else 1
    return max(1, min(slots, options.max_concurrent or slots))


def _steps_done(engine: Engine, run_ids: dict[str, int]) -> dict[str, int]:
    """{trial id: the last step whose points the database holds}."""
    by_run = {run_id: trial_id for trial_id, run_id in run_ids.items()}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Run.id, Run.steps_done).where(Run.id.in_(list(by_run)))).all()
    return {by_run[r.id]: int(r.steps_done) for r in rows if r.steps_done is not None}


def _status(engine: Engine, run_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.select(Run.status).where(Run.id == run_id)).scalar_one()
