"""`sweeper serve`: bad binds refused in one line before anything is opened, and a real server that answers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import typer
from starlette.testclient import TestClient
from typer.testing import CliRunner

from cli import serve_commands
from sweeper.serve import create_app
from tests.helpers import REPO_ROOT
from tests.serve.conftest import STUDY
from tests.serve.server import serving

# cli/main.py registers the command; these tests build their own app from serve_commands.register.
APP = ("import sys, typer; from cli import serve_commands; app = typer.Typer(); serve_commands.register(app); "
       "app.command('noop')(lambda: None); app(sys.argv[1:])")


def cli(*args: str):
    app = typer.Typer()
    serve_commands.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `serve` a subcommand
    return CliRunner().invoke(app, ["serve", *args], env={"SWEEPER_SERVE_TOKEN": ""})


@pytest.mark.parametrize(("args", "words"), [
    (["--host", "0.0.0.0"], "--host 0.0.0.0: a non-local bind needs --token"),
    (["--host", "example.org", "--token", "short"], "--token: use 16–256 characters"),
    (["--port", "70000"], "--port: 70000 is not a TCP port"),
])
def test_serve_refuses_bad_binds_in_one_line(args, words, tmp_path):
    result = cli(*args, "--db", f"sqlite:///{tmp_path}/none.db")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("error: ")
    assert not (tmp_path / "none.db").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_serves_the_database(db_file, engine):
    port = free_port()
    env = {**os.environ, "SWEEPER_SERVE_TOKEN": "", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", APP, "serve", "--db", f"sqlite:///{db_file}", "--port",
                             str(port)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        body = None
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    body = json.loads(response.read())
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.1)
        assert body is not None and STUDY in {s["name"] for s in body["studies"]}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/studies", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 400  # a loopback bind answers loopback Host names only
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out


@pytest.mark.parametrize(("host", "url"), [("127.0.0.2", "http://127.0.0.2:8765"), ("::1", "http://[::1]:8765"),
                                           ("localhost", "http://localhost:8765")])
def test_a_loopback_bind_answers_its_own_address_and_no_other_name(engine, host, url):
    client = TestClient(create_app(engine, allowed_hosts=serve_commands.allowed_hosts(host, None)), base_url=url)
    assert client.get("/api/studies").status_code == 200
    assert client.get("/api/studies", headers={"host": "evil.example"}).status_code == 400
    assert serve_commands.allowed_hosts(host, "s3cret-token-0123456789") is None  # the token guards every request


def test_an_ipv6_loopback_bind_serves_its_address(engine):
    try:
        sock = serve_commands.listening_socket("::1", 0)
    except typer.Exit:
        pytest.skip("this machine has no IPv6 loopback")
    with serving(create_app(engine, allowed_hosts=serve_commands.allowed_hosts("::1", None)), sock) as base:
        assert base.startswith("http://[::1]:")
        with urllib.request.urlopen(f"{base}/api/studies", timeout=10) as response:
            assert STUDY in {s["name"] for s in json.loads(response.read())["studies"]}
        request = urllib.request.Request(f"{base}/api/studies", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400


def test_a_port_in_use_is_one_line_and_exit_2(db_file, engine):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("--port", str(port), "--db", f"sqlite:///{db_file}")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert lines[-1].startswith(f"error: --port {port}: cannot listen on 127.0.0.1") and "in use" in lines[-1]
