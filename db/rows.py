"""Read the results database as plain rows, without pandas or numpy: what ``sweeper studies``, ``runs`` and ``show``
print, so that they start quickly (issue 11). :mod:`db.queries` builds its DataFrames from the same statements.

A study is named by its name (``str``), its id (``int``) or a :class:`~db.models.Study`; an unknown one raises
:class:`~db.errors.UnknownStudy`. A row is a dict, in column order, of the values the column types read: floats
(NULL is None, NaN and ±inf are floats), aware UTC datetimes, JSON columns as dicts, payloads as ``.npy`` bytes.
Statements are SQLAlchemy Core over the models' tables (no ORM compilation).

A study's status is read live: a ``running`` study whose heartbeat (``studies.heartbeat_at``) is older than
``HEARTBEAT_GRACE_S``, or missing, lost its driver and reads as ``interrupted`` (:func:`list_studies`,
:func:`study_status`), and so do its ``running`` runs in :func:`runs_with_final`. The stored rows are not changed.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from db.errors import AmbiguousRun, UnknownRun, UnknownStudy
from db.models import HEARTBEAT_GRACE_S, POINT_METRICS, RUN_STATUSES, Diagnostic, Point, PointBlock, Run, Study
from db.types import PortableFloat, utcnow

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "POINT_COLUMNS",
    "RENAMED_POINT_COLUMNS",
    "RUNS_COLUMNS",
    "connect",
    "find_run",
    "list_studies",
    "load_npy",
    "resolve_study",
    "run_diagnostics",
    "run_points",
    "runs_statement",
    "runs_with_final",
    "studies_statement",
    "study_counts",
    "study_status",
]

Bind = Engine | Connection
StudyRef = str | int | Study
Row = dict[str, Any]

RENAMED_POINT_COLUMNS = {"lr": "lr_t", "weight_decay": "weight_decay_t"}
"""Point columns renamed when read beside a run's hyperparameters: the scheduled value at the step, beside the run's
base value."""
POINT_COLUMNS = {RENAMED_POINT_COLUMNS.get(m, m): m for m in POINT_METRICS}
"""The point columns as they are read (``lr_t``, ``weight_decay_t``) → their ``points`` table column."""

_studies, _runs, _points, _blocks, _diagnostics = (model.__table__.c for model in (Study, Run, Point, PointBlock,
                                                                                  Diagnostic))
_FINALS = {f"final_{m}": m for m in POINT_METRICS}

RUNS_COLUMNS: tuple[str, ...] = (*("run_id" if c.name == "id" else c.name for c in Run.__table__.columns), *_FINALS)
"""The columns of :func:`runs_statement` (and of :func:`runs_with_final`'s rows), in order."""


@contextmanager
def connect(bind: Bind) -> Iterator[Connection]:
    """``bind`` itself when it is a Connection, else a new connection of the Engine (closed on exit)."""
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


def resolve_study(bind: Bind, study: StudyRef) -> int:
    """The id of a study given by name, id or object; :class:`~db.errors.UnknownStudy` if there is none."""
    if isinstance(study, Study):
        return study.id
    with connect(bind) as conn:
        if isinstance(study, int):
            found = conn.scalar(sa.select(_studies.id).where(_studies.id == study))
            if found is None:
                raise UnknownStudy(f"no study with id {study}")
            return found
        found = conn.scalar(sa.select(_studies.id).where(_studies.name == study))
        if found is None:
            names = conn.scalars(sa.select(_studies.name).order_by(_studies.id.desc()).limit(10)).all()
            known = f"; known studies: {', '.join(names)}" if names else "; the database has no studies yet"
            raise UnknownStudy(f"no study named {study!r}{known}")
        return found


def _live_status(now: dt.datetime | None = None) -> Any:
    """``studies.status`` as read at ``now`` (default: the current time): ``interrupted`` for a ``running`` study
    whose heartbeat is missing or older than HEARTBEAT_GRACE_S."""
    cutoff = (utcnow() if now is None else now) - dt.timedelta(seconds=HEARTBEAT_GRACE_S)
    stale = sa.or_(_studies.heartbeat_at.is_(None), _studies.heartbeat_at < cutoff)
    return sa.case((sa.and_(_studies.status == "running", stale), "interrupted"), else_=_studies.status)


def study_status(bind: Bind, study: StudyRef, *, now: dt.datetime | None = None) -> str:
    """The study's status as read now: the stored one, but ``interrupted`` when it is ``running`` with a stale or
    missing heartbeat (its driver died)."""
    with connect(bind) as conn:
        study_id = resolve_study(conn, study)
        return conn.execute(sa.select(_live_status(now)).where(_studies.id == study_id)).scalar_one()


def studies_statement(now: dt.datetime | None = None) -> sa.Select[Any]:
    """Every study's columns except the spec, oldest first, ``status`` read live at ``now``."""
    return sa.select(*(_live_status(now).label("status") if c.name == "status" else c
                       for c in Study.__table__.columns if c.name != "spec")).order_by(_studies.id)


def study_counts(conn: Connection, study_ids: list[int]) -> dict[str, list[int]]:
    """``n_runs`` and ``n_<status>`` (each of RUN_STATUSES) of the given studies, as columns in their order."""
    counts = conn.execute(sa.select(_runs.study_id, _runs.status, sa.func.count())
                          .group_by(_runs.study_id, _runs.status)).all()
    table = {(sid, status): n for sid, status, n in counts}
    columns = {"n_runs": [sum(n for (sid, _), n in table.items() if sid == i) for i in study_ids]}
    return columns | {f"n_{status}": [table.get((i, status), 0) for i in study_ids] for status in RUN_STATUSES}


def list_studies(bind: Bind, *, now: dt.datetime | None = None) -> list[Row]:
    """One row per study (oldest first): its columns except the spec, ``n_runs`` and ``n_<status>`` counts."""
    with connect(bind) as conn:
        studies = [dict(row) for row in conn.execute(studies_statement(now)).mappings()]
        counts = study_counts(conn, [s["id"] for s in studies])
    return [study | {name: values[i] for name, values in counts.items()} for i, study in enumerate(studies)]


def _blocked(study_id: int) -> sa.Subquery:
    """Per run of the study that has point blocks: ``last_step`` (their last) and, per metric, a positive value
    when some block measured it (:attr:`~db.models.PointBlock.measured`)."""
    bits = [sa.func.max(_blocks.measured.op("&")(1 << i)).label(m) for i, m in enumerate(POINT_METRICS)]
    return (sa.select(_blocks.run_id, sa.func.max(_blocks.last_step).label("last_step"), *bits)
            .where(_blocks.run_id.in_(sa.select(_runs.id).where(_runs.study_id == study_id)))
            .group_by(_blocks.run_id).subquery("blocked"))


def _final_metric(metric: str, blocked: sa.Subquery) -> sa.Case[Any]:
    """The run's last measured (non-NULL) value of a point column: a correlated scalar subquery walking the run's
    points back from its last step, over the rows after its blocks only when no block measured the metric (its
    blocks hold its rows up to their last step, :mod:`db.blocks`); a metric never measured costs no walk of the
    whole trajectory."""
    column = _points[metric]

    def last(*where: Any) -> sa.ScalarSelect[Any]:
        return (sa.select(column).where(_points.run_id == _runs.id, column.is_not(None), *where)
                .order_by(_points.step.desc()).limit(1).correlate(Run.__table__, blocked).scalar_subquery())

    anywhere = sa.or_(blocked.c.last_step.is_(None), blocked.c[metric] > 0)
    return sa.case((anywhere, last()), else_=last(_points.step > blocked.c.last_step))


def _filterable(expr: Any) -> Any:
    """A column as the ``--where`` parser should see it: portable floats typed as plain doubles."""
    return sa.type_coerce(expr, sa.Double()) if isinstance(expr.type, PortableFloat) else expr


def runs_statement(conn: Connection, study: StudyRef, *, where: str | None = None,
                   now: dt.datetime | None = None) -> sa.Select[Any]:
    """A study's runs by trial index: every column of ``runs`` (``id`` as ``run_id``), then ``final_<metric>`` for
    each point column (its value at the run's last step where it was measured, NULL if never).

    When the study reads as interrupted (:func:`study_status`), its ``running`` runs read as ``interrupted`` (in
    ``status`` and in ``where``). ``where`` is a filter in the ``--where`` language of :mod:`db.where` over the run
    columns and the ``final_<metric>`` columns, parsed into SQLAlchemy expressions (never pasted into SQL); it
    raises :class:`db.where.WhereError` when invalid.
    """
    study_id = resolve_study(conn, study)
    blocked = _blocked(study_id)
    finals = {name: _final_metric(m, blocked) for name, m in _FINALS.items()}
    status: Any = _runs.status
    if study_status(conn, study_id, now=now) == "interrupted":
        status = sa.case((_runs.status == "running", "interrupted"), else_=_runs.status)
    run_cols = [c.label("run_id") if c.name == "id" else status.label("status") if c.name == "status" else c
                for c in Run.__table__.columns]
    stmt = (sa.select(*run_cols, *(q.label(name) for name, q in finals.items()))
            .select_from(Run.__table__.outerjoin(blocked, blocked.c.run_id == _runs.id))
            .where(_runs.study_id == study_id)
            .order_by(_runs.trial_index, _runs.id))
    if where is not None and where.strip():
        from db.where import parse_where

        names: dict[str, Any] = {c.name: _filterable(c) for c in Run.__table__.columns if c.name != "id"}
        names["run_id"], names["status"] = _runs.id, status
        names.update({name: sa.type_coerce(q, sa.Double()) for name, q in finals.items()})
        stmt = stmt.where(parse_where(where, names))
    return stmt


def runs_with_final(bind: Bind, study: StudyRef, *, where: str | None = None,
                    now: dt.datetime | None = None) -> list[Row]:
    """The rows of :func:`runs_statement`: a study's runs with their ``final_<metric>`` values, optionally filtered
    by ``where``."""
    with connect(bind) as conn:
        return [dict(row) for row in conn.execute(runs_statement(conn, study, where=where, now=now)).mappings()]


def find_run(bind: Bind, run: int | str, study: StudyRef | None = None) -> Row:
    """One run's columns by id (``int``) or trial id (``str``, unique within a study: give ``study`` when it
    repeats); with ``study``, only a run of that study. Raises :class:`~db.errors.UnknownRun` or
    :class:`~db.errors.AmbiguousRun`."""
    with connect(bind) as conn:
        stmt = sa.select(Run.__table__).where(_runs.id == run if isinstance(run, int) else _runs.trial_id == run)
        if study is not None:  # a run id in another study is not found either
            stmt = stmt.where(_runs.study_id == resolve_study(conn, study))
        what = (f"id {run}" if isinstance(run, int) else f"trial id {run!r}") + (
            f" in study {study!r}" if study is not None else "")
        found = [dict(row) for row in conn.execute(stmt).mappings()]
        if not found:
            raise UnknownRun(f"no run with {what}")
        if len(found) > 1:
            names = conn.scalars(sa.select(_studies.name).where(_studies.id.in_([r["study_id"] for r in found])))
            raise AmbiguousRun(f"trial id {run!r} is in several studies ({', '.join(sorted(names))}); name the study")
    return found[0]


def run_points(bind: Bind, run_id: int) -> list[Row]:
    """One run's trajectory by step: ``step`` and every point column, named as in :data:`POINT_COLUMNS`."""
    stmt = (sa.select(_points.step, *(_points[column].label(name) for name, column in POINT_COLUMNS.items()))
            .where(_points.run_id == run_id).order_by(_points.step))
    with connect(bind) as conn:
        return [dict(row) for row in conn.execute(stmt).mappings()]


def run_diagnostics(bind: Bind, run_id: int) -> list[Row]:
    """One run's diagnostics by kind, then step: ``step, kind, wall_seconds, value, summary, payload`` (``.npy``
    bytes or None; :func:`load_npy` decodes them)."""
    stmt = sa.select(_diagnostics.step, _diagnostics.kind, _diagnostics.wall_seconds, _diagnostics.value,
                     _diagnostics.summary, _diagnostics.payload).where(_diagnostics.run_id == run_id)
    with connect(bind) as conn:
        rows = [dict(row) for row in conn.execute(stmt).mappings()]
    return sorted(rows, key=lambda row: (row["kind"], row["step"]))  # Python's order, whatever the SQL collation


def load_npy(payload: bytes | None) -> np.ndarray | None:
    """A diagnostic payload (``.npy`` bytes) as a numpy array (numpy is imported here, on first use)."""
    import numpy as np

    return None if payload is None else np.load(io.BytesIO(payload), allow_pickle=False)
