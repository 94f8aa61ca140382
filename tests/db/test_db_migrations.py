"""Migrations: upgrade from empty, downgrade/upgrade round trip, models == migrations, cwd independence."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from db import blocks, migrate, queries
from db.engine import make_engine
from db.errors import DatabaseVersionError
from db.models import POINT_METRICS, Base, Point

REPO = Path(__file__).resolve().parents[2]
TABLES = {"studies", "runs", "points", "point_blocks", "diagnostics", "verdicts"}


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty(db_url: str) -> None:
    assert migrate.current(db_url) is None
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head() == "0005"
    assert tables(db_url) == TABLES | {migrate.VERSION_TABLE}
    migrate.upgrade(db_url)  # at head already: a no-op
    assert migrate.current(db_url) == migrate.head()


def test_upgrade_0001_to_0002_keeps_the_data(db_url: str) -> None:
    """A database written at 0001 (before the online-noise columns) keeps every point through 0002 and back."""
    migrate.upgrade(db_url, "0001")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO studies (name, spec, spec_hash, package_version, status, created_at) "
                                 "VALUES ('old', '{}', 'h', '0.0', 'completed', CURRENT_TIMESTAMP)"))
            conn.execute(sa.text(
                "INSERT INTO runs (study_id, trial_id, trial_index, status, optimizer, model, dataset, batch_size, lr,"
                " weight_decay, svag_l, seed, config, attempts) SELECT id, 't1', 0, 'completed', 'sgd', 'linear',"
                " 'linreg', 8, 0.1, 0.0, 1.0, 0, '{}', 1 FROM studies"))
            conn.execute(sa.text("INSERT INTO points (run_id, step, test_loss) SELECT id, 10, 0.5 FROM runs"))
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT step, test_loss, noise_scale FROM points")).all() == [(10, 0.5, None)]
        migrate.downgrade(db_url, "0001")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT step, test_loss FROM points")).all() == [(10, 0.5)]
    finally:
        engine.dispose()


def test_upgrade_0002_to_0003_keeps_the_data(db_url: str) -> None:
    """A database written at 0002 (before studies.heartbeat_at) keeps its studies and runs through 0003 and back;
    the old studies have no heartbeat."""
    migrate.upgrade(db_url, "0002")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO studies (name, spec, spec_hash, package_version, status, created_at) "
                                 "VALUES ('old', '{}', 'h', '0.0', 'running', CURRENT_TIMESTAMP)"))
            conn.execute(sa.text(
                "INSERT INTO runs (study_id, trial_id, trial_index, status, optimizer, model, dataset, batch_size, lr,"
                " weight_decay, svag_l, seed, config, attempts) SELECT id, 't1', 0, 'running', 'sgd', 'linear',"
                " 'linreg', 8, 0.1, 0.0, 1.0, 0, '{}', 1 FROM studies"))
            conn.execute(sa.text("INSERT INTO points (run_id, step, test_loss) SELECT id, 10, 0.5 FROM runs"))
        migrate.upgrade(db_url)
        assert migrate.current(db_url) == migrate.head()
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT name, status, heartbeat_at FROM studies")).all() == [
                ("old", "running", None)]
            conn.execute(sa.text("UPDATE studies SET heartbeat_at = CURRENT_TIMESTAMP"))
        migrate.downgrade(db_url, "0002")
        assert migrate.current(db_url) == "0002"
        assert "heartbeat_at" not in {c["name"] for c in sa.inspect(engine).get_columns("studies")}
        with engine.connect() as conn:  # rebuilding studies (SQLite batch mode) cascades nothing away
            assert conn.execute(sa.text("SELECT name, status FROM studies")).all() == [("old", "running")]
            assert conn.execute(sa.text("SELECT trial_id, status FROM runs")).all() == [("t1", "running")]
            assert conn.execute(sa.text("SELECT step, test_loss FROM points")).all() == [(10, 0.5)]
    finally:
        engine.dispose()


def test_upgrade_0004_to_0005_builds_the_blocks_of_every_run(db_url: str) -> None:
    """A database written at 0004 (one block per sealed run, keyed by run) gets 0005's blocks: one for each
    completed or diverged run, a chunk for a running run of CHUNK_POINTS points or more, none for the others, read
    back as the rows read (NULL, NaN, ±inf kept); the downgrade to 0004 keeps the sealed runs' blocks, to 0003
    drops them, and every point stays."""
    migrate.upgrade(db_url, "0004")
    engine = make_engine(db_url)
    points = [{"step": 0, "test_loss": math.nan, "train_loss": None},
              {"step": 10, "test_loss": math.inf, "train_loss": 0.5},
              {"step": 20, "test_loss": None, "train_loss": None}]
    long = [{"step": 30 + s, "test_loss": 1.0} for s in range(blocks.CHUNK_POINTS)]
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO studies (name, spec, spec_hash, package_version, status, created_at) "
                                 "VALUES ('old', '{}', 'h', '0.0', 'completed', CURRENT_TIMESTAMP)"))
            for i, status in enumerate(("completed", "failed", "diverged", "running", "running")):
                conn.execute(sa.text(
                    "INSERT INTO runs (study_id, trial_id, trial_index, status, optimizer, model, dataset, batch_size,"
                    " lr, weight_decay, svag_l, seed, config, attempts) SELECT id, :t, :i, :s, 'sgd', 'linear',"
                    " 'linreg', 8, 0.1, 0.0, 1.0, 0, '{}', 1 FROM studies"), {"t": f"t{i}", "i": i, "s": status})
            run_ids = conn.scalars(sa.text("SELECT id FROM runs ORDER BY id")).all()
            conn.execute(sa.insert(Point), [dict(p, run_id=r) for r in run_ids for p in points])
            conn.execute(sa.insert(Point), [dict(p, run_id=run_ids[4]) for p in long])
            old = blocks.encode(np.array([0]), np.zeros((1, len(POINT_METRICS))),
                                np.ones((1, len(POINT_METRICS)), dtype=bool))  # 0004's block: stale on purpose
            conn.execute(sa.text("INSERT INTO point_blocks (run_id, n_points, last_step, data) VALUES (:r, 1, 0, :d)"),
                         {"r": run_ids[0], "d": old})
        migrate.upgrade(db_url)
        assert migrate.current(db_url) == "0005"
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT run_id, last_step, n_points, measured FROM point_blocks "
                                          "ORDER BY run_id, last_step"))
            measured = 1 << POINT_METRICS.index("test_loss") | 1 << POINT_METRICS.index("train_loss")
            assert stored.all() == [(run_ids[0], 20, 3, measured), (run_ids[2], 20, 3, measured),
                                    (run_ids[4], 30 + blocks.CHUNK_POINTS - 1, 3 + blocks.CHUNK_POINTS, measured)]
            read = queries.point_columns(conn, "old", ["test_loss", "train_loss"], keep_null=True)
        assert read["run_id"].tolist() == [r for r in run_ids for _ in points] + [run_ids[4]] * len(long)
        assert read["train_loss"].isna().tolist()[:15] == [True, False, True] * 5
        loss = read["test_loss"].to_numpy(dtype=float, na_value=-1.0)[:15].reshape(5, 3)
        assert np.isnan(loss[:, 0]).all() and (loss[:, 1] == math.inf).all() and (loss[:, 2] == -1.0).all()
        migrate.downgrade(db_url, "0004")
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT run_id, n_points, last_step FROM point_blocks ORDER BY run_id"))
            assert stored.all() == [(run_ids[0], 3, 20), (run_ids[2], 3, 20)]
        migrate.downgrade(db_url, "0003")
        assert "point_blocks" not in tables(db_url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM points")).scalar() == 15 + len(long)
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(db_url: str) -> None:
    migrate.upgrade(db_url)
    migrate.downgrade(db_url, "base")
    assert migrate.current(db_url) is None
    assert tables(db_url) & TABLES == set()
    migrate.upgrade(db_url, "head")
    assert migrate.current(db_url) == migrate.head()
    assert tables(db_url) >= TABLES


def test_models_match_migrations(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": migrate.VERSION_TABLE})
            assert compare_metadata(ctx, Base.metadata) == []

            # the comparison is not vacuous: a column the migrations lack is reported
            extra = sa.MetaData()
            for table in Base.metadata.sorted_tables:
                table.to_metadata(extra)
            extra.tables["points"].append_column(sa.Column("sharpness", sa.Double()))
            diff = compare_metadata(ctx, extra)
            assert [d[0] for d in diff] == ["add_column"] and diff[0][3].name == "sharpness"

        # compare_metadata ignores CHECK constraints and FK names: compare constraint names directly
        inspector = sa.inspect(engine)
        for table in Base.metadata.sorted_tables:
            for kind, reflect in (
                (sa.CheckConstraint, inspector.get_check_constraints),
                (sa.ForeignKeyConstraint, inspector.get_foreign_keys),
                (sa.UniqueConstraint, inspector.get_unique_constraints),
            ):
                expected = {c.name for c in table.constraints if type(c) is kind}
                assert {c["name"] for c in reflect(table.name)} == expected, (table.name, kind.__name__)
    finally:
        engine.dispose()


def test_migrations_do_not_depend_on_cwd(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    migrate.upgrade(sqlite_url)
    assert migrate.current(sqlite_url) == migrate.head()


def test_alembic_ini_at_repo_root(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The alembic CLI configuration (run from the repository root) reaches the same migrations."""
    monkeypatch.chdir(REPO)
    cfg = Config(str(REPO / "alembic.ini"), attributes={"configure_logger": False})  # leave pytest's logging be
    assert cfg.get_main_option("script_location") == "db/alembic"
    cfg.cmd_opts = argparse.Namespace(x=[f"db={sqlite_url}"])
    command.upgrade(cfg, "head")
    assert migrate.current(sqlite_url) == migrate.head()


def test_sqlite_foreign_keys_back_on_after_migrating(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url, poolclass=sa.pool.StaticPool)  # one connection: the one migrated
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_head_without_migration_scripts_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken installation (no scripts under versions/) is a clear error, also under ``python -O``."""
    (tmp_path / "versions").mkdir()
    monkeypatch.setattr(migrate, "SCRIPT_LOCATION", tmp_path)
    with pytest.raises(RuntimeError, match="no migration scripts"):
        migrate.head()


def test_head_revision_constant_is_alembics_head() -> None:
    """open_db decides "at head" by HEAD_REVISION without loading Alembic: it must be the scripts' head."""
    assert migrate.head() == migrate.HEAD_REVISION


@pytest.mark.parametrize("rev", ["0001", "head", "base"])
def test_current_reads_what_alembic_reads(db_url: str, rev: str) -> None:
    migrate.upgrade(db_url, "head")
    if rev != "head":
        migrate.downgrade(db_url, rev)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            alembic_rev = MigrationContext.configure(
                conn, opts={"version_table": migrate.VERSION_TABLE}).get_current_revision()
        assert migrate.current(engine) == alembic_rev == {"0001": "0001", "head": migrate.head(), "base": None}[rev]
    finally:
        engine.dispose()


def test_current_refuses_several_revisions(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {migrate.VERSION_TABLE} (version_num) VALUES ('0002')"))
        with pytest.raises(DatabaseVersionError, match=r"several revisions \(0002, 0005\)"):
            migrate.current(engine)
    finally:
        engine.dispose()
