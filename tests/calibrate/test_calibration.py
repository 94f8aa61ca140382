"""A reduced calibration in the suite: 10 fresh-seed replicates of a holds and a fails case of the cheapest
closed-form checks must give no wrong-way verdict and at least 8 decisive ones (docs/calibration.md has the
full table, from bench/bench_calibration.py)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from sweeper.calibrate.cases import cases_for
from sweeper.calibrate.run import run_case

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("check, name", [("lsr", "holds"), ("lsr", "fails"), ("svag", "holds"), ("svag", "fails")])
def test_reduced_calibration(check, name):
    case = next(c for c in cases_for(check) if c.name == name)
    result = run_case(case, replicates=10)
    assert result.replicates == 10
    assert result.wrong_way == 0.0, result.counts
    assert result.decisive >= 0.8, result.counts


def test_cli_calibrate_json():
    out = CliRunner().invoke(app, ["calibrate", "lsr", "--case", "holds", "--replicates", "1", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert rows[0]["check"] == "lsr" and rows[0]["replicates"] == 1 and rows[0]["truth"] == "holds"


@pytest.mark.parametrize("args, says", [(["calibrate", "sharpness"], "calibrated checks"),
                                        (["calibrate", "lsr", "--case", "nope"], "'--case': 'nope' is not one of")])
def test_cli_calibrate_bad_input_is_one_line_exit_2(args, says):
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 2 and says in out.output and "Traceback" not in out.output
