"""`sweeper trial` and `sweeper launch --dry-run` as a user runs them."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from cli.main import app
from tests.helpers import REPO_ROOT

runner = CliRunner()
SPEC = """
name = "cli-test"
seeds = [0, 1]
[data]
name = "linreg"
n_train = 512
dim = 4
[model]
name = "linear"
[optimizer]
name = "sgd"
[sweep]
batch_size = [8]
lr = [0.1, 0.2]
svag_l = [1, 2]
[budget]
epochs = 1
[log]
every_epochs = 0.5
"""


def write(tmp_path, text=SPEC):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_dry_run_json_lists_the_expanded_trials(tmp_path):
    result = runner.invoke(app, ["launch", str(write(tmp_path)), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 2 * 2 * 2
    assert {"trial_id", "batch_size", "lr", "svag_l", "seed"} <= set(rows[0])
    assert len({r["trial_id"] for r in rows}) == 8


def test_trial_json_runs_one_trial_in_the_foreground(tmp_path):
    spec = write(tmp_path)
    rows = json.loads(runner.invoke(app, ["launch", str(spec), "--dry-run", "--json"]).stdout)
    result = runner.invoke(app, ["trial", str(spec), "--trial", rows[3]["trial_id"], "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "completed" and out["config"]["trial_id"] == rows[3]["trial_id"]
    assert [p["epoch"] for p in out["points"]] == [0, 0.5, 1.0]
    assert out["points"][-1]["step"] == 64 * 2  # l = 2: twice the raw steps


def test_bad_spec_is_one_line_and_exit_2(tmp_path):
    spec = write(tmp_path, SPEC.replace("lr = [0.1, 0.2]", "lr = [0.1, -2]"))
    result = runner.invoke(app, ["launch", str(spec), "--dry-run"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: sweep.lr[1]: Input should be greater than 0 (got -2)"


def test_unknown_trial_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["trial", str(write(tmp_path)), "--trial", "t000"])
    assert result.exit_code == 2 and "no trial 't000'" in result.stderr


def test_python_m_cli_runs():
    out = subprocess.run([sys.executable, "-m", "cli", "--help"], capture_output=True, text=True, cwd=REPO_ROOT,
                         check=False)
    assert out.returncode == 0 and "launch" in out.stdout
