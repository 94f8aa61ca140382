"""What the dashboard lists: studies with live status, counts, progress and last write; a study's runs table; a
run. Status follows ``db.queries`` (a running study with a stale heartbeat reads as interrupted, as in
``sweeper studies``); the runs table is ``runs_with_final`` (so ``where`` is the CLI's ``--where`` language)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from db.models import Point, Run, Study, Verdict
from db.queries import ids_in, list_studies, runs_with_final, study_spec
from sweeper.serve.params import BadRequest

FINISHED = ("completed", "failed", "diverged")
"""Run statuses that end a run (progress counts them)."""


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain dicts: NaN/NaT → None, timestamps ISO 8601, numpy scalars as Python values."""
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({k: plain(v) for k, v in row.items()})
    return out


def plain(value: Any) -> Any:
    """One value as JSON data (non-finite floats are left for the JSON encoder to write as null)."""
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return None if pd.isna(value) else value.isoformat()
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _last_writes(conn: Connection) -> dict[int, dt.datetime | None]:
    """Per study: the latest of its creation, heartbeat, run starts and ends, and verdicts."""
    runs = dict(conn.execute(sa.select(Run.study_id, sa.func.max(sa.func.coalesce(Run.finished_at, Run.started_at)))
                             .group_by(Run.study_id)).all())
    verdicts = dict(conn.execute(sa.select(Verdict.study_id, sa.func.max(Verdict.created_at))
                                 .group_by(Verdict.study_id)).all())
    out: dict[int, dt.datetime | None] = {}
    for sid, created, beat in conn.execute(sa.select(Study.id, Study.created_at, Study.heartbeat_at)).all():
        times = [t for t in (created, beat, runs.get(sid), verdicts.get(sid)) if t is not None]
        out[sid] = max(_aware(t) for t in times) if times else None
    return out


def _aware(t: dt.datetime | str) -> dt.datetime:
    """A timestamp from an aggregate (SQLite returns text, naive UTC) as an aware UTC datetime."""
    value = dt.datetime.fromisoformat(t) if isinstance(t, str) else t
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _point_counts(conn: Connection, study_id: int | None = None) -> dict[int, int]:
    """Points stored per study (one study when ``study_id`` is given)."""
    stmt = sa.select(Run.study_id, sa.func.count()).select_from(Point).join(Run, Run.id == Point.run_id)
    if study_id is not None:
        stmt = stmt.where(Run.study_id == study_id)
    return dict(conn.execute(stmt.group_by(Run.study_id)).all())


def run_point_counts(engine: Engine, study_id: int, run_ids: list[int] | None = None) -> dict[int, int]:
    """Points stored per run of the study (only ``run_ids`` when given; runs without points are left out)."""
    runs = sa.select(Run.id).where(Run.study_id == study_id)
    if run_ids is not None:
        runs = runs.where(ids_in(Run.id, run_ids))
    stmt = sa.select(Point.run_id, sa.func.count()).where(Point.run_id.in_(runs)).group_by(Point.run_id)
    with engine.connect() as conn:
        return {int(r): int(n) for r, n in conn.execute(stmt).all()}


def studies(engine: Engine, study_id: int | None = None, n_points: int | None = None) -> list[dict[str, Any]]:
    """Every study (or one): ``list_studies``' columns plus ``progress`` (finished runs / runs), ``n_points`` (for
    one study: counted unless given) and ``last_write``."""
    with engine.connect() as conn:
        frame = list_studies(conn)
        if study_id is not None:
            frame = frame[frame.id == study_id]
        counts = _point_counts(conn, study_id) if n_points is None else {study_id: n_points}
        last = _last_writes(conn)
    rows = records(frame)
    for row in rows:
        done = sum(row[f"n_{s}"] for s in FINISHED)
        row["progress"] = done / row["n_runs"] if row["n_runs"] else 0.0
        row["n_points"] = int(counts.get(row["id"], 0))
        row["last_write"] = plain(last.get(row["id"]))
    return rows


def study(engine: Engine, study_id: int, version: str, n_points: int) -> dict[str, Any]:
    """One study's row of :func:`studies` (``n_points`` as given) with its ``spec`` and ``version``, a text that
    changes whenever anything drawn changes (``cache.stamp``; pages poll it and reload their data only then)."""
    row = studies(engine, study_id, n_points)[0]
    row["version"] = version
    row["spec"] = study_spec(engine, study_id)
    return row


def last_step() -> sa.ScalarSelect[int]:
    """A run's last stored step, as a subquery correlated to ``runs`` (an index seek per run, not a scan)."""
    return sa.select(sa.func.max(Point.step)).where(Point.run_id == Run.id).correlate(Run).scalar_subquery()


def _last_steps(conn: Connection, run_ids: list[int]) -> dict[int, int]:
    """Each run's last stored step."""
    rows = conn.execute(sa.select(Run.id, last_step()).where(ids_in(Run.id, run_ids))).all()
    return {r: s for r, s in rows if s is not None}


def runs_table(engine: Engine, study: int | str, where: str | None = None) -> pd.DataFrame:
    """The study's runs (``runs_with_final`` filtered by ``where``, without ``config``) with ``last_step``."""
    with engine.connect() as conn:
        frame = runs_with_final(conn, study, where=where).drop(columns=["config"])
        steps = _last_steps(conn, [int(r) for r in frame.run_id])
    frame.insert(frame.columns.get_loc("steps_done") + 1, "last_step",
                 pd.array([steps.get(int(r)) for r in frame.run_id], dtype="Int64"))
    return frame


def sort_runs(frame: pd.DataFrame, sort: str | None = None, descending: bool = False) -> pd.DataFrame:
    """The runs table sorted by the column ``sort`` (None: as it is; BadRequest names the valid ones)."""
    if not sort:
        return frame
    if sort not in frame.columns:
        raise BadRequest(f"sort: unknown column {sort!r}; valid: {', '.join(frame.columns)}")
    return frame.sort_values(sort, ascending=not descending, kind="stable", na_position="last")


def run(engine: Engine, run_id: int) -> dict[str, Any]:
    """One run: every column (status read live), its final metrics, ``last_step``, study name and spec."""
    from db.queries import get_run

    found = get_run(engine, run_id)
    with engine.connect() as conn:
        row = records(runs_with_final(conn, found.study_id, where=f"run_id = {int(run_id)}"))[0]
        row["last_step"] = _last_steps(conn, [int(run_id)]).get(int(run_id))
        row["n_points"] = conn.scalar(sa.select(sa.func.count()).where(Point.run_id == int(run_id)))
    row["study"] = found.study.name
    return row
