"""Tests for db.where: the ``--where`` filter language."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import visitors

from db.where import WhereError, parse_where

metadata = sa.MetaData()
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("lr", sa.Float),
    sa.Column("batch_size", sa.Integer),
    sa.Column("status", sa.String),
    sa.Column("optimizer", sa.String),
    sa.Column("svag_l", sa.Float, nullable=True),
    sa.Column("error", sa.String, nullable=True),
    sa.Column("converged", sa.Boolean),
)
COLUMNS = {c.name: c for c in runs.c}

ROWS = [
    # id, lr, batch_size, status, optimizer, svag_l, error, converged
    (1, 0.1, 64, "completed", "adam", 0.5, None, True),
    (2, 0.01, 128, "completed", "sgd", 1.5, None, False),
    (3, 0.3, 128, "failed", "adam", 2.0, "nan loss", False),
    (4, 0.001, 32, "completed", "sgd", None, None, True),
    (5, 0.2, 256, "running", "adamw", 0.9, None, False),
    (6, 0.05, 64, "failed", "sgd", 3.0, "OOM", False),
    (7, 0.5, 64, "completed", "adam", 1.0, None, True),
    (8, 0.1, 128, "completed", "sgd", 0.7, None, True),
    (9, 0.0001, 32, "pending", "adam", None, None, False),
    (10, 0.15, 128, "failed", "rmsprop", 1.2, "it's \"quoted\"", False),
]
ALL = set(range(1, 11))
KEYS = ["id", "lr", "batch_size", "status", "optimizer", "svag_l", "error", "converged"]


@pytest.fixture(scope="module")
def engine():
    eng = sa.create_engine("sqlite://")  # in-memory; SingletonThreadPool keeps one DB
    metadata.create_all(eng)
    with eng.begin() as conn:
        conn.execute(runs.insert(), [dict(zip(KEYS, r, strict=True)) for r in ROWS])
    yield eng
    eng.dispose()


def ids(engine, expr: str) -> set[int]:
    with engine.connect() as conn:
        stmt = sa.select(runs.c.id).where(parse_where(expr, COLUMNS))
        return set(conn.execute(stmt).scalars())


def assert_table_intact(engine) -> None:
    assert sa.inspect(engine).has_table("runs")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one() == 10
        assert set(conn.execute(sa.select(runs.c.id)).scalars()) == ALL


# --------------------------------------------------------------------------
# constructs select exactly the expected rows
# --------------------------------------------------------------------------
CASES = [
    # the brief's examples
    ("lr >= 0.1 and batch_size in (64, 128) and status = 'completed'", {1, 7, 8}),
    ('not (svag_l > 1) or optimizer = "adam"', {1, 3, 5, 7, 8, 9}),
    ("error is null", {1, 2, 4, 5, 7, 8, 9}),
    # comparison operators
    ("lr = 0.1", {1, 8}),
    ("lr == 0.1", {1, 8}),
    ("lr != 0.1", ALL - {1, 8}),
    ("lr <> 0.1", ALL - {1, 8}),
    ("lr < 0.01", {4, 9}),
    ("lr <= 0.01", {2, 4, 9}),
    ("lr > 0.2", {3, 7}),
    ("lr >= 0.2", {3, 5, 7}),
    ("lr>=0.2", {3, 5, 7}),
    ("batch_size = 64", {1, 6, 7}),
    ("batch_size > 100", {2, 3, 5, 8, 10}),
    # number formats
    ("lr < 1e-3", {9}),
    ("lr <= 1E-3", {4, 9}),
    ("lr > .4", {7}),
    ("lr < 5e-1 and lr > 5E-2", {1, 3, 5, 8, 10}),
    ("svag_l > -2", {1, 2, 3, 5, 6, 7, 8, 10}),
    ("svag_l > -0.5e1", {1, 2, 3, 5, 6, 7, 8, 10}),
    ("batch_size = -2", set()),
    ("batch_size = 64.0", {1, 6, 7}),
    # in / not in
    ("batch_size in (32)", {4, 9}),
    ("batch_size not in (64, 128)", {4, 5, 9}),
    ("status in ('failed', \"running\")", {3, 5, 6, 10}),
    ("status NOT IN ('completed','failed')", {5, 9}),
    # is [not] null, = null
    ("error is not null", {3, 6, 10}),
    ("error = null", {1, 2, 4, 5, 7, 8, 9}),
    ("error != NULL", {3, 6, 10}),
    ("svag_l IS NULL", {4, 9}),
    # like
    ("optimizer like 'adam%'", {1, 3, 5, 7, 9}),
    ("optimizer not like 'adam%'", {2, 4, 6, 8, 10}),
    ("status LIKE '_ail%'", {3, 6, 10}),
    # booleans
    ("converged = true", {1, 4, 7, 8}),
    ("converged = FALSE", {2, 3, 5, 6, 9, 10}),
    ("converged != True", {2, 3, 5, 6, 9, 10}),
    ("converged in (true)", {1, 4, 7, 8}),
    # boolean logic, precedence, parentheses, keyword case
    ("status = 'completed' or status = 'pending' and optimizer = 'sgd'", {1, 2, 4, 7, 8}),
    ("(status = 'completed' or status = 'pending') and optimizer = 'adam'", {1, 7, 9}),
    ("error IS NOT NULL AnD lr > 0.1", {3, 10}),
    ("not error is null", {3, 6, 10}),
    ("not not error is null", {1, 2, 4, 5, 7, 8, 9}),
    ("NOT (lr < 0.1 OR lr > 0.2)", {1, 5, 8, 10}),
    ("((((lr = 0.5))))", {7}),
    ("lr = 0.5 or lr = 0.3 or lr = 0.2", {3, 5, 7}),
    ("\n\tlr = 0.5\n", {7}),
    # string escaping
    ("error = 'it\\'s \"quoted\"'", {10}),
    ("error = \"it's \\\"quoted\\\"\"", {10}),
    ("error = 'it''s \"quoted\"'", {10}),
    ("error = \"it's \"\"quoted\"\"\"", {10}),
    ("error = 'OOM'", {6}),
    ("error = 'oom'", set()),
    ("status = ''", set()),
]


@pytest.mark.parametrize(("expr", "expected"), CASES)
def test_selects_expected_rows(engine, expr, expected):
    assert ids(engine, expr) == expected


def test_accepts_column_collection(engine):
    expr = parse_where("lr = 0.5", runs.c)
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(runs.c.id).where(expr)).scalars()) == {7}


def test_only_given_columns_are_visible():
    cols = {"learning_rate": runs.c.lr}
    expr = parse_where("learning_rate > 0.1", cols)
    assert "runs.lr" in str(expr)
    with pytest.raises(WhereError, match=r"unknown column 'lr'.*valid columns: learning_rate"):
        parse_where("lr > 0.1", cols)


# --------------------------------------------------------------------------
# injection attempts
# --------------------------------------------------------------------------
REJECTED_INJECTIONS = [
    ("1=1; drop table runs", "literal 1"),
    ("status = 'x' or 1=1 --", "literal 1"),
    ("lr > 0 /* */", "'/*'"),
    ("status = 'completed'); drop table runs; --", "')'"),
    ("lr > 0 -- comment", "'--'"),
    ("lr > 0; drop table runs", "';'"),
    ("status = ''; drop table runs; --'", "';'"),
    ("status = 'x' union select * from runs", "'union'"),
    ("status = 'x' or 'a'='a'", "literal 'a'"),
    ("lr > 0 or true", "keyword 'true'"),
    ("status = 'x' ) or ( 1 = 1", "')'"),
    ("lr > (select 1)", "'('"),
    ("drop table runs", "'drop'"),
    ("lr > 0\x00", "'\\x00'"),
]


@pytest.mark.parametrize(("expr", "needle"), REJECTED_INJECTIONS)
def test_injection_rejected(engine, expr, needle):
    with pytest.raises(WhereError) as info:
        ids(engine, expr)
    assert needle in str(info.value)
    assert_table_intact(engine)


QUOTED_INJECTIONS = [
    ("status = 'a'' or ''1''=''1'", "a' or '1'='1"),
    ("status = '\\'; drop table runs; --'", "'; drop table runs; --"),
    ('status = "x\\" or \\"1\\"=\\"1"', 'x" or "1"="1'),
]


@pytest.mark.parametrize(("expr", "value"), QUOTED_INJECTIONS)
def test_quoted_injection_is_a_plain_string(engine, expr, value):
    assert ids(engine, expr) == set()
    compiled = parse_where(expr, COLUMNS).compile(dialect=sqlite.dialect())
    assert list(compiled.params.values()) == [value]
    assert value not in str(compiled)
    assert "drop" not in str(compiled) and "'1'" not in str(compiled)
    assert_table_intact(engine)


# --------------------------------------------------------------------------
# literals are bind parameters
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_literals_are_bound_parameters(dialect):
    expr = parse_where(
        "lr >= 0.125 and batch_size in (64, 96) and status = 'completed' "
        "and optimizer like 'ad%' and converged = true and svag_l != -7",
        COLUMNS,
    )
    compiled = expr.compile(dialect=dialect)
    sql = str(compiled)
    for text in ("0.125", "64", "96", "completed", "ad%", "true", "-7"):
        assert text not in sql.lower(), (text, sql)
    values = list(compiled.params.values())
    assert sorted(map(repr, values)) == sorted(
        map(repr, [0.125, [64, 96], "completed", "ad%", True, -7])
    )
    # every literal in the tree is a BindParameter
    binds = [e for e in visitors.iterate(expr) if isinstance(e, sa.BindParameter)]
    assert len(binds) == 6


def test_null_comparisons_render_is_null():
    sql = str(parse_where("error = null or svag_l is not null", COLUMNS).compile())
    assert "runs.error IS NULL" in sql and "runs.svag_l IS NOT NULL" in sql


# --------------------------------------------------------------------------
# error messages
# --------------------------------------------------------------------------
ERRORS = [
    ("", "empty expression", 1),
    ("   \t ", "empty expression", 1),
    ("lrr > 1", "unknown column 'lrr' at position 1 (did you mean 'lr'?)", 1),
    ("LR > 1", "unknown column 'LR'", 1),
    ("lr > 1 and Status = 'x'", "unknown column 'Status' at position 12", 12),
    ("lr > 1 batch_size = 2", "unexpected name 'batch_size' at position 8", 8),
    ("lr > 1)", "unbalanced ')' at position 7", 7),
    ("(lr > 1", "unbalanced '(' at position 1", 8),
    ("((lr > 1) and (lr < 2)", "unbalanced '(' at position 1", 23),
    ("status = 'abc", "unterminated string starting at position 10", 10),
    ('status = "abc\'', "unterminated string", 10),
    ("status = 'abc\\'", "unterminated string", 10),
    ("1 = lr", "expected a column name at position 1 but found literal 1", 1),
    ("'x' = status", "found literal 'x'", 1),
    ("null is null", "found keyword 'null'", 1),
    ("lr = batch_size", "column-vs-column comparisons are not supported: 'batch_size'", 6),
    ("lr in (0.1, svag_l)", "column-vs-column comparisons are not supported", 13),
    ("status = completed", "bare word 'completed'", 10),
    ("lr", "incomplete condition after column 'lr'", 3),
    ("lr 5", "unexpected literal 5 at position 4 after column 'lr'", 4),
    ("lr >", "expected a literal after '>' at position 4, found end of expression", 5),
    ("lr > 1 and", "unexpected end of expression", 11),
    ("lr > 1 or or lr < 2", "unexpected keyword 'or' at position 11", 11),
    ("and lr > 1", "unexpected keyword 'and' at position 1", 1),
    ("()", "unexpected ')' at position 2", 2),
    ("lr ! 1", "unexpected character '!' at position 4", 4),
    ("lr = 1 & lr = 2", "unexpected character '&'", 8),
    ("lr = - 1", "unexpected character '-'", 6),
    ("lr = 1.2.3", "malformed number '1.2.3' at position 6", 6),
    ("lr = 1e", "malformed number '1e'", 6),
    ("lr = 12abc", "malformed number '12abc'", 6),
    ("lr > 1e999", "out of range", 6),
    ("lr in ()", "expected a literal after 'in' at position 4, found ')' at position 8", 8),
    ("lr in (1, 2,)", "found ')' at position 13", 13),
    ("lr in (1 2)", "expected ',' or ')' in 'in' list opened at position 7", 10),
    ("lr in 1", "expected '(' after 'in' at position 4, found literal 1", 7),
    ("lr in (1, null)", "null is not allowed in an 'in' list", 11),
    ("lr not 1", "expected 'in' or 'like' after 'not' at position 4", 8),
    ("error is 1", "expected 'null' after 'is' at position 7, found literal 1", 10),
    ("error is not 'x'", "expected 'null' after 'is not'", 14),
    ("lr < null", "use 'is null'", 6),
    ("status like 5", "'like' needs a quoted string pattern, found literal 5", 13),
    ("lr like '1%'", "'like' at position 4 needs a text column", 4),
    ("lr = 'abc'", "cannot compare numeric column 'lr' with literal 'abc' at position 6", 6),
    ("status = 3", "cannot compare text column 'status' with literal 3", 10),
    ("batch_size = true", "cannot compare numeric column 'batch_size'", 14),
    ("converged = 1", "cannot compare boolean column 'converged' with literal 1 at position 13; use true or false", 13),
    ("batch_size in (1, 'x')", "cannot compare numeric column 'batch_size' with literal 'x'", 19),
    ("lr = 0.1 and lr in ('a')", "cannot compare numeric column 'lr'", 21),
    ("lr > 1 ; drop", "';' at position 8", 8),
    ("lr = 0.1 ünd", "unexpected character 'ü'", 10),
]


@pytest.mark.parametrize(("expr", "message", "position"), ERRORS)
def test_error_messages(expr, message, position):
    with pytest.raises(WhereError) as info:
        parse_where(expr, COLUMNS)
    err = info.value
    assert isinstance(err, ValueError)
    assert message in str(err)
    assert "\n" not in str(err)
    assert err.position == position


def test_unknown_column_lists_valid_columns():
    with pytest.raises(WhereError) as info:
        parse_where("learning_rate > 0.1", COLUMNS)
    msg = str(info.value)
    assert "unknown column 'learning_rate'" in msg
    assert "valid columns: batch_size, converged, error, id, lr, optimizer, status, svag_l" in msg


def test_first_error_by_position_is_reported():
    # the ')' at position 21 comes before the ';' and '--' later in the string
    with pytest.raises(WhereError, match=r"unbalanced '\)' at position 21"):
        parse_where("status = 'completed'); drop table runs; --", COLUMNS)


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(WhereError, match="nested too deeply"):
        parse_where("(" * 500 + "lr > 1" + ")" * 500, COLUMNS)
    with pytest.raises(WhereError, match="nested too deeply"):
        parse_where("not " * 500 + "lr > 1", COLUMNS)
    assert parse_where("(" * 30 + "lr > 1" + ")" * 30, COLUMNS) is not None


def test_too_long_and_wrong_type():
    with pytest.raises(WhereError, match="too long"):
        parse_where("lr > 1 or " * 2000 + "lr > 1", COLUMNS)
    with pytest.raises(TypeError):
        parse_where(None, COLUMNS)  # type: ignore[arg-type]


def test_keywords_are_case_insensitive_columns_are_not():
    a = str(parse_where("lr IS NOT NULL AND status NOT LIKE 'x%' OR NOT lr IN (1)", COLUMNS))
    b = str(parse_where("lr is not null and status not like 'x%' or not lr in (1)", COLUMNS))
    assert a == b


# ------------------------------------------ integers beyond 64 bits, JSON and timestamp columns (issue 10)

import datetime as dt  # noqa: E402

from db.types import PortableJSON, UTCDateTime  # noqa: E402

typed = sa.Table(
    "typed_runs",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("config", PortableJSON),
    sa.Column("started_at", UTCDateTime, nullable=True),
)
TYPED = {c.name: c for c in typed.c}


@pytest.fixture(scope="module")
def typed_engine():
    eng = sa.create_engine("sqlite://")
    typed.metadata.create_all(eng)
    utc = dt.timezone.utc
    with eng.begin() as conn:
        conn.execute(typed.insert(), [
            {"id": 1, "config": {"optimizer": {"name": "sgd"}}, "started_at": dt.datetime(2024, 5, 1, 12, tzinfo=utc)},
            {"id": 2, "config": {"optimizer": {"name": "adam"}}, "started_at": dt.datetime(2024, 6, 1, tzinfo=utc)},
        ])
        conn.execute(typed.insert().values(id=3, config=sa.null(), started_at=None))
    yield eng
    eng.dispose()


def typed_ids(engine, expr: str) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(typed.c.id).where(parse_where(expr, TYPED))).scalars())


@pytest.mark.parametrize("expr", ["lr = 99999999999999999999999", "batch_size in (1, 9223372036854775808)",
                                  "lr > -9223372036854775809"])
def test_integers_beyond_64_bits_are_refused(expr):
    with pytest.raises(WhereError, match="out of range: integers must fit in 64 bits"):
        parse_where(expr, COLUMNS)
    assert parse_where("batch_size < 9223372036854775807 and lr > 1e30", COLUMNS) is not None


@pytest.mark.parametrize("expr, needle", [
    ("config like '%'", "'like' at position 8 needs a text column, but 'config' is json"),
    ("config not like '%sgd%'", "needs a text column, but 'config' is json"),
    ("config = '{}'", "'=' at position 8 does not apply to JSON column 'config'"),
    ("config != 'x'", "does not apply to JSON column 'config'"),
    ("config in ('a')", "'in' at position 8 does not apply to JSON column 'config'"),
])
def test_json_columns_take_only_null_tests(typed_engine, expr, needle):
    with pytest.raises(WhereError) as info:
        parse_where(expr, TYPED)
    assert needle in str(info.value) and "typed columns" in str(info.value)
    assert typed_ids(typed_engine, "config is not null") == {1, 2}
    assert typed_ids(typed_engine, "config = null") == {3}


def test_timestamps_compare_with_iso_strings(typed_engine):
    assert typed_ids(typed_engine, "started_at > '2024-05-15'") == {2}
    assert typed_ids(typed_engine, "started_at <= '2024-05-01T12:00:00Z'") == {1}
    assert typed_ids(typed_engine, "started_at < '2024-05-01T13:00:00+02:00'") == set()  # 11:00 UTC
    assert typed_ids(typed_engine, "started_at < '2024-05-01T15:00:00+02:00'") == {1}  # 13:00 UTC
    assert typed_ids(typed_engine, "started_at in ('2024-06-01')") == {2}
    assert typed_ids(typed_engine, "started_at is null") == {3}
    for expr, needle in (("started_at > 'yesterday'", "use an ISO date or time"),
                         ("started_at > 5", "cannot compare datetime column 'started_at' with literal 5"),
                         ("started_at like '2024%'", "needs a text column, but 'started_at' is datetime")):
        with pytest.raises(WhereError, match=needle):
            parse_where(expr, TYPED)
