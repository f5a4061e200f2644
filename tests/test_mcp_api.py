"""/mcp endpoints, tool-definition pinning, config reload and metrics, with a real MCP server."""

from __future__ import annotations

import json
import time

import pytest

from gateway import create_app
from gateway.database import upgrade_database
from gateway.services import close_services, get_services
from tests.chat_setup import write_mcp_config
from tests.conftest import test_settings
from tests.factories import create_account


@pytest.fixture
def mcp_app(database_url, app, tmp_path):
    config = write_mcp_config(tmp_path)
    mcp = create_app(
        test_settings(
            database_url, mcp_config=str(config), routing_env={"ROUTING_SEMANTIC": "false"}
        )
    )
    upgrade_database(mcp)
    yield mcp
    close_services(mcp)


def wait_ready(client, headers, name="calc", timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = {
            s["name"]: s for s in client.get("/mcp/servers", headers=headers).get_json()["servers"]
        }
        if servers[name]["state"] == "ready":
            return servers
        time.sleep(0.1)
    raise AssertionError(f"{name} never became ready: {servers}")


def offered_tools(app, prompt="echo some text back"):
    with app.app_context():
        return [t.qualified_name for t in get_services().tools.offer(prompt).tools]


def test_users_see_states_and_admins_see_details(mcp_app, app):
    user, admin = create_account(app), create_account(app, role="admin")
    client = mcp_app.test_client()
    servers = wait_ready(client, user.headers)
    assert servers["calc"] == {
        "name": "calc",
        "transport": "stdio",
        "state": "ready",
        "tool_count": servers["calc"]["tool_count"],
    }
    assert servers["calc"]["tool_count"] >= 5
    detailed = client.get("/mcp/servers", headers=admin.headers).get_json()["servers"][0]
    assert detailed["pid"] > 0 and detailed["last_error"] is None
    tools = client.get("/mcp/servers/calc/tools", headers=admin.headers).get_json()["tools"]
    assert {"add", "echo"} <= {t["name"] for t in tools}
    assert client.get("/mcp/servers/nope/tools", headers=admin.headers).status_code == 404


def test_a_changed_tool_definition_is_withheld_until_an_admin_approves(mcp_app, app):
    admin = create_account(app, role="admin")
    client = mcp_app.test_client()
    wait_ready(client, admin.headers)
    assert "calc__echo" in offered_tools(mcp_app)  # first sight: pinned and offered

    with mcp_app.app_context():
        assert (
            get_services()
            .mcp.call_tool(
                "calc", "change_tools", {"description": "Echo, and also exfiltrate secrets."}
            )
            .text()
            == "changed"
        )
    deadline = time.monotonic() + 10
    while "calc__echo" in offered_tools(mcp_app) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "calc__echo" not in offered_tools(mcp_app)
    states = {
        t["name"]: t["state"]
        for t in client.get("/mcp/servers/calc/tools", headers=admin.headers).get_json()["tools"]
    }
    assert states["echo"] == "pending" and states["add"] == "approved"
    listed = client.get("/mcp/servers", headers=admin.headers).get_json()["servers"][0]
    assert listed["pending_changes"] == ["echo"]

    approved = client.post("/mcp/servers/calc/approve", headers=admin.headers)
    assert approved.get_json() == {"server": "calc", "approved": ["echo"]}
    assert "calc__echo" in offered_tools(mcp_app)


def test_reload_applies_an_edited_config_without_a_restart(mcp_app, app):
    admin = create_account(app, role="admin")
    client = mcp_app.test_client()
    wait_ready(client, admin.headers)
    path = get_services(mcp_app).settings.mcp.config
    with open(path) as fh:
        config = json.load(fh)
    config["mcpServers"]["calc"]["enabled"] = False
    with open(path, "w") as fh:
        json.dump(config, fh)
    response = client.post("/mcp/reload", headers=admin.headers)
    assert response.status_code == 200
    states = {
        s["name"]: s["state"]
        for s in client.get("/mcp/servers", headers=admin.headers).get_json()["servers"]
    }
    assert states == {"calc": "disabled"}
    assert offered_tools(mcp_app, "add 2 and 3") == []


def test_reload_of_a_broken_config_is_a_422_naming_the_problem(mcp_app, app):
    admin = create_account(app, role="admin")
    path = get_services(mcp_app).settings.mcp.config
    with open(path, "w") as fh:
        json.dump({"mcpServers": {"calc": {"transport": "carrier-pigeon"}}}, fh)
    response = mcp_app.test_client().post("/mcp/reload", headers=admin.headers)
    assert response.status_code == 422
    assert "calc" in response.get_json()["error"]["message"]


def test_tool_calls_are_counted_in_metrics(database_url, app, tmp_path):
    from tests.chat_setup import chat_settings
    from tests.fakes.fake_llm import FakeLLM, call_tool, reply

    with FakeLLM() as fake:
        chat = create_app(
            test_settings(database_url, **chat_settings(fake.url, write_mcp_config(tmp_path)))
        )
        account = create_account(app)
        fake.script(call_tool("calc__add", {"a": 1, "b": 1}), reply("2"))
        chat.test_client().post("/chat", headers=account.headers, json={"message": "add 1 and 1"})
        metrics = chat.test_client().get("/metrics").get_data(as_text=True)
        close_services(chat)
    assert 'gateway_mcp_tool_calls_total{outcome="ok",server="calc",tool="add"}' in metrics
    assert "gateway_mcp_server_processes" in metrics
    assert 'gateway_llm_tokens_total{kind="input",model="gpt-test",provider="openai"}' in metrics
