"""Every bad input is one line on stderr, `error: …`, exit 2, no traceback, and nothing written (issue 10).

Each case runs against a SQLite database holding a study; afterwards every file in the database's folder is
byte-identical. `launch` is never reached: ``launch_study``/``resume_study`` are replaced by functions that fail
the test, so a refusal that does not happen shows up as that failure, not as a Ray run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from db.engine import open_db
from db.writer import ensure_runs, ensure_study
from sweeper.expand import expand
from tests.helpers import make_spec

runner = CliRunner()

SPEC = """
name = "bad-input"
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
[budget]
epochs = 1
[log]
every_epochs = 0.5
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A folder holding sweeper.db with study 'res' (4 pending runs), and nothing else."""
    folder = tmp_path / "db"
    url = f"sqlite:///{folder / 'sweeper.db'}"
    spec = make_spec(name="res", seeds=[0, 1], sweep={"batch_size": [8], "lr": [0.05, 0.2]})
    engine = open_db(url, create=True)
    with Session(engine) as session, session.begin():
        study = ensure_study(session, spec.name, spec.model_dump(mode="json"))
        ensure_runs(session, study, expand(spec))
    engine.dispose()
    return folder


@pytest.fixture(autouse=True)
def no_launch(monkeypatch):
    import sweeper.launch.runner as runner_module

    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached the launcher")

    monkeypatch.setattr(runner_module, "launch_study", refuse)
    monkeypatch.setattr(runner_module, "resume_study", refuse)


def snapshot(folder: Path) -> dict[str, str]:
    """Hashes of the folder's files. SQLite's -wal/-shm side files of a connection still open in this process
    (the CLI runs in-process) are left out when the WAL is empty: an empty WAL holds no write."""
    files = {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}
    wal = files.get("sweeper.db-wal")
    if wal is not None and wal.stat().st_size == 0:
        files.pop("sweeper.db-wal")
        files.pop("sweeper.db-shm", None)
    return {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in files.items()}


def assert_one_line(result, needle: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr, result.stderr
    assert result.stdout == "", result.stdout


def run_against(db: Path, args: list[str], needle: str, with_db: bool = True):
    before = snapshot(db)
    url = f"sqlite:///{db / 'sweeper.db'}"
    result = runner.invoke(app, [*args, "--db", url] if with_db else args)
    assert_one_line(result, needle)
    assert snapshot(db) == before, "the database folder changed"
    return result


def write_spec(tmp_path: Path, text: str = SPEC, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------ specs

BAD_SPECS = [
    ("epochs = 1\n", "epochs = inf\n", "budget.epochs: Input should be a finite number (got inf)"),
    ("epochs = 1\n", "epochs = nan\n", "budget.epochs: Input should be a finite number (got nan)"),
    ("lr = [0.1, 0.2]", "lr = [inf]", "sweep.lr[0]: Input should be a finite number (got inf)"),
    ("lr = [0.1, 0.2]", "lr = [0.1, nan]", "sweep.lr[1]: Input should be a finite number (got nan)"),
    ("epochs = 1\n", "epochs = 1e300\n", "budget.epochs: a trial would take 6.4e+301 raw steps"),
    ("dim = 4", "dim = 1e8", "data.dim: Input should be less than or equal to 1000000"),
    ("every_epochs = 0.5", "every_epochs = 1e-9", "log.every_epochs: 1e-09 asks for 1 000 000 001 points per run; "
                                                  "the limit is 1 000 000"),
    ("batch_size = [8]", "batch_size = [true]", "sweep.batch_size[0]: should be a number, not a boolean (got true)"),
    ("seeds = [0, 1]", "seeds = [1e20]", "seeds[0]: Input should be less than or equal to 2147483647"),
    ("seeds = [0, 1]", "seeds = [100000000000000000000]", "seeds[0]: Input should be less than or equal to"),
    ("seeds = [0, 1]", "seeds = []", "seeds: empty list (give at least one value)"),
    ("seeds = [0, 1]", "seeds = [0, 0]", "seeds: 0 is given twice, at [0] and [1] (list each value once)"),
    ("lr = [0.1, 0.2]", "lr = [0.05, 0.05]", "sweep.lr: 0.05 is given twice, at [0] and [1]"),
    ("lr = [0.1, 0.2]", "lr = ['0.1']", "sweep.lr[0]: should be a number, not a string"),
]


@pytest.mark.parametrize("old, new, needle", BAD_SPECS, ids=[b[1].strip() for b in BAD_SPECS])
@pytest.mark.parametrize("dry_run", [False, True], ids=["launch", "dry-run"])
def test_bad_spec_values(db, tmp_path, old, new, needle, dry_run):
    assert SPEC.count(old) == 1
    spec = write_spec(tmp_path, SPEC.replace(old, new))
    run_against(db, ["launch", str(spec), *(["--dry-run"] if dry_run else [])], f"error: {needle}")


def test_a_4_million_trial_grid_is_refused_from_its_axes(db, tmp_path):
    lrs = ", ".join(f"{0.001 * (i + 1):.4f}" for i in range(100))
    wds = ", ".join(f"{1e-5 * i:.6f}" for i in range(100))
    text = SPEC.replace("seeds = [0, 1]", f"seeds = {list(range(400))}").replace(
        "lr = [0.1, 0.2]", f"lr = [{lrs}]\nweight_decay = [{wds}]")
    spec = write_spec(tmp_path, text)
    message = ("error: sweep: the study expands to 4 000 000 trials (100 lr × 100 weight_decay × 400 seeds); "
               "the limit is 10 000 (shrink the grid, or raise it with --max-trials)")
    for extra in ([], ["--dry-run"]):
        run_against(db, ["launch", str(spec), *extra], message)
    run_against(db, ["launch", str(spec), "--dry-run", "--max-trials", "100000"], "limit is 100 000")
    run_against(db, ["trial", str(spec), "--trial", "0"], "expands to 4 000 000 trials", with_db=False)


def test_max_trials_admits_a_grid_within_it(tmp_path):
    spec = write_spec(tmp_path)
    assert runner.invoke(app, ["launch", str(spec), "--dry-run", "--json", "--max-trials", "4"]).exit_code == 0
    result = runner.invoke(app, ["launch", str(spec), "--dry-run", "--max-trials", "3"])
    assert_one_line(result, "the study expands to 4 trials (2 lr × 2 seeds); the limit is 3")


@pytest.mark.parametrize("kind", ["binary", "directory", "deep", "missing"])
def test_spec_paths_that_are_not_study_files(db, tmp_path, kind):
    if kind == "binary":
        path, needle = tmp_path / "spec.toml", "is not a text file"
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "directory":
        path, needle = tmp_path, "is a directory"
    elif kind == "deep":
        path, needle = write_spec(tmp_path, "a = " + "[" * 50_000 + "]" * 50_000), "nested too deeply"
    else:
        path, needle = tmp_path / "nope.toml", "file not found"
    for command in (["launch", str(path)], ["launch", str(path), "--dry-run"]):
        run_against(db, command, needle)
    run_against(db, ["trial", str(path), "--trial", "0"], needle, with_db=False)


# ------------------------------------------------------------------------------------------------ options


@pytest.mark.parametrize("args, needle", [
    (["--cpus-per-trial", "-1"], "error: --cpus-per-trial: must be a finite number ≥ 0 (got -1)"),
    (["--cpus-per-trial", "nan"], "error: --cpus-per-trial: must be a finite number ≥ 0 (got nan)"),
    (["--gpus-per-trial", "inf"], "error: --gpus-per-trial: must be a finite number ≥ 0 (got inf)"),
    (["--gpus-per-trial", "1.5"], "error: --gpus-per-trial: above 1 it must be a whole number of GPUs"),
    (["--max-concurrent", "0"], "error: --max-concurrent: must be ≥ 1 (got 0)"),
    (["--max-failures", "-1"], "error: --max-failures: must be ≥ 0 (got -1)"),
    (["--max-trials", "0"], "error: --max-trials: must be ≥ 1 (got 0)"),
])
@pytest.mark.parametrize("dry_run", [False, True], ids=["launch", "dry-run"])
def test_impossible_launch_options(db, tmp_path, args, needle, dry_run):
    spec = write_spec(tmp_path)
    run_against(db, ["launch", str(spec), *args, *(["--dry-run"] if dry_run else [])], needle)


def test_impossible_resume_options(db):
    run_against(db, ["resume", "res", "--cpus-per-trial", "-1"], "error: --cpus-per-trial: must be a finite")


def test_storage_that_cannot_be_a_folder(db, tmp_path):
    spec = write_spec(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x")
    run_against(db, ["launch", str(spec), "--storage", str(afile)], f"error: --storage: {afile} exists and is not")
    run_against(db, ["launch", str(spec), "--storage", str(afile / "sub")], "error: --storage: cannot create")
    run_against(db, ["launch", str(spec), "--storage", "s3://bucket/x"], "error: --storage: s3://bucket/x is a URI")


# ------------------------------------------------------------------------------------------------ --db


@pytest.mark.parametrize("url, needle", [
    ("notaurl", "error: database URL 'notaurl' is not a URL; use sqlite:///PATH or postgresql://"),
    ("postgress://u:s3cr3t@127.0.0.1/db",
     "unsupported scheme 'postgress' (did you mean 'postgresql'?); sweeper supports sqlite:///PATH or postgresql://"),
    ("mysql://u:s3cr3t@127.0.0.1/db", "unsupported scheme 'mysql'; sweeper supports sqlite:///PATH or postgresql://"),
    ("postgresql+asyncpg://u@127.0.0.1/db", "unsupported scheme 'postgresql+asyncpg'"),
])
@pytest.mark.parametrize("command", [["studies"], ["runs", "res"], ["show", "1"], ["export", "res", "-o", "OUT"],
                                     ["check", "lsr", "res"], ["report", "res", "-o", "OUT"], ["resume", "res"],
                                     ["launch", "SPEC"], ["db", "upgrade"], ["db", "current"]])
def test_unusable_database_urls(tmp_path, url, needle, command):
    spec = write_spec(tmp_path)
    args = [str(spec) if a == "SPEC" else str(tmp_path / "out") if a == "OUT" else a for a in command]
    result = runner.invoke(app, [*args, "--db", url])
    assert_one_line(result, needle)
    assert "s3cr3t" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_database(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(bytes(range(256)) * 16)
    before = junk.read_bytes()
    for command in (["studies"], ["runs", "res"], ["db", "current"]):
        result = runner.invoke(app, [*command, "--db", f"sqlite:///{junk}"])
        assert_one_line(result, "file is not a database")
    assert junk.read_bytes() == before


def test_a_sqlite_file_whose_folder_cannot_exist(tmp_path):
    from db.engine import DatabaseURLError, make_engine

    afile = tmp_path / "afile"
    afile.write_text("x")
    url = f"sqlite:///{afile / 'sweeper.db'}"
    with pytest.raises(DatabaseURLError, match=f"cannot create the folder {afile} for the SQLite file"):
        make_engine(url)  # what `launch` opens (create=True) before anything else
    result = runner.invoke(app, ["db", "upgrade", "--db", url])
    assert_one_line(result, f"error: cannot upgrade {url}: DatabaseURLError: database URL {url}: cannot create")
    assert afile.read_text() == "x"


# ---------------------------------------------------------------------------------------- reading commands


@pytest.mark.parametrize("args, needle", [
    (["show", "99999999999999999999999"], "error: no run with id 99999999999999999999999"),
    (["show", "²"], "error: no run with trial id '²'"),
    (["runs", "res", "--where", "lr = 99999999999999999999999"], "integer 99999999999999999999999 at position 6 is "
                                                                  "out of range"),
    (["runs", "res", "--where", "final_test_loss < 99999999999999999999999"], "out of range"),
    (["runs", "res", "--where", "config like '%'"], "'like' at position 8 needs a text column, but 'config' is json"),
    (["runs", "res", "--where", "config = 'x'"], "does not apply to JSON column 'config'"),
    (["runs", "res", "--where", "started_at > 'yesterday'"], "use an ISO date or time"),
    (["runs", "res", "--where", "lr > 0; drop table runs"], "error: --where: ';' at position 7 is not allowed"),
    (["check", "lsr", "res", "--tolerance", "nan"], "error: --tolerance: must be a finite number > 0 (got nan)"),
    (["check", "lsr", "res", "--tolerance", "-1"], "error: --tolerance: must be a finite number > 0 (got -1)"),
    (["check", "nope", "res"], "error: sweeper check: Invalid value for 'NAME': 'nope' is not one of 'lsr', "),
    (["export", "res", "--format", "xlsx", "-o", "OUT"], "error: sweeper export: Invalid value for '--format': "
                                                         "'xlsx' is not one of 'csv', 'parquet'"),
    (["export", "nope", "-o", "OUT"], "'nope'"),
])
def test_bad_reading_arguments(db, tmp_path, args, needle):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    run_against(db, args, needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["export", "report"])
def test_output_folders_that_cannot_be_written(db, tmp_path, command):
    afile = tmp_path / "afile"
    afile.write_text("x")
    run_against(db, [command, "res", "-o", str(afile)], f"error: -o: {afile} exists and is not a folder")
    run_against(db, [command, "res", "-o", str(afile / "sub")], f"error: -o: cannot create the folder {afile / 'sub'}")
    if Path("/proc/self").is_dir():
        run_against(db, [command, "res", "-o", "/proc/x"], "error: -o: cannot create the folder /proc/x")
    assert afile.read_text() == "x"


def test_where_on_timestamps_works(db):
    import json

    url = f"sqlite:///{db / 'sweeper.db'}"
    result = runner.invoke(app, ["runs", "res", "--db", url, "--json", "--where", "started_at > '2000-01-01'"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []  # pending runs have not started
    result = runner.invoke(app, ["runs", "res", "--db", url, "--json", "--where", "started_at is null"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 4


def test_trial_index_that_is_not_ascii(tmp_path):
    result = runner.invoke(app, ["trial", str(write_spec(tmp_path)), "--trial", "²"])
    assert_one_line(result, "error: no trial '²'")


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5", "²"])
def test_bad_pack_is_one_line(value, tmp_path):
    from tests.helpers import REPO_ROOT

    out = CliRunner().invoke(app, ["launch", str(REPO_ROOT / "examples" / "quickstart.toml"), "--pack", value,
                                   "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert out.exit_code == 2 and "--pack" in out.output and "Traceback" not in out.output
    assert not (tmp_path / "x.db").exists()

