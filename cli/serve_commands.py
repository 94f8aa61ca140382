"""`sweeper serve`: the live dashboard over the results database (sweeper.serve)."""

from __future__ import annotations

import re
import socket
from typing import Annotated

import typer

from cli.output import fail
from cli.results_commands import engine_or_exit

TOKEN_RE = re.compile(r"[A-Za-z0-9._~-]{16,256}")


def register(app: typer.Typer) -> None:
    app.command()(serve)


def check_bind(host: str, port: int, token: str | None) -> None:
    """One line and exit 2 for a bind the dashboard refuses: a port out of range, a malformed token, or a
    non-loopback host without a token."""
    from sweeper.serve.security import is_loopback

    if not 0 < port < 65536:
        fail(f"--port: {port} is not a TCP port (1–65535)")
    if token is not None and not TOKEN_RE.fullmatch(token):
        fail("--token: use 16–256 characters from A–Z a–z 0–9 . _ ~ - (e.g. python -c 'import secrets; "
             "print(secrets.token_urlsafe(24))')")
    if not is_loopback(host) and token is None:
        fail(f"--host {host}: a non-local bind needs --token (or SWEEPER_SERVE_TOKEN): anyone who reaches "
             f"{host}:{port} could read the database")


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (as uvicorn binds one: IPv6 for an address with ':', SO_REUSEADDR), or one
    line and exit 2 when it cannot be bound (a port in use, an address not on this machine)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        fail(f"--port {port}: cannot listen on {host}: {(exc.strerror or str(exc)).lower()}; choose another --port")
    return sock


def allowed_hosts(host: str, token: str | None) -> list[str] | None:
    """The Host names a bind to ``host`` answers: any when a token guards every request (or off loopback, which
    needs one); else the loopback names and the bound address itself (``--host 127.0.0.2`` is reached by that
    name), so a page elsewhere cannot reach the dashboard through DNS rebinding."""
    from sweeper.serve.security import LOOPBACK_NAMES, is_loopback

    if token or not is_loopback(host):
        return None
    return [*LOOPBACK_NAMES, "*.localhost", host.lower()]


def serve(
    db: Annotated[str | None, typer.Option("--db", envvar="SWEEPER_DB", show_envvar=True,
                                           help="Database URL (default sqlite:///sweeper.db).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind; anything but loopback needs --token.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8765,
    token: Annotated[str | None, typer.Option("--token", envvar="SWEEPER_SERVE_TOKEN", show_envvar=True,
                                              help="Require this token on every request (needed off loopback).")]
    = None,
) -> None:
    """A live web dashboard of the studies: runs, trajectories, scaling paths, diagnostics, verdicts."""
    check_bind(host, port, token)
    engine = engine_or_exit(db)
    import uvicorn

    from sweeper.serve import create_app

    sock = listening_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    suffix = f"?token={token}" if token else ""
    typer.echo(f"sweeper serve: http://{shown}:{port}/{suffix}  (Ctrl-C stops)")
    app = create_app(engine, token=token, allowed_hosts=allowed_hosts(host, token))
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
