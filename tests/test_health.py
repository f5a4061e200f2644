"""Liveness touches nothing; readiness names the dependency that failed."""

from __future__ import annotations

from gateway import create_app
from tests.conftest import test_settings
from tests.live_server import free_port


def test_liveness_is_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readiness_is_ok_when_the_database_answers(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.get_json()
    assert body["checks"]["database"] == "ok"
    # Each configured MCP server's state is reported (the default config: time and git).
    assert set(body["mcp"]) == {"time", "git"}
    assert set(body["mcp"].values()) <= {"ready", "starting", "unavailable", "disabled"}


def test_readiness_is_503_naming_the_database_without_internals(database_url):
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    app = create_app(test_settings(unreachable, mcp_config="tests/fixtures/mcp_none.json"))
    client = app.test_client()
    assert client.get("/health").status_code == 200
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json() == {
        "status": "unavailable",
        "checks": {"database": "unavailable"},
        "mcp": {},
    }
