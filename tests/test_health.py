"""Liveness touches nothing; readiness names the dependency that failed."""

from __future__ import annotations

import gc

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


def test_a_worker_is_not_ready_until_it_is_warm(database_url, monkeypatch):
    from gateway.services import Services, close_services, get_services, warm_state, warm_up

    app = create_app(test_settings(database_url, mcp_config="config/mcp_servers.json"))
    client = app.test_client()
    assert warm_state(app) is None  # not a served worker: no warm-up to wait for
    seen: list[tuple[int, dict]] = []
    # What /health/ready answers while warm_up runs: hold it at the MCP stage and ask.
    original = Services.mcp.fget

    def observing_hub(services):
        if not seen:  # warm_up's first look; /health/ready itself looks too
            seen.append((0, {}))
            response = client.get("/health/ready")
            seen[0] = (response.status_code, response.get_json()["checks"])
        return original(services)

    with monkeypatch.context() as patch:
        patch.setattr(Services, "mcp", property(observing_hub))
        warm_up(app)
    assert seen[0] == (503, {"database": "ok", "warm": "warming"})
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.get_json()["checks"]["warm"] == "ok"
    # Warm means connected and loaded: the MCP servers are up and the router is built.
    assert ready.get_json()["mcp"] == {"time": "ready", "git": "ready"}
    with app.app_context():
        assert get_services().tools is not None
    # What start-up made is frozen: full collections skip it (gc.freeze).
    assert gc.get_freeze_count() > 100_000
    gc.unfreeze()
    close_services(app)
