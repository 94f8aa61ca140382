"""The spec shown as TOML: written back from the stored spec, it parses back to that spec."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from sweeper.report.spec_toml import dumps, full_toml, set_fields_toml, without_nulls
from sweeper.spec import load_spec, parse_spec

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.toml"

TRICKY = {
    "name": 'a "quoted" \\ name, é, tab\t, newline\n, DEL\x7f',
    "tiny": 1e-08, "count": 3, "flag": False, "grid": [1.0, 2.5], "empty": [], "nested": [[1, 2], ["a"]],
    "inline": [{"a": 1, "b c": "d"}],
    "data": {"name": "linreg", "dim": 16, "inner": {"k": [0.05]}},
    "only": {"sub": {"z": 1}},
    "odd key": {"a.b": 1},
}


def test_dumps_round_trips_what_a_spec_holds():
    assert tomllib.loads(dumps(TRICKY)) == TRICKY
    assert math.isinf(tomllib.loads(dumps({"x": float("inf")}))["x"])


def test_arrays_are_written_inline_and_tables_under_headers():
    text = dumps(TRICKY)
    assert "grid = [1.0, 2.5]\n" in text and "\n[data]\nname = \"linreg\"\n" in text
    assert "\n[data.inner]\nk = [0.05]\n" in text and "\n[only.sub]\nz = 1" in text and "[only]" not in text


def test_nulls_are_left_out_as_in_a_spec_file():
    spec = {"budget": {"epochs": 4.0, "steps": None}, "l": [{"a": None, "b": 1}]}
    assert tomllib.loads(dumps(without_nulls(spec))) == {"budget": {"epochs": 4.0}, "l": [{"b": 1}]}
    with pytest.raises(TypeError, match="NoneType"):
        dumps({"x": None})


def test_set_fields_are_what_the_file_says_and_parse_back_to_the_stored_spec():
    stored = load_spec(QUICKSTART).model_dump(mode="json")
    text = set_fields_toml(stored)
    assert 'name = "quickstart"' in text and "svag_l = [1.0, 4.0]" in text and "factors = [1.0, 2.0, 4.0, 8.0]" in text
    assert "precision" not in text and "n_test" not in text  # defaults the file does not write
    assert parse_spec(tomllib.loads(text)).model_dump(mode="json") == stored
    assert tomllib.loads(full_toml(stored)) == without_nulls(stored)


def test_a_stored_spec_that_no_longer_validates_has_no_set_fields():
    assert set_fields_toml({"name": "old", "retired_field": 1}) is None
