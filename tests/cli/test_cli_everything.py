"""Every stored result is reachable from the CLI (issue 11): ``show`` with config and diagnostics, ``export`` with
diagnostics and verdicts, ``verdicts``, ``--json`` shapes, and the ``--where`` warning on never-measured columns."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.cli.conftest import NOISE_PAYLOADS

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def run_ids(url: str) -> list[int]:
    return [r["run_id"] for r in json.loads(invoke("runs", "lin", "--db", url, "--json").stdout)]


def test_show_json_has_the_full_config_and_diagnostic_summaries(known_db):
    result = invoke("show", str(run_ids(known_db)[0]), "--db", known_db, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert set(shown) == {"run", "points", "diagnostics"}
    config = shown["run"]["config"]
    assert config["data"]["name"] == "linreg" and config["data"]["n_train"] == 2048 and config["budget"]["epochs"] == 1
    noise, sharpness = shown["diagnostics"]
    assert noise == {"kind": "noise", "count": 3, "first_step": 0, "last_step": 20, "value": 1.75,
                     "summary": {"rank": 3, "top": 1.0}, "payload": {"dtype": "float64", "shape": [3]}}
    assert sharpness["kind"] == "sharpness" and sharpness["count"] == 1 and sharpness["payload"] is None
    assert [p["step"] for p in shown["points"]] == [0, 10, 20]


def test_show_payloads_gives_every_record(known_db):
    shown = json.loads(invoke("show", str(run_ids(known_db)[0]), "--payloads", "--db", known_db, "--json").stdout)
    records = shown["diagnostics"][0]["records"]
    assert [(r["step"], r["payload"]) for r in records] == [(s, p) for s, p in NOISE_PAYLOADS.items()]
    assert "records" not in json.loads(invoke("show", str(run_ids(known_db)[0]), "--db", known_db,
                                              "--json").stdout)["diagnostics"][0]


def test_show_text_prints_config_and_diagnostics(known_db):
    first, second = run_ids(known_db)[:2]
    text = invoke("show", str(first), "--db", known_db)
    assert text.exit_code == 0, text.output
    assert "data.n_train" in text.stdout and "budget.epochs" in text.stdout and "rank=3" in text.stdout
    assert "float64 (3,)" in text.stdout
    with_payloads = invoke("show", str(first), "--payloads", "--db", known_db)
    assert "noise step 10: value=3.5" in with_payloads.stdout and "[2.0, 1.0, 0.5]" in with_payloads.stdout
    assert "none recorded" in invoke("show", str(second), "--db", known_db).stdout


def test_show_by_run_id_checks_the_study_given(known_db):
    first = run_ids(known_db)[0]
    assert invoke("show", str(first), "--study", "lin", "--db", known_db).exit_code == 0
    wrong = invoke("show", str(first), "--study", "nope", "--db", known_db)
    assert wrong.exit_code == 2 and wrong.stderr.strip() == "error: no study named 'nope'; known studies: lin"


def test_verdicts_lists_the_history(known_db):
    result = invoke("verdicts", "lin", "--db", known_db, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["check"], r["verdict"], r["statistic"], r["tolerance"]["relative"], r["provisional"]) for r in rows] == [
        ("lsr", "CONFIRMED", 0.02, 0.05, None), ("svag", "REFUTED", 0.4, 0.1, None),
        ("lsr", "INCONCLUSIVE", 0.03, 0.05, "REFUTED")]
    assert all(r["created_at"] and r["parameters"] == {"metric": "test_loss"} for r in rows)
    only_svag = json.loads(invoke("verdicts", "lin", "--check", "svag", "--db", known_db, "--json").stdout)
    assert [r["verdict"] for r in only_svag] == ["REFUTED"]
    text = invoke("verdicts", "lin", "--db", known_db)
    assert text.exit_code == 0 and "INCONCLUSIVE" in text.stdout and "provisional" in text.stdout
    assert "relative=0.05, alpha=0.05" in text.stdout and "a quarter" not in text.stdout


def test_verdicts_of_an_unknown_study_is_one_line(known_db):
    result = invoke("verdicts", "nope", "--db", known_db)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "no study named 'nope'" in result.stderr


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_diagnostics_and_verdicts(known_db, tmp_path, fmt):
    result = invoke("export", "lin", "--db", known_db, "--format", fmt, "-o", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["format"] == fmt
    assert [(f["table"], f["rows"]) for f in written["files"]] == [("runs", 3), ("points", 9), ("diagnostics", 4),
                                                                  ("verdicts", 3)]
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    diagnostics = read(tmp_path / f"diagnostics.{fmt}")
    assert "payload" not in diagnostics.columns and {"summary.rank", "summary.top"} <= set(diagnostics.columns)
    assert diagnostics[diagnostics.kind == "noise"].value.tolist() == [6.0, 3.5, 1.75]
    verdicts = read(tmp_path / f"verdicts.{fmt}")
    assert verdicts.provisional.tolist()[2] == "REFUTED"
    assert json.loads(verdicts.tolerance[0])["relative"] == 0.05 and json.loads(verdicts.evidence[0])["missing"] == []


def test_export_payloads_as_json_lists(known_db, tmp_path):
    assert invoke("export", "lin", "--db", known_db, "--payloads", "-o", str(tmp_path)).exit_code == 0
    noise = pd.read_csv(tmp_path / "diagnostics.csv").query("kind == 'noise'")
    assert [json.loads(p) for p in noise.payload] == list(NOISE_PAYLOADS.values())


def test_where_on_a_never_measured_column_warns(known_db):
    result = invoke("runs", "lin", "--db", known_db, "--json", "--where", "final_test_acc > 0.9")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("warning: --where: final_test_acc is NULL")


@pytest.mark.parametrize("where", ["final_test_loss > 100", "final_test_acc is null", "status = 'final_test_acc'"])
def test_where_does_not_warn_when_the_column_is_measured_or_not_named(known_db, where):
    result = invoke("runs", "lin", "--db", known_db, "--json", "--where", where)
    assert result.exit_code == 0 and result.stderr == ""


def test_db_upgrade_json(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = invoke("db", "upgrade", "--db", url, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["before"] is None and shown["after"] == json.loads(
        invoke("db", "current", "--db", url, "--json").stdout)["head"]


def test_report_json_names_the_page_and_every_verdict(known_db, tmp_path):
    from sweeper.names import CHECK_NAMES

    result = invoke("report", "lin", "--db", known_db, "-o", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["study"] == "lin" and shown["index"] == str(tmp_path / "index.html")
    assert (tmp_path / "index.html").is_file()
    assert [v["check"] for v in shown["verdicts"]] == list(CHECK_NAMES)
    assert {v["verdict"] for v in shown["verdicts"]} <= {"CONFIRMED", "REFUTED", "INCONCLUSIVE"}
