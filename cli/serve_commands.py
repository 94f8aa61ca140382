"""`sweeper serve`: the live dashboard over the results database (sweeper.serve)."""

from __future__ import annotations

import re
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
    from sweeper.serve.security import LOOPBACK_NAMES, is_loopback

    hosts = None if token else [*LOOPBACK_NAMES, "*.localhost"]
    shown = f"[{host}]" if ":" in host else host
    suffix = f"?token={token}" if token else ""
    typer.echo(f"sweeper serve: http://{shown}:{port}/{suffix}  (Ctrl-C stops)")
    uvicorn.run(create_app(engine, token=token, allowed_hosts=hosts if is_loopback(host) else None), host=host,
                port=port, log_level="warning")
