"""Access: loopback Host names only by default, a token required on every request when set."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from sweeper.serve import create_app
from sweeper.serve.security import COOKIE, is_loopback

TOKEN = "s3cret-token-0123456789"


@pytest.fixture(scope="module")
def gated(engine) -> TestClient:
    return TestClient(create_app(engine, token=TOKEN))


@pytest.mark.parametrize("path", ["/", "/studies/serve-study", "/api/studies", "/api/runs/1",
                                  "/static/plotly.min.js", "/static/study.js", "/nothing"])
def test_every_request_needs_the_token(gated, path):
    response = gated.get(path)
    assert response.status_code == 401 and "token is required" in response.json()["error"]
    assert gated.get(path, headers={"Authorization": "Bearer wrong-token-000000000"}).status_code == 401
    assert gated.post("/api/studies/serve-study/checks/lsr", json={}).status_code == 401


def test_token_by_header_query_or_cookie(engine):
    client = TestClient(create_app(engine, token=TOKEN))
    assert client.get("/api/studies", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    first = client.get(f"/?token={TOKEN}")
    assert first.status_code == 200 and COOKIE in first.headers["set-cookie"]
    assert "HttpOnly" in first.headers["set-cookie"] and "SameSite=Strict" in first.headers["set-cookie"]
    assert client.get("/api/studies").status_code == 200  # the cookie from the first page carries it
    client.cookies.clear()
    assert client.get("/api/studies").status_code == 401


@pytest.mark.parametrize("other", ['prefs={"k": 1}', "greeting=hello world", "path=C:\\tmp", "name=é"])
def test_the_token_cookie_is_read_beside_other_sites_cookies(gated, other):
    """Cookies are shared by every port of a host: another local app's cookie that Python's strict cookie parser
    refuses must not hide the token's."""
    response = gated.get("/api/studies", headers={"cookie": f"{other}; {COOKIE}={TOKEN}".encode()})  # UTF-8
    assert response.status_code == 200, response.text


def test_loopback_only_hosts(engine):
    client = TestClient(create_app(engine, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://127.0.0.1")
    assert client.get("/api/studies").status_code == 200
    assert client.get("/api/studies", headers={"host": "evil.example"}).status_code == 400


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True),
                                                ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                                ("192.168.1.5", False), ("example.org", False), ("::", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("path", ["/", "/api/studies", "/studies/nope", "/static/plotly.min.js"])
def test_no_page_can_be_framed_by_another_site(client, path):
    response = client.get(path)
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
