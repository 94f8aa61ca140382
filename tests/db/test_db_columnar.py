"""Column-wise reads (db.columnar): the same values as a row-wise read, NaN apart from NULL, on both engines."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db import columnar, queries, writer
from db.columnar import read_columns
from db.connection import sqlite_path
from db.engine import open_db
from db.models import Base, Point, Run
from tests.db.conftest import trial_config

NAN, INF = math.nan, math.inf


def _points(n: int) -> list[dict]:
    """Points whose train_loss is NaN at steps 3 and 1500 (past the first 1024 rows) and NULL where step % 7 == 0."""
    out = []
    for s in range(n):
        p = {"step": s, "sde_time": 0.1 * s, "test_loss": 1.0 / (s + 1), "grad_norm": INF if s == 5 else -s}
        if s % 7:
            p["train_loss"] = NAN if s in (3, 1500) else float(s)
        out.append(p)
    return out


def test_columns_match_rows_with_nan_null_inf(engine: Engine, study: dict) -> None:
    ids = study["runs"]
    with engine.begin() as conn:
        writer.write_points(conn, ids["trial-002"], _points(2000))
        writer.write_points(conn, ids["trial-000"], _points(3))
    stmt = (sa.select(Point.run_id, Point.step, Point.train_loss, Point.grad_norm, Point.test_acc)
            .order_by(Point.run_id, Point.step))
    with engine.connect() as conn:
        values, nulls = read_columns(conn, stmt, key=("run_id", "step"))
        rows = conn.execute(stmt).all()
    assert values["run_id"].dtype == np.int64 and values["train_loss"].dtype == np.float64
    assert values["run_id"].tolist() == [r.run_id for r in rows] and values["step"].tolist() == [r.step for r in rows]
    for name in ("train_loss", "grad_norm", "test_acc"):
        expected = [getattr(r, name) for r in rows]
        assert nulls[name].tolist() == [v is None for v in expected], name
        got = values[name]
        assert all((v is None and math.isnan(g)) or (math.isnan(v) and math.isnan(g)) or v == g
                   for v, g in zip(expected, got, strict=True)), name
    nan_at = np.flatnonzero(np.isnan(values["train_loss"]) & ~nulls["train_loss"])
    found = [(values["run_id"][i], values["step"][i]) for i in nan_at]
    assert found == [(ids["trial-002"], 3), (ids["trial-002"], 1500)]
    assert nulls["test_acc"].all()


def test_point_columns_reads_only_what_is_asked(engine: Engine, study: dict) -> None:
    ids = study["runs"]
    with engine.begin() as conn:
        writer.write_points(conn, ids["trial-001"], _points(10))
    cols = queries.point_columns(engine, "demo", ["test_loss", "lr_t"])
    assert cols.columns.tolist() == ["run_id", "step", "test_loss", "lr_t"]
    assert cols["test_loss"].tolist() == [1.0 / (s + 1) for s in range(10)] and cols["lr_t"].isna().all()
    full = queries.points_frame(engine, "demo", keep_null=True)
    assert full["train_loss"].isna().sum() == 2  # steps 0 and 7: NULL; step 3 is NaN, a value
    assert queries.point_columns(engine, "demo", ["test_loss"], run_ids=[ids["trial-000"]]).empty
    with pytest.raises(ValueError, match="unknown point columns"):
        queries.point_columns(engine, "demo", ["loss"])


def test_sqlite_writes_after_a_read_reach_the_file(sqlite_url: str) -> None:
    """The read uses this process's own SQLite connection: what is written next is in the file (a second SQLite
    library in the process would delete the -wal that the pool's connection still writes to)."""
    engine = open_db(sqlite_url, create=True)
    with Session(engine) as session, session.begin():
        study = writer.ensure_study(session, "s", {"name": "s"})
        run_id = writer.ensure_runs(session, study, [trial_config(0)])["trial-000"]
    writer.write_points(engine, run_id, _points(5))
    assert len(queries.point_columns(engine, "s", ["test_loss"])) == 5
    writer.write_points(engine, run_id, [{"step": 99, "test_loss": 1.0}])
    with sqlite3.connect(sqlite_path(sa.engine.make_url(sqlite_url))) as fresh:  # what another process sees
        assert fresh.execute("SELECT count(*) FROM points").fetchone()[0] == 6
    engine.dispose()


def test_in_memory_sqlite() -> None:
    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO studies (id, name, spec, spec_hash, package_version, status, created_at) "
                             "VALUES (1, 's', '{}', 'x', '0', 'running', '2026-01-01')"))
        conn.execute(sa.insert(Run), [{"id": 1, "study_id": 1, "trial_id": "t", "trial_index": 0, "status": "pending",
                                       "optimizer": "sgd", "model": "linear", "dataset": "linreg", "batch_size": 8,
                                       "lr": 0.1, "weight_decay": 0.0, "svag_l": 1.0, "seed": 0, "config": {}}])
        writer.write_points(conn, 1, [{"step": 0, "test_loss": NAN}, {"step": 1, "test_loss": 2.0}, {"step": 2}])
    with engine.connect() as conn:
        frame = queries.point_columns(conn, 1, ["test_loss"], keep_null=True)
    assert frame["test_loss"].isna().tolist() == [False, False, True]
    assert math.isnan(frame["test_loss"].to_numpy(dtype=float, na_value=0.0)[0]) and frame["test_loss"][1] == 2.0


def test_chunked_sqlite_read_is_the_same(engine: Engine, study: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    with engine.begin() as conn:
        writer.write_points(conn, study["runs"]["trial-001"], _points(50))
    whole = queries.point_columns(engine, "demo", ["train_loss", "grad_norm"], keep_null=True)
    monkeypatch.setattr(columnar, "_CHUNK_ROWS", 7)
    pd.testing.assert_frame_equal(queries.point_columns(engine, "demo", ["train_loss", "grad_norm"], keep_null=True),
                                  whole)


def test_sqlite_nans_written_between_the_two_scans_are_not_put_on_other_rows(sqlite_url: str,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A study read while its driver writes: a NaN point committed after the value scan and before the scan that
    finds the text 'NaN' is not in the result; it must not flip the NULL mask of the row where it would sort, nor
    fall past the last row."""
    engine = open_db(sqlite_url, create=True)
    with Session(engine) as session, session.begin():
        study = writer.ensure_study(session, "live", {"name": "live"})
        r0, r1, r2 = writer.ensure_runs(session, study, [trial_config(i) for i in range(3)]).values()
    writer.write_points(engine, r0, [{"step": 0, "train_loss": NAN}, {"step": 1, "train_loss": 1.0}])
    writer.write_points(engine, r2, [{"step": 0}, {"step": 1, "train_loss": 2.0}])  # step 0: NULL
    real = columnar._fetch_sqlite

    def then_the_driver_writes(*args):
        out = real(*args)
        other = open_db(sqlite_url)
        writer.write_points(other, r1, [{"step": 0, "train_loss": NAN}])  # sorts at r2's first row
        writer.write_points(other, r2, [{"step": 9, "train_loss": NAN}])  # sorts past the last row
        other.dispose()
        return out

    monkeypatch.setattr(columnar, "_fetch_sqlite", then_the_driver_writes)
    frame = queries.point_columns(engine, "live", ["train_loss"], keep_null=True)
    engine.dispose()
    assert list(zip(frame["run_id"], frame["step"], strict=True)) == [(r0, 0), (r0, 1), (r2, 0), (r2, 1)]
    assert frame["train_loss"].isna().tolist() == [False, False, True, False]  # r0's NaN a value, r2's NULL NULL
