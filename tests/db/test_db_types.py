"""±inf/NaN stored portably: float columns and JSON round-trip them exactly, NULL stays "not measured"."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db import queries, writer
from db.models import Diagnostic, Point, Study
from db.types import decode_json, encode_json

NAN, INF = math.nan, math.inf


def same(a: float | None, b: float | None) -> bool:
    """Equal, NaN equal to NaN, and None only equal to None."""
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_points_nan_inf_null_round_trip(engine: Engine, study: dict) -> None:
    run_id = study["runs"]["trial-000"]
    point = {
        "step": 7,
        "train_loss": NAN,
        "test_loss": INF,
        "grad_norm": -INF,
        "train_acc": None,
        "epoch": 0.0,
        "lr": 5e-324,
        "weight_norm": 1.7976931348623157e308,
    }
    with engine.begin() as conn:
        assert writer.write_points(conn, run_id, [point]) == 1
    with Session(engine) as session:
        row = session.get(Point, (run_id, 7))
        assert row is not None
        for key in ("train_loss", "test_loss", "grad_norm", "train_acc", "epoch", "lr", "weight_norm"):
            assert same(getattr(row, key), point[key]), key
        assert row.test_acc is None  # not given: NULL
        # in SQL, NULL is still NULL and NaN is not NULL
        nulls = session.scalar(sa.select(sa.func.count()).where(Point.train_acc.is_(None)))
        nan_is_null = session.scalar(sa.select(sa.func.count()).where(Point.train_loss.is_(None)))
        assert (nulls, nan_is_null) == (1, 0)

    frame = queries.points_frame(engine, "demo", keep_null=True)
    assert frame["train_loss"].isna().tolist() == [False]  # NaN, not <NA>
    assert math.isnan(frame["train_loss"].to_numpy(dtype=float, na_value=0.0)[0])
    assert frame["train_acc"].isna().tolist() == [True]  # NULL is <NA>
    assert frame["test_loss"].iloc[0] == INF and frame["grad_norm"].iloc[0] == -INF
    plain = queries.points_frame(engine, "demo")
    assert plain["train_loss"].dtype == np.float64 and math.isnan(plain["train_loss"].iloc[0])


def test_orm_float_columns_round_trip(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.add_all(
            [
                Study(
                    name="a", spec={}, spec_hash="x", package_version="0", status="running", ray_cpus=NAN, ray_gpus=INF
                ),
                Study(
                    name="b",
                    spec={},
                    spec_hash="x",
                    package_version="0",
                    status="running",
                    ray_cpus=-INF,
                    ray_gpus=None,
                ),
            ]
        )
    with Session(engine) as session:
        got = {s.name: (s.ray_cpus, s.ray_gpus) for s in session.scalars(sa.select(Study))}
    assert math.isnan(got["a"][0]) and got["a"][1] == INF
    assert got["b"] == (-INF, None)


def test_numpy_values_are_stored_as_floats(engine: Engine, study: dict) -> None:
    run_id = study["runs"]["trial-001"]
    with engine.begin() as conn:
        writer.write_points(
            conn, run_id, [{"step": np.int64(3), "train_loss": np.float32(0.5), "test_acc": np.float64(NAN)}]
        )
    with Session(engine) as session:
        row = session.get(Point, (run_id, 3))
        assert row is not None and row.train_loss == 0.5 and type(row.train_loss) is float and math.isnan(row.test_acc)


def test_json_non_finite_round_trip(engine: Engine, study: dict) -> None:
    run_id = study["runs"]["trial-002"]
    summary = {"top": INF, "bottom": -INF, "ratio": NAN, "n": 3, "name": "hvp", "ok": True, "none": None}
    spec = {"grid": [1.0, NAN, INF, -INF], "nested": {"x": [{"y": NAN}]}, "np": np.float32(2.5), "t": (1, 2)}
    with Session(engine) as session, session.begin():
        writer.ensure_study(session, "json", spec)
        writer.write_diagnostics(session, run_id, [{"step": 1, "kind": "spectrum", "summary": summary, "value": NAN}])
    with Session(engine) as session:
        stored = session.scalar(sa.select(Study.spec).where(Study.name == "json"))
        diag = session.get(Diagnostic, (run_id, 1, "spectrum"))
    assert stored["grid"][0] == 1.0 and math.isnan(stored["grid"][1]) and stored["grid"][2:] == [INF, -INF]
    assert math.isnan(stored["nested"]["x"][0]["y"]) and stored["np"] == 2.5 and stored["t"] == [1, 2]
    assert diag is not None and math.isnan(diag.value)
    assert {k: v for k, v in diag.summary.items() if k != "ratio"} == {k: v for k, v in summary.items() if k != "ratio"}
    assert math.isnan(diag.summary["ratio"])

    # what is stored is strict JSON (no NaN/Infinity tokens), so the database's own JSON functions accept it
    with engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT CAST(spec AS TEXT) FROM studies WHERE name = 'json'")).scalar()

    def reject(token: str) -> None:
        raise AssertionError(f"non-strict JSON token {token}")

    assert json.loads(raw, parse_constant=reject)["grid"][1] == {"$float": "NaN"}


def test_encode_decode_json() -> None:
    value = {"a": [NAN, INF, -INF, 1.5, None], "b": {"c": np.array([1.0, INF])}, "d": dt.date(2024, 1, 2)}
    encoded = encode_json(value)
    json.dumps(encoded, allow_nan=False)
    decoded = decode_json(encoded)
    assert math.isnan(decoded["a"][0]) and decoded["a"][1:] == [INF, -INF, 1.5, None]
    assert decoded["b"]["c"] == [1.0, INF] and decoded["d"] == "2024-01-02"
    with pytest.raises(TypeError):
        encode_json({"x": object()})


def test_timestamps_are_utc_aware(engine: Engine, study: dict) -> None:
    run_id = study["runs"]["trial-000"]
    local = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with Session(engine) as session, session.begin():
        writer.update_run(session, run_id, started_at=local)
    run = queries.get_run(engine, run_id)
    assert run.started_at == local and run.started_at.utcoffset() == dt.timedelta(0)
