"""The bad specs and command-line inputs of ``tests/cli/test_cli_bad_input.py`` against PostgreSQL: one line,
exit 2, and every row of every table (the schema revision included) unchanged."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from cli.main import app
from db.engine import open_db
from db.migrate import VERSION_TABLE
from db.models import Base
from db.writer import ensure_runs, ensure_study
from sweeper.expand import expand
from tests.cli.test_cli_bad_input import (
    BAD_SPECS,
    SPEC,
    assert_one_line,
    no_launch,
    runner,
    write_spec,
)
from tests.helpers import make_spec

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures(no_launch.__name__)]


@pytest.fixture
def pg_db(pg_url):
    """A PostgreSQL database holding study 'res' (4 pending runs)."""
    spec = make_spec(name="res", seeds=[0, 1], sweep={"batch_size": [8], "lr": [0.05, 0.2]})
    engine = open_db(pg_url, create=True)
    with Session(engine) as session, session.begin():
        ensure_runs(session, ensure_study(session, spec.name, spec.model_dump(mode="json")),
                    expand(spec))
    engine.dispose()
    return pg_url


def contents(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        tables = {t.name: conn.execute(sa.select(t).order_by(*t.primary_key.columns)).all()
                  for t in Base.metadata.sorted_tables}
        tables[VERSION_TABLE] = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    engine.dispose()
    return tables


READING = [
    (["show", "99999999999999999999999"], "error: no run with id 99999999999999999999999"),
    (["runs", "res", "--where", "lr = 99999999999999999999999"], "out of range"),
    (["runs", "res", "--where", "config like '%'"], "needs a text column, but 'config' is json"),
    (["runs", "res", "--where", "lr > 0; drop table runs"], "';' at position 7 is not allowed"),
    (["resume", "res", "--cpus-per-trial", "-1"], "error: --cpus-per-trial: must be a finite"),
]


def test_bad_specs_and_arguments_leave_postgresql_unchanged(pg_db, tmp_path):
    before = contents(pg_db)
    cases = [(["launch", str(write_spec(tmp_path, SPEC.replace(old, new), f"s{i}.toml"))], f"error: {needle}")
             for i, (old, new, needle) in enumerate(BAD_SPECS)] + READING
    for args, needle in cases:
        assert_one_line(runner.invoke(app, [*args, "--db", pg_db]), needle)
    assert contents(pg_db) == before
