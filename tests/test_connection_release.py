"""No pooled database connection is checked out while the model or an MCP tool runs.

Each upstream request the fake LLM receives and each MCP tool call reads the gateway's pool
(``Pool.checkedout()``) from inside the call: a turn that kept its transaction open across
the wait shows up there as 1.
"""

from __future__ import annotations

import json

import pytest

from gateway.extensions import db
from gateway.services import get_services
from tests.chat_setup import chat_gateway, write_mcp_config
from tests.factories import create_account
from tests.fakes.fake_llm import call_tool, reply


@pytest.fixture(scope="module")
def chat_app(database_url, fake, tmp_path_factory, app):
    config = write_mcp_config(tmp_path_factory.mktemp("mcp"))
    with chat_gateway(database_url, fake.url, config) as chat:
        yield chat


@pytest.fixture
def checked_out(chat_app, fake, monkeypatch):
    """What the pool held at each upstream request and tool call: ``[(where, count)]``."""
    fake.reset()
    seen: list[tuple[str, int]] = []
    with chat_app.app_context():
        pool = db.engine.pool
        hub = get_services().mcp
    call_tool_of_hub = hub.call_tool

    def spy(server, tool, arguments, **options):
        seen.append((f"tool {server}.{tool}", pool.checkedout()))
        return call_tool_of_hub(server, tool, arguments, **options)

    monkeypatch.setattr(hub, "call_tool", spy)
    fake.on_request = lambda path: seen.append((f"model {path}", pool.checkedout()))
    yield seen
    fake.on_request = None


@pytest.fixture
def alice(app):
    return create_account(app)


def _tool_turn(fake):
    fake.script(call_tool("calc__add", {"a": 2, "b": 3}), reply("2 + 3 = 5."))


def _waits(seen):
    kinds = sorted({where.split()[0] for where, _ in seen})
    assert kinds == ["model", "tool"], seen
    return seen


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("idempotency", [False, True], ids=["plain", "idempotency-key"])
def test_chat_turn_holds_no_connection_while_the_model_or_a_tool_runs(
    chat_app, fake, checked_out, alice, stream, idempotency
):
    _tool_turn(fake)
    headers = dict(alice.headers)
    if idempotency:
        headers["Idempotency-Key"] = "turn-1"
    response = chat_app.test_client().post(
        "/chat", headers=headers, json={"message": "please add 2 and 3", "stream": stream}
    )
    assert response.status_code == 200
    assert "5." in response.get_data(as_text=True)  # streamed in pieces of two words
    assert all(count == 0 for _, count in _waits(checked_out)), checked_out


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("conversation", [None, "new"], ids=["unstored", "stored"])
def test_completions_hold_no_connection_while_the_model_or_a_tool_runs(
    chat_app, fake, checked_out, alice, stream, conversation
):
    _tool_turn(fake)
    headers = dict(alice.headers)
    if conversation:
        headers["X-Conversation-Id"] = conversation
    response = chat_app.test_client().post(
        "/v1/chat/completions",
        headers=headers,
        json={
            "model": "gpt-test",
            "messages": [{"role": "user", "content": "please add 2 and 3"}],
            "stream": stream,
        },
    )
    assert response.status_code == 200
    assert "5." in response.get_data(as_text=True)  # streamed in pieces of two words
    assert all(count == 0 for _, count in _waits(checked_out)), checked_out


def test_mcp_endpoint_tool_call_holds_no_connection_while_the_tool_runs(
    chat_app, checked_out, alice
):
    response = chat_app.test_client().post(
        "/mcp",
        headers={
            **alice.headers,
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        },
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "calc__add", "arguments": {"a": 2, "b": 3}},
        },
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    data = body if body.startswith("{") else body.split("data: ", 1)[1].split("\n", 1)[0]
    assert json.loads(data)["result"]["content"][0]["text"] == "5"
    assert checked_out == [("tool calc.add", 0)]
