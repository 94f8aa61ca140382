"""Who may use the dashboard: loopback binds only, unless a token is set; then every request must carry it.

A request carries the token as ``Authorization: Bearer TOKEN``, as the ``sweeper_token`` cookie (set when a page is
opened once with ``?token=TOKEN``: HttpOnly, SameSite=Strict) or as ``?token=TOKEN``; anything else is 401.
Tokens are compared in constant time. Without a token the app binds to loopback and answers only requests whose
Host is a loopback name (so a web page elsewhere cannot reach it through DNS rebinding).
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import parse_qs

from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "sweeper_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only reaches this machine."""
    if host.lower() in LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), "")


def presented_tokens(scope: Scope) -> list[tuple[str, str]]:
    """(where, token) for each token a request presents: ``header`` (bearer), ``cookie``, ``query``."""
    found = []
    auth = _header(scope, b"authorization")
    if auth.lower().startswith("bearer "):
        found.append(("header", auth[7:].strip()))
    cookies = cookie_parser(_header(scope, b"cookie"))  # lenient: other apps' cookies on this host do not hide it
    if COOKIE in cookies:
        found.append(("cookie", cookies[COOKIE]))
    found += [("query", t) for t in parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])]
    return found


class TokenGate:
    """ASGI middleware: 401 unless the request presents ``token``; a page opened with ``?token=`` sets the
    cookie so that its own requests (scripts, API calls) carry it."""

    def __init__(self, app: ASGIApp, token: str):
        self.app, self.token = app, token.encode()

    def _ok(self, scope: Scope) -> tuple[bool, bool]:
        """(whether a presented token matches, whether one in the query does: then the cookie is set)."""
        valid = [where for where, t in presented_tokens(scope) if hmac.compare_digest(t.encode(), self.token)]
        return bool(valid), "query" in valid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ok, set_cookie = self._ok(scope)
        if not ok:
            response = JSONResponse({"error": "a token is required: open the URL `sweeper serve` printed "
                                              "(…?token=TOKEN) or send the header Authorization: Bearer TOKEN"},
                                    status_code=401)
            await response(scope, receive, send)
            return
        if not set_cookie:
            await self.app(scope, receive, send)
            return
        cookie = f"{COOKIE}={self.token.decode()}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


FRAME_HEADERS = [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'")]


class NoFraming:
    """ASGI middleware: every response forbids being framed by another page (the "run check" button is a write,
    and a page without a token could otherwise be framed and clicked through)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *FRAME_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
