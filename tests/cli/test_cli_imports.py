"""Commands that do not train import neither torch nor ray (issue 11): each group of commands runs in one fresh
interpreter (imports only accumulate, so a module absent after the last command was imported by none), and the
first command that brings in a forbidden module is named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT

PROBE = """
import json, sys
from typer.testing import CliRunner
from cli.main import app
forbidden, commands = json.loads(sys.argv[1])
seen = {}
for args in commands:
    result = CliRunner().invoke(app, args)
    heavy = [m for m in forbidden if m in sys.modules]
    seen[" ".join(args)] = {"exit": result.exit_code, "output": result.output[-300:], "heavy": heavy}
    if heavy:
        break
print(json.dumps(seen))
"""


def run_probe(forbidden: list[str], commands: list[list[str]]) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps([forbidden, commands])], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": ""},
                          check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_light(seen: dict, n_commands: int) -> None:
    for command, outcome in seen.items():
        assert outcome["heavy"] == [], f"`sweeper {command}` imported {outcome['heavy']}"
        assert outcome["exit"] == 0, (command, outcome["output"])
    assert len(seen) == n_commands


COMMANDS = ("launch", "resume", "trial", "studies", "runs", "show", "export", "check", "verdicts", "report",
            "calibrate", "serve", "db")
HELP = [["--help"], *([c, "--help"] for c in COMMANDS), ["db", "current", "--help"]]


def test_help_imports_no_torch_ray_pandas_or_database():
    forbidden = ["torch", "ray", "pandas", "numpy", "sqlalchemy", "matplotlib", "scipy"]  # typer imports pydantic
    assert_light(run_probe(forbidden, HELP), len(HELP))


def test_reading_commands_import_no_torch_ray_or_plotting(known_db, tmp_path):
    commands = [[*c, "--db", known_db] for c in (["studies"], ["runs", "lin"], ["runs", "lin", "--json"],
                                                  ["show", "1"], ["show", "1", "--payloads", "--json"],
                                                  ["verdicts", "lin"], ["export", "lin", "-o", str(tmp_path)],
                                                  ["db", "current"])]
    assert_light(run_probe(["torch", "ray", "matplotlib", "scipy"], commands), len(commands))


def test_listings_import_no_pandas_or_alembic(known_db):
    """`studies`, `runs` and `show` read plain rows (db.rows) of a database at head: neither pandas nor Alembic, and
    numpy only to decode a diagnostic payload (run 2 has none, run 1 has some)."""
    light = [[*c, "--db", known_db] for c in (["studies"], ["studies", "--json"], ["runs", "lin"],
                                              ["runs", "lin", "--where", "final_test_acc > 0.5", "--json"],
                                              ["show", "2"], ["show", "2", "--json"])]
    assert_light(run_probe(["pandas", "numpy", "alembic", "torch", "ray"], light), len(light))
    payloads = [[*c, "--db", known_db] for c in (["show", "1"], ["show", "1", "--payloads", "--json"])]
    assert_light(run_probe(["pandas", "alembic", "torch", "ray"], payloads), len(payloads))


def test_check_imports_no_torch_ray_or_plotting(known_db):
    commands = [["check", "all", "lin", "--no-store", "--db", known_db]]
    assert_light(run_probe(["torch", "ray", "matplotlib"], commands), 1)


def test_dry_run_imports_no_torch_or_ray():
    commands = [["launch", str(REPO_ROOT / "examples" / "quickstart.toml"), "--dry-run", "--json"]]
    assert_light(run_probe(["torch", "ray", "pandas", "sqlalchemy"], commands), 1)


@pytest.mark.parametrize("args", [["--help"], ["studies", "--help"]])
def test_the_module_entry_point_runs(args):
    done = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.startswith("Usage: sweeper"), done.stderr
