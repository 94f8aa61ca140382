"""A launch that cannot reach its cluster says so in one line, with the address and `auto` as a hint, before
anything is written (Ray's own connection attempt would wait minutes and end in a traceback)."""

from __future__ import annotations

import pytest
import ray
from typer.testing import CliRunner

from cli.main import app
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("address, says", [("127.0.0.1:1", "no Ray cluster answers at 127.0.0.1:1"),
                                           ("nohostport", "expected HOST:PORT")])
@pytest.mark.parametrize("command", ["launch", "resume"])
def test_an_unreachable_cluster_is_one_line_and_creates_nothing(command, address, says, tmp_path):
    assert not ray.is_initialized()
    db = tmp_path / "x.db"
    target = str(REPO_ROOT / "examples" / "quickstart.toml") if command == "launch" else "quickstart"
    out = CliRunner().invoke(app, [command, target, "--address", address, "--db", f"sqlite:///{db}",
                                   *(["--storage", str(tmp_path / "ray")] if command == "launch" else [])])
    assert out.exit_code == 2 and says in out.output and "auto" in out.output, out.output
    assert len(out.output.strip().splitlines()) == 1 and not db.exists()
    assert not ray.is_initialized()
