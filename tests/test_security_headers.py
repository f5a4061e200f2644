"""Security headers on every response, no-store on auth, HSTS on demand, CORS closed by default."""

from __future__ import annotations

import pytest

from gateway import create_app
from gateway.settings import ConfigError, Settings
from tests.conftest import test_settings
from tests.factories import create_account

ORIGIN = "https://chat.example.com"


@pytest.fixture(scope="module")
def browser_app(database_url):
    return create_app(test_settings(database_url, cors_origins=(ORIGIN,), hsts_seconds=31536000))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/health"),
        ("get", "/openapi.json"),
        ("get", "/nope"),  # 404 from the framework
        ("post", "/health"),  # 405
        ("get", "/auth/me"),  # 401
        ("post", "/auth/login"),  # 415
        ("get", "/metrics"),
    ],
)
def test_every_response_carries_the_security_headers(client, method, path):
    response = getattr(client, method)(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in response.headers  # off unless configured
    assert "Access-Control-Allow-Origin" not in response.headers


def test_auth_responses_are_never_cached(client, app):
    account = create_account(app)
    login = client.post("/auth/login", json={"email": account.email, "password": account.password})
    assert login.status_code == 200
    assert login.headers["Cache-Control"] == "no-store"
    key = client.post("/auth/keys", headers=account.headers, json={"name": "k"})
    assert key.headers["Cache-Control"] == "no-store"


def test_streams_keep_their_security_headers(app, client):
    account = create_account(app)
    response = client.post(
        "/chat", headers=account.headers, json={"message": "x" * 40_000, "stream": True}
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_hsts_when_configured(browser_app):
    response = browser_app.test_client().get("/health")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_cors_is_closed_by_default(client):
    preflight = client.options(
        "/chat",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    simple = client.get("/health", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in simple.headers


def test_cors_allows_only_the_listed_origins(browser_app):
    client = browser_app.test_client()
    preflight = client.options(
        "/chat",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers  # bearer tokens only
    allowed = client.get("/health", headers={"Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in allowed.headers["Vary"]
    for other in (
        "https://evil.example",
        "null",
        ORIGIN + ".evil.example",
        "http://chat.example.com",
    ):
        denied = client.get("/health", headers={"Origin": other})
        assert "Access-Control-Allow-Origin" not in denied.headers
        refused = client.options(
            "/chat", headers={"Origin": other, "Access-Control-Request-Method": "POST"}
        )
        assert "Access-Control-Allow-Origin" not in refused.headers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "https://a.example, http://localhost:3000/",
            ("https://a.example", "http://localhost:3000"),
        ),
        ("", ()),
    ],
)
def test_cors_origins_setting(raw, expected):
    env = {"ENVIRONMENT": "development", "CORS_ORIGINS": raw}
    assert Settings.from_env(env).http.cors_origins == expected


@pytest.mark.parametrize("raw", ["*", "https://*.example.com", "chat.example.com", "https://a/b"])
def test_wildcard_or_malformed_cors_origins_are_refused(raw):
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        Settings.from_env({"ENVIRONMENT": "development", "CORS_ORIGINS": raw})
