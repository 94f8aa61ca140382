"""The write path of the driver's Tune callback: batched, idempotent writes of studies, runs, points, diagnostics.

Idempotence is what makes retries and resumes safe: :func:`ensure_study` and :func:`ensure_runs` return what is
there already; :func:`write_points` and :func:`write_diagnostics` insert with ``ON CONFLICT DO NOTHING`` on the
primary key ``(run_id, step)`` / ``(run_id, step, kind)``, so a step reported twice (a trial restored from a
checkpoint, a driver resumed with ``Tuner.restore``) is neither duplicated nor changed.

A run's points are also kept as columnar blocks (:mod:`db.blocks`) in the transaction of each write: a running run
gets a chunk per ``db.blocks.CHUNK_POINTS`` points written, a run whose status becomes sealed (completed, diverged)
one block of all its points, and points inserted at a step a block covers rebuild the run's blocks. Replaying a
batch (``db.journal``) thus leaves blocks that agree with the rows.

None of these functions commits: the caller owns the transaction (``with Session(engine) as s, s.begin(): ...`` or
``with engine.begin() as conn: ...``). The bulk writers also take an Engine, and then commit their own transaction;
:func:`store_verdict` (a check's verdict, as ``sweeper check`` stores it) takes an Engine and always does.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from db.errors import StudySpecMismatch, UnknownRun, UnknownStudy
from db.models import (
    POINT_METRICS,
    RUN_HPARAMS,
    RUN_STATUSES,
    SEALED_STATUSES,
    STUDY_STATUSES,
    VERDICT_VALUES,
    Diagnostic,
    Run,
    Study,
    Verdict,
)
from db.types import encode_json, float_binder, utcnow

__all__ = [
    "POINT_KEYS",
    "DIAGNOSTIC_KEYS",
    "spec_hash",
    "Trial",
    "PlainTrial",
    "run_row",
    "ensure_study",
    "update_study",
    "write_heartbeat",
    "ensure_runs",
    "update_run",
    "write_points",
    "write_diagnostics",
    "RunWrite",
    "write_run_batch",
    "add_verdict",
    "store_verdict",
]

POINT_KEYS = frozenset(("step", *POINT_METRICS))
"""Keys a point dict may have: ``step`` (required) and the metric columns of ``points``."""
DIAGNOSTIC_KEYS = frozenset(("step", "kind", "wall_seconds", "value", "summary", "payload"))
"""Keys a diagnostic dict may have: ``step`` and ``kind`` (required), the rest optional."""

CHUNK_ROWS = 1000
"""Rows per multi-row INSERT on SQLite: a point row takes one parameter per column (run_id, step and each metric,
18 today), so a chunk stays under SQLite's 32766-parameter limit while there are fewer than 30 metrics."""

Target = Connection | Session | Engine

_POINT_COLUMNS = ("run_id", "step", *POINT_METRICS)
_RUNS = cast(sa.Table, Run.__table__)
_DIAGNOSTICS = cast(sa.Table, Diagnostic.__table__)

_RUN_FIXED = frozenset(("id", "study_id", "trial_id"))
_RUN_UPDATABLE = frozenset(c.key for c in Run.__table__.columns) - _RUN_FIXED
_STUDY_UPDATABLE = frozenset(c.key for c in Study.__table__.columns) - {"id", "name"}


# ------------------------------------------------------------------------------------------------ studies


def _plain(obj: Any) -> Any:
    """A pydantic model (or anything with ``model_dump``) as JSON data; mappings and lists as they are."""
    dump = getattr(obj, "model_dump", None)
    return dump(mode="json") if dump is not None else obj


def spec_hash(spec: Mapping[str, Any] | Any) -> str:
    """SHA-256 of the spec's canonical JSON (sorted keys, no whitespace): equal specs, equal hashes."""
    canonical = json.dumps(encode_json(_plain(spec)), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _package_version() -> str:
    try:
        return metadata.version("sweeper")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def ensure_study(
    session: Session,
    name: str,
    spec: Mapping[str, Any] | Any,
    *,
    package_version: str | None = None,
    git_commit: str | None = None,
    status: str = "running",
    ray_nodes: int | None = None,
    ray_cpus: float | None = None,
    ray_gpus: float | None = None,
) -> Study:
    """The study called ``name``, created if missing (flushed, not committed).

    ``spec`` is a dict or a pydantic model. An existing study must have the same spec (by :func:`spec_hash`), else
    :class:`~db.errors.StudySpecMismatch`; its Ray fields are updated when given, nothing else changes.
    ``package_version`` defaults to the installed ``sweeper`` version.
    """
    if status not in STUDY_STATUSES:
        raise ValueError(f"study status {status!r} is not one of {', '.join(STUDY_STATUSES)}")
    plain = encode_json(_plain(spec))
    digest = spec_hash(plain)
    study = session.scalar(sa.select(Study).where(Study.name == name))
    ray = {k: v for k, v in (("ray_nodes", ray_nodes), ("ray_cpus", ray_cpus), ("ray_gpus", ray_gpus)) if v is not None}
    if study is not None:
        if study.spec_hash != digest:
            raise StudySpecMismatch(
                f"study {name!r} already exists with a different spec (hash {study.spec_hash[:12]}, this one "
                f"{digest[:12]}); resume it with its original spec or choose another name"
            )
        for key, value in ray.items():
            setattr(study, key, value)
        session.flush()
        return study
    study = Study(
        name=name,
        spec=plain,
        spec_hash=digest,
        package_version=package_version or _package_version(),
        git_commit=git_commit,
        status=status,
        **ray,
    )
    session.add(study)
    session.flush()
    return study


def update_study(session: Session, study_id: int, **fields: Any) -> None:
    """Set columns of a study (e.g. ``status="completed"``, ``ray_gpus=8``); unknown names raise ValueError."""
    unknown = set(fields) - _STUDY_UPDATABLE
    if unknown:
        raise ValueError(
            f"cannot update studies.{', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_STUDY_UPDATABLE))}"
        )
    if "status" in fields and fields["status"] not in STUDY_STATUSES:
        raise ValueError(f"study status {fields['status']!r} is not one of {', '.join(STUDY_STATUSES)}")
    if not fields:
        return
    result = session.execute(sa.update(Study).where(Study.id == study_id).values(**fields))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise UnknownStudy(f"no study with id {study_id}")


def write_heartbeat(target: Target, study_id: int, at: dt.datetime | None = None) -> None:
    """Record that the study's driver is alive: one ``UPDATE studies SET heartbeat_at`` (default: now, UTC).

    Takes an Engine (and commits) or a Connection/Session (the caller commits); an unknown study id updates nothing.
    """
    stmt = sa.update(Study).where(Study.id == study_id).values(heartbeat_at=utcnow() if at is None else at)
    if isinstance(target, Engine):
        with target.begin() as conn:
            conn.execute(stmt)
    else:
        target.execute(stmt)


# --------------------------------------------------------------------------------------------------- runs


class Trial(Protocol):
    """What :func:`ensure_runs` stores of a trial: ``sweeper.expand.TrialConfig`` has it (db imports no sweeper)."""

    @property
    def trial_id(self) -> str: ...  # read-only: TrialConfig is frozen

    @property
    def index(self) -> int: ...

    def hyperparameters(self) -> Mapping[str, Any]:
        """The run's hyperparameter columns: exactly RUN_HPARAMS."""

    def model_dump(self, *, mode: str) -> dict[str, Any]:
        """The whole trial config, as JSON data with ``mode="json"``."""


@dataclass(frozen=True)
class PlainTrial:
    """A :class:`Trial` given by its parts, for scripts and tests that have no ``TrialConfig``."""

    trial_id: str
    index: int
    hparams: Mapping[str, Any]
    config: Mapping[str, Any] = field(default_factory=dict)

    def hyperparameters(self) -> Mapping[str, Any]:
        return self.hparams

    def model_dump(self, *, mode: str) -> dict[str, Any]:
        return dict(self.config)


_RUN_REQUIRED = tuple(c.name for c in Run.__table__.columns if c.info.get("hparam") and not c.nullable)


def run_row(trial: Trial) -> dict[str, Any]:
    """The ``runs`` columns of one trial: ``trial_id``, ``trial_index``, ``trial.hyperparameters()`` and the
    config as JSON; hyperparameters other than RUN_HPARAMS, or a required one missing, raise ValueError."""
    hparams = dict(trial.hyperparameters())
    if hparams.keys() != set(RUN_HPARAMS):
        odd = ", ".join(sorted(hparams.keys() ^ set(RUN_HPARAMS)))
        raise ValueError(f"trial {trial.trial_id}: hyperparameters() must give the runs columns "
                         f"{', '.join(RUN_HPARAMS)} (differs in {odd})")
    missing = [k for k in _RUN_REQUIRED if hparams[k] is None]
    if missing:
        raise ValueError(f"trial {trial.trial_id}: no {', '.join(missing)}")
    return {"trial_id": str(trial.trial_id), "trial_index": int(trial.index), **hparams,
            "config": encode_json(trial.model_dump(mode="json"))}


def ensure_runs(session: Session, study: Study | int, trials: Sequence[Trial]) -> dict[str, int]:
    """Insert a pending run for each trial not yet in the study; return ``{trial_id: run_id}`` for all.

    Calling it again with the same (or more) trials inserts nothing twice; existing runs are not changed.
    """
    study_id = study if isinstance(study, int) else study.id
    rows = [run_row(t) for t in trials]
    ids = [r["trial_id"] for r in rows]
    if len(set(ids)) != len(ids):
        dupes = sorted({t for t in ids if ids.count(t) > 1})
        raise ValueError(f"duplicate trial ids: {', '.join(dupes[:5])}")
    query = sa.select(Run.trial_id, Run.id).where(Run.study_id == study_id)
    existing: dict[str, int] = dict(session.execute(query).all())
    new = [dict(r, study_id=study_id) for r in rows if r["trial_id"] not in existing]
    if new:
        session.execute(sa.insert(_RUNS), new)
        existing = dict(session.execute(query).all())
    return {t: existing[t] for t in ids}


def update_run(session: Session, run_id: int, **fields: Any) -> None:
    """Set columns of a run, e.g. ``status="running", host=..., started_at=...``.

    Writing ``status`` also keeps the run's blocks of points (:mod:`db.blocks`) in the same transaction: a sealed
    status (completed, diverged) makes them one block of all its rows, any other keeps them.

    Values may be SQL expressions (``attempts=Run.attempts + 1``). Unknown column names (and ``id``, ``study_id``,
    ``trial_id``) or an invalid status raise ValueError; a missing run raises :class:`~db.errors.UnknownRun`.
    """
    unknown = set(fields) - _RUN_UPDATABLE
    if unknown:
        raise ValueError(
            f"cannot update runs.{', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_RUN_UPDATABLE))}"
        )
    status = fields.get("status")
    if isinstance(status, str) and status not in RUN_STATUSES:
        raise ValueError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    if "config" in fields:
        fields["config"] = encode_json(_plain(fields["config"]))
    if not fields:
        return
    result = session.execute(sa.update(Run).where(Run.id == run_id).values(**fields))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise UnknownRun(f"no run with id {run_id}")
    if "status" in fields and (status in SEALED_STATUSES or not isinstance(status, str)):  # else nothing to do
        from db import blocks  # here: pyarrow is loaded by the writers, not by every importer of db.writer

        blocks.after_status(session.connection(), run_id)


# ------------------------------------------------------------------------------------ points, diagnostics


def _insert_ignore(dialect: str, table: sa.Table, rows: list[dict[str, Any]], key: list[str]) -> Any:
    """``INSERT ... VALUES (...), ... ON CONFLICT (key) DO NOTHING`` in the dialect's own insert construct."""
    if dialect == "sqlite":
        return sqlite_insert(table).values(rows).on_conflict_do_nothing(index_elements=key)
    if dialect == "postgresql":
        return pg_insert(table).values(rows).on_conflict_do_nothing(index_elements=key)
    raise NotImplementedError(f"no idempotent insert for dialect {dialect!r} (use sqlite or postgresql)")


def _execute_chunks(target: Target, table: sa.Table, rows: list[dict[str, Any]], key: list[str]) -> int:
    """Insert ``rows`` in multi-row ``INSERT ... ON CONFLICT DO NOTHING`` statements; the number inserted."""
    if not rows:
        return 0
    if isinstance(target, Engine):
        with target.begin() as conn:
            return _execute_chunks(conn, table, rows, key)
    conn = target.connection() if isinstance(target, Session) else target
    inserted = 0
    for start in range(0, len(rows), CHUNK_ROWS):
        stmt = _insert_ignore(conn.dialect.name, table, rows[start : start + CHUNK_ROWS], key)
        inserted += conn.execute(stmt, execution_options={"preserve_rowcount": True}).rowcount
    return inserted


def _check_keys(item: Mapping[str, Any], allowed: frozenset[str], required: Iterable[str], what: str) -> None:
    unknown = item.keys() - allowed
    if unknown:
        raise ValueError(f"unknown {what} keys {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
    for k in required:
        if item.get(k) is None:
            raise ValueError(f"a {what} needs {k!r}: {dict(item)!r}")


@functools.lru_cache(maxsize=16)
def _sqlite_points_sql(n_rows: int) -> str:
    """``INSERT INTO points (...) VALUES (?, ...), ... ON CONFLICT (run_id, step) DO NOTHING`` for ``n_rows``.

    Built once per row count: SQLAlchemy compiles a multi-row ``insert().values([...])`` afresh on every call (the
    rows are part of its structure), which costs more than SQLite's own work.
    """
    row = "(" + ", ".join(["?"] * len(_POINT_COLUMNS)) + ")"
    return (
        f"INSERT INTO points ({', '.join(_POINT_COLUMNS)}) VALUES {', '.join([row] * n_rows)} "
        "ON CONFLICT (run_id, step) DO NOTHING"
    )


_PG_POINTS_SQL = (
    f"INSERT INTO points ({', '.join(_POINT_COLUMNS)}) "
    f"SELECT %s::integer, u.* FROM unnest(%s::integer[], {', '.join(['%s::float8[]'] * len(POINT_METRICS))}) AS u "
    "ON CONFLICT (run_id, step) DO NOTHING"
)
"""One multi-row INSERT whose rows come from the run id and one array parameter per column (step and each metric,
17 today), however many rows: psycopg re-parses a query with thousands of placeholders on every call, and dumps long
lists element by element; array literals built here from ``repr`` (exact for floats; ``nan``/``inf`` are valid
float8 input) are ~3× faster."""


def _pg_array(values: Iterable[Any]) -> str:
    return "{" + ",".join(["NULL" if v is None else repr(v) for v in values]) + "}"


def _point_rows(points: Sequence[Mapping[str, Any]], to_float: Any) -> tuple[list[int], list[list[Any]]]:
    """Validated steps and metric rows (floats converted by ``to_float``, None kept)."""
    steps: list[int] = []
    rows: list[list[Any]] = []
    for p in points:
        if not POINT_KEYS.issuperset(p.keys()) or p.get("step") is None:
            _check_keys(p, POINT_KEYS, ("step",), "point")
        steps.append(int(p["step"]))
        rows.append([None if (v := p.get(m)) is None else to_float(v) for m in POINT_METRICS])
    return steps, rows


def write_points(target: Target, run_id: int, points: Sequence[Mapping[str, Any]]) -> int:
    """Insert trajectory points of one run; steps already stored are skipped, not changed.

    Each point is a dict with ``step`` (int) and any of :data:`db.models.POINT_METRICS` (float, NaN/±inf allowed,
    missing or None = not measured); other keys raise ValueError before anything is written. The rows go in one
    multi-row ``INSERT ... ON CONFLICT (run_id, step) DO NOTHING`` (SQLite: ``VALUES`` lists of
    :data:`CHUNK_ROWS` rows; PostgreSQL: ``SELECT ... FROM unnest(arrays)``), then the run's blocks are kept
    (:func:`db.blocks.after_points`: a chunk when enough rows are after them). Returns the number inserted.
    """
    if not points:
        return 0
    if isinstance(target, Engine):
        with target.begin() as conn:
            return write_points(conn, run_id, points)
    conn = target.connection() if isinstance(target, Session) else target
    dialect = conn.dialect.name
    steps, rows = _point_rows(points, float_binder(dialect))
    run_id = int(run_id)
    opts = {"preserve_rowcount": True}
    inserted = 0
    if dialect == "sqlite":
        for start in range(0, len(rows), CHUNK_ROWS):
            params: list[Any] = []
            for step, row in zip(steps[start : start + CHUNK_ROWS], rows[start : start + CHUNK_ROWS], strict=True):
                params.append(run_id)
                params.append(step)
                params.extend(row)
            sql = _sqlite_points_sql(min(CHUNK_ROWS, len(rows) - start))
            inserted += conn.exec_driver_sql(sql, tuple(params), execution_options=opts).rowcount
    elif dialect == "postgresql":
        columns = [_pg_array(c) for c in zip(*rows, strict=True)]
        params_pg = (run_id, _pg_array(steps), *columns)
        inserted += conn.exec_driver_sql(_PG_POINTS_SQL, params_pg, execution_options=opts).rowcount
    else:  # pragma: no cover
        raise NotImplementedError(f"write_points supports sqlite and postgresql, not {dialect}")
    if inserted:
        from db import blocks

        blocks.after_points(conn, run_id, min(steps))
    return inserted


def _npy_bytes(payload: Any) -> bytes | None:
    if payload is None or isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(payload), allow_pickle=False)
    return buf.getvalue()


_SCALARS = (str, int, float, bool, type(None))


def _scalar_summary(summary: Mapping[str, Any] | None, where: str) -> dict[str, Any] | None:
    if summary is None:
        return None
    if not isinstance(summary, Mapping):
        raise ValueError(f"{where}: summary must be a mapping of scalars, not {type(summary).__name__}")
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if isinstance(v, _SCALARS):
            out[str(k)] = v
            continue
        item = getattr(v, "item", None)  # numpy scalar
        if item is None or getattr(v, "ndim", 0) != 0:
            raise ValueError(f"{where}: summary[{k!r}] is not a scalar ({type(v).__name__}); put arrays in payload")
        out[str(k)] = item()
    return out


def write_diagnostics(target: Target, run_id: int, diagnostics: Sequence[Mapping[str, Any]]) -> int:
    """Insert diagnostics of one run; ``(step, kind)`` pairs already stored are skipped, not changed.

    Each is a dict with ``step`` and ``kind`` and optionally ``wall_seconds`` (its cost), ``value`` (the headline
    scalar), ``summary`` (a mapping of scalars) and ``payload`` (bytes, or an array stored as ``.npy`` bytes). Other
    keys raise ValueError. Returns the number inserted.
    """
    rows: list[dict[str, Any]] = []
    for d in diagnostics:
        _check_keys(d, DIAGNOSTIC_KEYS, ("step", "kind"), "diagnostic")
        where = f"diagnostic {d['kind']!r} at step {d['step']}"
        rows.append(
            {
                "run_id": run_id,
                "step": int(d["step"]),
                "kind": str(d["kind"]),
                "wall_seconds": d.get("wall_seconds"),
                "value": d.get("value"),
                "summary": _scalar_summary(d.get("summary"), where),
                "payload": _npy_bytes(d.get("payload")),
            }
        )
    return _execute_chunks(target, _DIAGNOSTICS, rows, ["run_id", "step", "kind"])


# ---------------------------------------------------------------------------------- batches of run writes


@dataclass
class RunWrite:
    """What the driver's DB callback writes for one run at once: new points and diagnostics (as
    :func:`write_points` / :func:`write_diagnostics` take them), plain column values of ``runs`` (``fields``:
    numbers, strings, None, datetimes) and ``attempts_added``, added to ``runs.attempts``. Plain data, so that a
    batch can wait in memory or in a journal file (``db.journal``) while the database is down."""

    run_id: int
    points: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    attempts_added: int = 0

    @property
    def size(self) -> int:
        """Rows it inserts (points + diagnostics): what an outage buffer counts."""
        return len(self.points) + len(self.diagnostics)


def write_run_batch(session: Session, batch: Sequence[RunWrite]) -> None:
    """Apply ``batch`` in order (the caller commits): per run its points, diagnostics, then its fields.

    Points and diagnostics already stored are skipped and fields are set to the same values, so applying a batch
    twice changes nothing but ``attempts`` (added again)."""
    for write in batch:
        if write.points:
            write_points(session, write.run_id, write.points)
        if write.diagnostics:
            write_diagnostics(session, write.run_id, write.diagnostics)
        fields = dict(write.fields)
        if write.attempts_added:
            fields["attempts"] = Run.attempts + write.attempts_added
        update_run(session, write.run_id, **fields)


# ----------------------------------------------------------------------------------------------- verdicts


def add_verdict(
    session: Session,
    study: Study | int,
    check: str,
    verdict: str,
    *,
    statistic: float | None = None,
    parameters: Mapping[str, Any] | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> Verdict:
    """Record the outcome of a check on a study (flushed, not committed)."""
    if verdict not in VERDICT_VALUES:
        raise ValueError(f"verdict {verdict!r} is not one of {', '.join(VERDICT_VALUES)}")
    row = Verdict(
        study_id=study if isinstance(study, int) else study.id,
        check=check,
        verdict=verdict,
        statistic=None if statistic is None else float(statistic),
        parameters=encode_json(dict(parameters or {})),
        evidence=None if evidence is None else encode_json(_plain(evidence)),
    )
    session.add(row)
    session.flush()
    return row


def store_verdict(
    engine: Engine,
    study: str | int | Study,
    check: str,
    verdict: str,
    *,
    statistic: float | None = None,
    parameters: Mapping[str, Any] | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> int:
    """Record the outcome of a check on a study (named by name, id or object) in its own committed transaction;
    earlier verdicts are kept (a history). Returns the new row's id."""
    from db.queries import resolve_study  # here, not at the top: db.queries imports pandas, the write path does not

    with Session(engine) as session, session.begin():
        study_id = resolve_study(session.connection(), study)
        row = add_verdict(session, study_id, check, verdict, statistic=statistic, parameters=parameters,
                          evidence=evidence)
        return row.id
