"""The outage journal: batches round-trip exactly (datetimes, bytes, arrays, NaN/inf), a torn last line is ignored,
a replay is all or nothing and idempotent; and the batch writer it replays with."""

from __future__ import annotations

import datetime as dt
import io
import math

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from db.journal import Journal, decode, encode
from db.models import Diagnostic, Point, Run
from db.writer import RunWrite, write_run_batch

WHEN = dt.datetime(2026, 11, 30, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)


def sample_batch(run_id: int) -> list[RunWrite]:
    payload = np.arange(6, dtype=np.float32).reshape(2, 3)
    return [RunWrite(run_id,
                     points=[{"step": 0, "train_loss": math.nan, "test_loss": math.inf, "lr": 0.1},
                             {"step": 10, "train_loss": 0.5, "grad_norm": None}],
                     diagnostics=[{"step": 10, "kind": "noise", "value": np.float64(2.5),
                                   "summary": {"rank": np.int64(3), "ok": True}, "payload": payload}],
                     fields={"status": "running", "started_at": WHEN, "finished_at": None, "host": "h"},
                     attempts_added=1)]


def test_a_batch_round_trips_as_one_line() -> None:
    line = encode(sample_batch(7))
    assert "\n" not in line
    (back,) = decode(line)
    assert back.run_id == 7 and back.attempts_added == 1 and back.fields["started_at"] == WHEN
    assert math.isnan(back.points[0]["train_loss"]) and back.points[0]["test_loss"] == math.inf
    assert back.points[1] == {"step": 10, "train_loss": 0.5, "grad_norm": None}
    diag = back.diagnostics[0]
    assert diag["value"] == 2.5 and diag["summary"] == {"rank": 3, "ok": True}
    assert np.array_equal(np.load(io.BytesIO(diag["payload"])), np.arange(6, dtype=np.float32).reshape(2, 3))


def test_a_torn_last_line_is_ignored(tmp_path) -> None:
    journal = Journal(tmp_path / "deep" / "j.jsonl")
    assert not journal and journal.read() == []
    journal.append([sample_batch(1), sample_batch(2)])
    with open(journal.path, "a") as f:
        f.write(encode(sample_batch(3))[:40])  # the process killed mid-append
    assert [b[0].run_id for b in journal.read()] == [1, 2]


def test_an_append_after_a_torn_line_drops_the_torn_piece(tmp_path) -> None:
    """A failed append (disk full mid-write) leaves a piece without its newline; the next append (space freed)
    must not glue its first line onto it, which would make the whole journal unreadable."""
    journal = Journal(tmp_path / "j.jsonl")
    journal.append([sample_batch(1)])
    with open(journal.path, "a") as f:
        f.write(encode(sample_batch(2))[:40])
    journal.append([sample_batch(3), sample_batch(4)])
    assert [b[0].run_id for b in journal.read()] == [1, 3, 4]
    torn_only = Journal(tmp_path / "t.jsonl")
    torn_only.path.write_text(encode(sample_batch(5))[:40])
    torn_only.append([sample_batch(6)])
    assert [b[0].run_id for b in torn_only.read()] == [6]


def test_replay_is_all_or_nothing_then_idempotent(engine, study, tmp_path) -> None:
    run = study["runs"]["trial-000"]
    journal = Journal(tmp_path / "j.jsonl")
    journal.append([sample_batch(run), [RunWrite(run + 1000, fields={"host": "x"})]])  # no such run: refused
    with pytest.raises(Exception, match="no run with id"):
        journal.replay(engine)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Point)) == 0  # nothing of the first batch
    assert journal  # kept for the next try
    text = journal.path.read_text().splitlines()[0] + "\n"
    for _ in range(2):  # replayed twice (the driver killed between the commit and the deletion)
        journal.path.write_text(text)
        assert journal.replay(engine) == 1 and not journal.path.exists()
    with engine.connect() as conn:
        assert list(conn.scalars(sa.select(Point.step).where(Point.run_id == run).order_by(Point.step))) == [0, 10]
        assert conn.scalar(sa.select(sa.func.count()).select_from(Diagnostic)) == 1
        row = conn.execute(sa.select(Run.status, Run.host, Run.attempts).where(Run.id == run)).one()
    assert (row.status, row.host, row.attempts) == ("running", "h", 2)  # attempts: counted once per replay


def test_write_run_batch_applies_in_order(engine, study) -> None:
    run = study["runs"]["trial-001"]
    with Session(engine) as session, session.begin():
        write_run_batch(session, [RunWrite(run, fields={"status": "running", "steps_done": 5}),
                                  RunWrite(run, points=[{"step": 9}], fields={"status": "completed",
                                                                              "steps_done": 9})])
    with engine.connect() as conn:
        row = conn.execute(sa.select(Run.status, Run.steps_done, Run.attempts).where(Run.id == run)).one()
    assert tuple(row) == ("completed", 9, 0)
