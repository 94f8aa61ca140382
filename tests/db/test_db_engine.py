"""Engines: URL handling, password redaction, SQLite pragmas, foreign keys, the schema-version gate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db import migrate, writer
from db.engine import make_engine, open_db, redact, resolve_url, upgrade_command
from db.errors import DatabaseVersionError
from db.models import Base, Point, Run, Study


def test_redact_hides_passwords() -> None:
    shown = redact("postgresql+psycopg://alice:s3cr%40t@db.example:5432/sweeper")
    assert "s3cr" not in shown and "***" in shown and "alice" in shown and "db.example" in shown
    assert "hunter2" not in redact("postgresql://bob@h/db?password=hunter2&sslmode=require")
    assert "sslmode=require" in redact("postgresql://bob@h/db?password=hunter2&sslmode=require")
    assert "pw" not in redact("not a url://u:pw@h")
    assert redact("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"


def test_resolve_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_url("postgresql://u:p@h/d").drivername == "postgresql+psycopg"
    assert resolve_url("postgres://u:p@h/d").drivername == "postgresql+psycopg"
    monkeypatch.delenv("SWEEPER_DB", raising=False)
    assert resolve_url(None).render_as_string() == "sqlite:///sweeper.db"
    monkeypatch.setenv("SWEEPER_DB", "sqlite:////tmp/from-env.db")
    assert resolve_url(None).database == "/tmp/from-env.db"


def test_sqlite_pragmas(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_sqlite_creates_parent_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nested/deeper/results.db"
    engine = open_db(url, create=True)
    engine.dispose()
    assert (tmp_path / "nested" / "deeper" / "results.db").exists()


def test_foreign_keys_enforced_and_cascade(engine: Engine, study: dict) -> None:
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        writer.write_points(conn, 999_999, [{"step": 0, "train_loss": 1.0}])
    run_id = next(iter(study["runs"].values()))
    with engine.begin() as conn:
        writer.write_points(conn, run_id, [{"step": s, "train_loss": 1.0} for s in range(3)])
        writer.write_diagnostics(conn, run_id, [{"step": 0, "kind": "sharpness", "value": 2.0}])
    with Session(engine) as session, session.begin():
        session.execute(sa.delete(Study).where(Study.id == study["study_id"]))
    with engine.connect() as conn:
        for table in ("runs", "points", "diagnostics"):
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 0, table


def test_open_db_creates_empty_database(db_url: str) -> None:
    engine = open_db(db_url, create=True)
    try:
        assert migrate.current(engine) == migrate.head()
    finally:
        engine.dispose()
    open_db(db_url).dispose()  # at head: accepted without create


def test_open_db_refuses_empty_database_without_create(db_url: str) -> None:
    make_engine(db_url).dispose()  # the SQLite file exists, with no tables
    if db_url.startswith("sqlite"):
        with make_engine(db_url).connect() as conn:
            conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
            conn.commit()
    with pytest.raises(DatabaseVersionError, match="no sweeper schema") as err:
        open_db(db_url)
    assert upgrade_command(db_url) in str(err.value)


def test_open_db_missing_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/absent.db"
    with pytest.raises(DatabaseVersionError) as err:
        open_db(url)
    assert f"sweeper db upgrade --db sqlite:///{tmp_path}/absent.db" in str(err.value)
    assert not (tmp_path / "absent.db").exists()


def test_open_db_refuses_older_revision(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database at a revision this code knows but which is not its head: tell the user to upgrade."""
    migrate.upgrade(db_url, "0001")
    with pytest.raises(DatabaseVersionError) as err:
        open_db(db_url, create=True)
    message = str(err.value)
    assert "\n" not in message
    assert "revision 0001" in message and f"needs {migrate.head()}" in message
    assert message.endswith(f"run: {upgrade_command(db_url)}")
    assert "sweeper db upgrade --db " in message


def test_open_db_refuses_unknown_revision(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = 'ffffffffffff'"))
    engine.dispose()
    with pytest.raises(DatabaseVersionError) as err:
        open_db(db_url)
    message = str(err.value)
    assert "ffffffffffff" in message and "newer sweeper" in message
    assert f"sweeper db upgrade --db {redact(db_url)}".split(" --db ")[0] in message
    assert upgrade_command(db_url) in message


def test_open_db_refuses_tables_without_revision(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    Base.metadata.create_all(engine)
    engine.dispose()
    with pytest.raises(DatabaseVersionError, match="no schema revision"):
        open_db(sqlite_url, create=True)


@pytest.mark.postgres
def test_version_error_hides_pg_password(pg_url: str) -> None:
    password = sa.make_url(pg_url).password
    assert password
    with pytest.raises(DatabaseVersionError) as err:
        open_db(pg_url)
    assert password not in str(err.value)
    assert "***" in str(err.value) and "sweeper db upgrade --db" in str(err.value)


def test_run_model_defaults(engine: Engine, study: dict) -> None:
    with Session(engine) as session:
        run = session.get(Run, next(iter(study["runs"].values())))
        assert run is not None and run.status == "pending" and run.attempts == 0
        assert run.study.created_at.tzinfo is not None
        assert session.scalar(sa.select(sa.func.count()).select_from(Point)) == 0


def test_default_sqlite_url_is_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWEEPER_DB", raising=False)
    open_db(None, create=True).dispose()
    assert os.path.exists(tmp_path / "sweeper.db")
