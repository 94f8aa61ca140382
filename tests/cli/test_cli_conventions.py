"""Typer conventions (issue 11): help on every parameter, choices listed by ``--help``, ``--json`` on every command,
launch/resume sharing their options, and every usage error one line on stderr with exit 2."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def leaf_commands() -> dict[str, typer.core.TyperCommand]:
    """``"db current"`` → its Click command, for every command that runs something."""
    found = {}

    def walk(command, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            found[" ".join(path)] = command
            return
        for name, sub in subcommands.items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


NO_JSON = {"serve"}
"""Commands whose output is not a result: ``serve`` runs a web server (its output is the page)."""


def test_the_command_set():
    assert {"launch", "resume", "trial", "studies", "runs", "show", "export", "check", "verdicts", "report",
            "calibrate", "db upgrade", "db current"} <= set(leaf_commands())


@pytest.mark.parametrize("name", sorted(leaf_commands()))
def test_every_parameter_has_help_and_every_command_has_json(name):
    command = leaf_commands()[name]
    assert command.help, name
    for param in command.params:
        assert getattr(param, "help", None), f"sweeper {name}: {param.name} has no help"
    assert name in NO_JSON or any("--json" in p.opts for p in command.params), f"sweeper {name} has no --json"


def test_launch_and_resume_share_their_cluster_options():
    commands = leaf_commands()
    launch = {p.name: p for p in commands["launch"].params}
    resume = {p.name: p for p in commands["resume"].params}
    shared = ["db", "address", "cpus_per_trial", "gpus_per_trial", "max_concurrent", "max_failures", "pack", "json_out"]
    for name in shared:
        assert (launch[name].opts, launch[name].help, launch[name].default) == \
               (resume[name].opts, resume[name].help, resume[name].default), name


@pytest.mark.parametrize("args, choices", [
    (["export", "--help"], "csv|parquet"),
    (["check", "--help"], "lsr|sqrt-rule|svag|nsr|intrinsic-lr|noise-rank|limit-cycles|sharpness|all"),
    (["verdicts", "--help"], "lsr|sqrt-rule|svag"),
    (["calibrate", "--help"], "holds|fails|borderline"),
])
def test_help_lists_the_choices(args, choices):
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and choices in result.stdout


@pytest.mark.parametrize("args, needle", [
    (["runs"], "error: sweeper runs: Missing argument 'STUDY'."),
    (["studies", "--bogus"], "error: sweeper studies: No such option: --bogus"),
    (["nocommand"], "error: sweeper: No such command 'nocommand'."),
    (["export", "s", "-o", "x", "--format", "xlsx"], "Invalid value for '--format': 'xlsx' is not one of 'csv', "
                                                     "'parquet'."),
    (["check", "lsr"], "error: sweeper check: Missing argument 'STUDY'."),
    (["check", "lsr", "s", "--tolerance", "small"], "Invalid value for '--tolerance': Input should be a valid number"),
    (["calibrate", "lsr", "--replicates", "0"], "Invalid value for '--replicates' / '-r': Input should be greater "
                                                "than or equal to 1 (see `sweeper calibrate --help`)"),
    (["calibrate", "lsr", "--case", "maybe"], "'maybe' is not one of 'holds', 'fails', 'borderline'."),
    (["db", "current", "--json=x"], "error: Option '--json' does not take a value."),
    (["trial", "spec.toml"], "error: sweeper trial: Missing option '--trial'."),
])
def test_usage_errors_are_one_line_exit_2(args, needle):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ") and needle in result.stderr, result.stderr


@pytest.mark.parametrize("args", [[], ["db"]])
def test_a_missing_command_prints_the_usage_and_exits_2(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stderr.startswith("Usage: sweeper") and result.stdout == ""


def test_a_failed_write_is_a_runtime_error_exit_1(tmp_path, monkeypatch, known_db):
    import pandas as pd

    def full_disk(self, path, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    result = runner.invoke(app, ["export", "lin", "--db", known_db, "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == f"error: -o: cannot write {tmp_path / 'runs.csv'}: No space left on device\n"
