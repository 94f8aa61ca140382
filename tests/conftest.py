"""Database fixtures shared by the test suite.

* ``sqlite_url`` — a SQLite file in the test's tmp_path.
* ``pg_url`` — a fresh, empty PostgreSQL database per test, created through the admin URL in
  ``SWEEPER_TEST_PG_URL`` (a role with CREATEDB; ``eval "$(.ci/postgres.sh)"`` starts a server and sets it) and
  dropped afterwards. Unset: the test is skipped locally, but fails when ``CI`` is set, so CI cannot skip silently.
* ``db_url`` — parametrized over both engines (the PostgreSQL case is marked ``postgres``).
* ``data_file_cache`` (automatic) — an empty file cache of generated data sets for the whole session.
* ``chromium`` — the headless Chromium of the browser tests (tests/browser.py); skipped locally without it, but
  fails when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

PG_ENV = "SWEEPER_TEST_PG_URL"


@pytest.fixture(scope="session", autouse=True)
def data_file_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite's own file cache of generated data sets (``sweeper.data.disk_cache``), empty at the start, so that
    tests neither read nor fill the user's ``~/.cache/sweeper``; Ray workers the tests start inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SWEEPER_CACHE_DIR", str(tmp_path_factory.mktemp("data-cache")))
        yield


@pytest.fixture(scope="session")
def pg_admin_url() -> sa.URL:
    """The URL from ``SWEEPER_TEST_PG_URL`` (driver forced to psycopg 3)."""
    raw = os.environ.get(PG_ENV)
    if not raw:
        hint = f'{PG_ENV} is not set; run eval "$(.ci/postgres.sh)" to start a PostgreSQL server for the tests'
        if os.environ.get("CI"):
            pytest.fail(f"{hint} (CI is set: PostgreSQL tests may not be skipped)")
        pytest.skip(hint)
    url = sa.make_url(raw)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


@pytest.fixture
def pg_url(pg_admin_url: sa.URL) -> Iterator[str]:
    """A URL (with password) of a new empty database, dropped after the test."""
    name = f"sweeper_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield pg_admin_url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    """A URL of a SQLite file (not yet created) in the test's temporary folder."""
    return f"sqlite:///{os.path.join(tmp_path, 'sweeper.db')}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of ``chromium`` (``.ci/chromium.sh`` installs it)."""
    path = shutil.which("chromium")
    if not path:
        hint = "chromium is not on PATH; run .ci/chromium.sh (apt-get install chromium) for the browser tests"
        if os.environ.get("CI"):
            pytest.fail(f"{hint} (CI is set: the browser tests may not be skipped)")
        pytest.skip(hint)
    return path
