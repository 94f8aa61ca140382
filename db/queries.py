"""Read the results database into pandas DataFrames: the Python API for notebooks, checks and the CLI.

A study is named by its name (``str``), its id (``int``) or a :class:`~db.models.Study`; an unknown one raises
:class:`~db.errors.UnknownStudy`. Frames are sorted (runs by trial index, points by run and step) and carry the
run's hyperparameters next to the measurements, so a check can ``groupby(["batch_size", "lr"])`` directly.

Float columns are float64, where NULL ("not measured") and NaN (e.g. a diverged loss) both read as NaN; pass
``keep_null=True`` to get pandas ``Float64`` columns instead, where NULL is ``<NA>`` and NaN stays NaN.

Points are read column-wise (:func:`db.columnar.read_points`; :func:`point_columns` reads only the columns asked
for): a run's blocks (:mod:`db.blocks`: a sealed run's one, a running run's chunks; no Python object per value) and
its rows after them, on PostgreSQL over an ADBC connection of their own, which sees committed rows only, not a
caller's open transaction.
The statements of the study list, the runs with their final metrics and a run's lookup are :mod:`db.rows`' (plain
rows without pandas, for the CLI); the functions here put them in DataFrames.

A study's status is read live: a ``running`` study whose heartbeat (``studies.heartbeat_at``) is older than
``HEARTBEAT_GRACE_S``, or missing, lost its driver and reads as ``interrupted`` (:func:`list_studies`,
:func:`study_status`), and so do its ``running`` runs in :func:`runs_with_final`. The stored rows are not changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, joinedload

from db.columnar import read_points, snapshot
from db.models import POINT_METRICS, RUN_HPARAMS, Diagnostic, Run, Study, Verdict
from db.rows import (
    POINT_COLUMNS,
    RENAMED_POINT_COLUMNS,
    Bind,
    StudyRef,
    connect,
    find_run,
    load_npy,
    resolve_study,
    runs_statement,
    studies_statement,
    study_counts,
    study_status,
)
from db.types import PortableFloat

__all__ = [
    "RENAMED_POINT_COLUMNS",
    "StudyFrames",
    "resolve_study",
    "list_studies",
    "study_status",
    "study_spec",
    "study_frames",
    "runs_frame",
    "runs_with_final",
    "POINT_COLUMNS",
    "point_columns",
    "points_frame",
    "diagnostics_frame",
    "verdicts_frame",
    "get_run",
]

def _frame(conn: Connection, stmt: sa.Select[Any], keep_null: bool) -> pd.DataFrame:
    result = conn.execute(stmt)
    columns = list(result.keys())
    rows = result.all()
    df = pd.DataFrame.from_records(rows, columns=columns, coerce_float=False)
    float_cols = [c.name for c in stmt.selected_columns if isinstance(c.type, PortableFloat)]
    for name in float_cols:
        if keep_null:
            i = columns.index(name)
            values = [row[i] for row in rows]
            mask = np.array([v is None for v in values], dtype=bool)
            data = np.array([0.0 if v is None else v for v in values], dtype=float)
            df[name] = pd.arrays.FloatingArray(data, mask)
        else:
            df[name] = df[name].astype(float)
    return df


def list_studies(bind: Bind, *, now: dt.datetime | None = None) -> pd.DataFrame:
    """One row per study (oldest first): its columns except the spec, ``n_runs`` and ``n_<status>`` counts.

    ``status`` is read live (:func:`study_status`): ``interrupted`` for a running study whose driver died.
    """
    with connect(bind) as conn:
        studies = _frame(conn, studies_statement(now), keep_null=False)
        return studies.assign(**study_counts(conn, studies["id"].tolist()))


def runs_frame(
    bind: Bind, study: StudyRef, *, status: str | Sequence[str] | None = None, keep_null: bool = False
) -> pd.DataFrame:
    """The runs of a study, every column of ``runs`` (``id`` as ``run_id``; ``config`` as dicts), by trial index."""
    with connect(bind) as conn:
        study_id = resolve_study(conn, study)
        cols = [c.label("run_id") if c.name == "id" else c for c in Run.__table__.columns]
        stmt = sa.select(*cols).where(Run.study_id == study_id).order_by(Run.trial_index, Run.id)
        if status is not None:
            stmt = stmt.where(Run.status.in_([status] if isinstance(status, str) else list(status)))
        return _frame(conn, stmt, keep_null)


def runs_with_final(bind: Bind, study: StudyRef, *, where: str | None = None, keep_null: bool = False,
                    now: dt.datetime | None = None) -> pd.DataFrame:
    """:func:`runs_frame` plus ``final_<metric>`` for each point column: its value at the run's last step where
    it was measured (NULL if never).

    When the study reads as interrupted (:func:`study_status`), its ``running`` runs read as ``interrupted`` (in
    ``status`` and in ``where``): nothing is running them any more.

    ``where`` is a filter in the ``--where`` language of :mod:`db.where` over the run columns (``run_id`` for the
    id) and the ``final_<metric>`` columns, e.g. ``"status = 'completed' and final_test_acc > 0.9"``; it is parsed
    into SQLAlchemy expressions (never pasted into SQL) and raises :class:`db.where.WhereError` when invalid.
    """
    with connect(bind) as conn:
        df = _frame(conn, runs_statement(conn, study, where=where, now=now), keep_null)
    if keep_null:
        return df
    # typed PortableFloat through the subquery; make the dtype explicit when all are NULL
    return df.astype({f"final_{m}": float for m in POINT_METRICS})


def _run_columns() -> list[Any]:
    return [Run.id.label("run_id"), Run.trial_id, Run.status, *(getattr(Run, k) for k in RUN_HPARAMS)]


def ids_in(column: Any, ids: Iterable[int]) -> sa.ColumnElement[bool]:
    """``column IN (…)`` with the ids (integers) written into the statement: a bound parameter each would exceed the
    driver's limit for a large study (psycopg: 65,535 per statement; SQLite builds before 3.32: 999)."""
    return cast(sa.ColumnElement[bool], column.in_(
        sa.bindparam(None, [int(i) for i in ids], expanding=True, literal_execute=True)))


def _point_columns(conn: Connection, study_id: int, columns: Sequence[str], run_ids: Sequence[int] | None,
                   keep_null: bool) -> pd.DataFrame:
    unknown = [c for c in columns if c not in POINT_COLUMNS]
    if unknown:
        raise ValueError(f"unknown point columns {unknown}; known: {', '.join(POINT_COLUMNS)}")
    runs = sa.select(Run.id).where(Run.study_id == study_id)
    if run_ids is not None:
        runs = runs.where(ids_in(Run.id, run_ids))
    stored = {c: POINT_COLUMNS[c] for c in columns}
    values, nulls = read_points(conn, runs, list(stored.values()))
    return pd.DataFrame({"run_id": values["run_id"], "step": values["step"]} | {  # the arrays are ours: no copy
        c: pd.arrays.FloatingArray(values[m], nulls[m]) if keep_null else values[m] for c, m in stored.items()},
        copy=False)


def point_columns(bind: Bind, study: StudyRef, columns: Sequence[str], run_ids: Sequence[int] | None = None, *,
                  keep_null: bool = False) -> pd.DataFrame:
    """``run_id``, ``step`` and the given point ``columns`` (named as in :func:`points_frame`: ``lr_t``,
    ``weight_decay_t``) of a study's runs, by run and step: what a check reads, fetched column-wise
    (:mod:`db.columnar`)."""
    with connect(bind) as conn:
        return _point_columns(conn, resolve_study(conn, study), list(columns), run_ids, keep_null)


def points_frame(
    bind: Bind,
    study: StudyRef,
    run_ids: Sequence[int] | None = None,
    *,
    metrics: Sequence[str] | None = None,
    keep_null: bool = False,
) -> pd.DataFrame:
    """Trajectory points of a study's runs joined with each run's ``trial_id``, ``status`` and hyperparameters.

    Columns: ``run_id, trial_id, status, <RUN_HPARAMS>, step, <metrics>`` where the point columns ``lr`` and
    ``weight_decay`` (the scheduled values at that step) are named ``lr_t`` and ``weight_decay_t``; ``lr`` and
    ``weight_decay`` are the run's base values. ``metrics`` picks point columns (default: all of POINT_METRICS).
    """
    chosen = list(POINT_METRICS if metrics is None else metrics)
    unknown = set(chosen) - set(POINT_METRICS)
    if unknown:
        raise ValueError(f"unknown point columns {sorted(unknown)}; known: {', '.join(POINT_METRICS)}")
    with connect(bind) as conn, snapshot(conn):
        study_id = resolve_study(conn, study)
        runs_stmt = sa.select(*_run_columns()).where(Run.study_id == study_id).order_by(Run.id)
        if run_ids is not None:
            runs_stmt = runs_stmt.where(ids_in(Run.id, run_ids))
        runs = _frame(conn, runs_stmt, keep_null)
        points = _point_columns(conn, study_id, [RENAMED_POINT_COLUMNS.get(m, m) for m in chosen],
                                runs["run_id"].tolist(), keep_null)  # the runs read (PostgreSQL: another read)
    at = np.searchsorted(runs["run_id"].to_numpy(), points["run_id"].to_numpy())
    return pd.concat([runs.take(at).reset_index(drop=True), points.drop(columns="run_id")], axis=1)


def diagnostics_frame(
    bind: Bind,
    study: StudyRef,
    kind: str | Sequence[str] | None = None,
    run_ids: Sequence[int] | None = None,
    *,
    expand_summary: bool = True,
    decode_payload: bool = False,
    keep_null: bool = False,
) -> pd.DataFrame:
    """Diagnostics of a study's runs (optionally of some kinds / runs), joined with the runs' hyperparameters.

    Columns: ``run_id, trial_id, status, <RUN_HPARAMS>, step, kind, wall_seconds, value, summary, payload``. With
    ``expand_summary`` the summary dicts become columns ``summary.<key>`` (missing keys NaN) instead of ``summary``;
    with ``decode_payload`` the ``.npy`` payloads become numpy arrays.
    """
    with connect(bind) as conn:
        study_id = resolve_study(conn, study)
        stmt = (
            sa.select(
                *_run_columns(),
                Diagnostic.step,
                Diagnostic.kind,
                Diagnostic.wall_seconds,
                Diagnostic.value,
                Diagnostic.summary,
                Diagnostic.payload,
            )
            .join(Run, Run.id == Diagnostic.run_id)
            .where(Run.study_id == study_id)
            .order_by(Diagnostic.run_id, Diagnostic.kind, Diagnostic.step)
        )
        if kind is not None:
            stmt = stmt.where(Diagnostic.kind.in_([kind] if isinstance(kind, str) else list(kind)))
        if run_ids is not None:
            stmt = stmt.where(ids_in(Diagnostic.run_id, run_ids))
        df = _frame(conn, stmt, keep_null)
    if decode_payload:
        df["payload"] = [load_npy(p) for p in df["payload"]]
    if expand_summary:
        summaries = pd.DataFrame.from_records([s or {} for s in df["summary"]], index=df.index)
        summaries.columns = [f"summary.{c}" for c in summaries.columns]
        df = pd.concat([df.drop(columns="summary"), summaries], axis=1)
    return df


def study_spec(bind: Bind, study: StudyRef) -> dict[str, Any]:
    """The study's spec as stored at launch (the parsed study file, a dict)."""
    with connect(bind) as conn:
        study_id = resolve_study(conn, study)
        return conn.execute(sa.select(Study.spec).where(Study.id == study_id)).scalar_one()


class StudyFrames(NamedTuple):
    """What the checks read of a study (:class:`sweeper.checks.base.StudyData` names the columns)."""

    spec: dict[str, Any]
    runs: pd.DataFrame
    points: pd.DataFrame
    diagnostics: pd.DataFrame


def study_frames(bind: Bind, study: StudyRef) -> StudyFrames:
    """The study's spec, :func:`runs_frame`, :func:`points_frame` and :func:`diagnostics_frame` (payloads decoded
    to arrays), read over one connection."""
    with connect(bind) as conn:
        study_id = resolve_study(conn, study)
        return StudyFrames(study_spec(conn, study_id), runs_frame(conn, study_id), points_frame(conn, study_id),
                           diagnostics_frame(conn, study_id, decode_payload=True))


def verdicts_frame(bind: Bind, study: StudyRef, check: str | None = None) -> pd.DataFrame:
    """The verdicts recorded for a study (optionally of one check), oldest first."""
    with connect(bind) as conn:
        study_id = resolve_study(conn, study)
        stmt = sa.select(*Verdict.__table__.columns).where(Verdict.study_id == study_id).order_by(Verdict.id)
        if check is not None:
            stmt = stmt.where(Verdict.check == check)
        return _frame(conn, stmt, keep_null=False)


def get_run(bind: Bind, run: int | str, study: StudyRef | None = None) -> Run:
    """One run by id (``int``) or trial id (``str``, unique within a study: give ``study`` when it repeats).

    Returns a detached :class:`~db.models.Run` with ``run.study`` loaded (``run.as_dict()`` for plain values).
    Raises :class:`~db.errors.UnknownRun` or :class:`~db.errors.AmbiguousRun`.
    """
    with connect(bind) as conn, Session(bind=conn, expire_on_commit=False) as session:
        found = session.get_one(Run, find_run(conn, run, study)["id"], options=[joinedload(Run.study)])
        session.expunge_all()
        return found
