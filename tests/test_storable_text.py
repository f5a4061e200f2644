"""Text PostgreSQL cannot store (NUL, lone surrogates, too long) never fails a turn (issue 17.1)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from gateway import create_app
from gateway.extensions import db
from gateway.models import ConversationMessage, ToolCallRecord
from gateway.services import close_services
from gateway.storable import REPLACEMENT, storable_json, storable_text
from tests.chat_setup import chat_settings, write_mcp_config
from tests.conftest import test_settings
from tests.factories import create_account
from tests.fakes.fake_llm import call_tool, reply


@pytest.fixture(scope="module")
def mcp_config(tmp_path_factory):
    return write_mcp_config(tmp_path_factory.mktemp("mcp"))


@pytest.fixture
def chat(database_url, fake, mcp_config, app):
    chat = create_app(test_settings(database_url, **chat_settings(fake.url, mcp_config)))
    fake.reset()
    client, account = chat.test_client(), create_account(app, role="admin")
    wait_ready(client, account, "calc")
    yield client, account
    close_services(chat)


def wait_ready(client, account, server: str, timeout: float = 20.0) -> None:
    """Until /mcp/servers says ``server`` is ready (the routing offer lists only ready ones)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = client.get("/mcp/servers", headers=account.headers).get_json()["servers"]
        if any(s["name"] == server and s["state"] == "ready" for s in servers):
            return
        time.sleep(0.1)
    raise AssertionError(f"{server} did not become ready")


def test_storable_text_replaces_nul_and_lone_surrogates_and_cuts_to_length():
    assert storable_text("a\x00b\ud800c\udfff") == f"a{REPLACEMENT}b{REPLACEMENT}c{REPLACEMENT}"
    assert storable_text("abcdef", 4) == "abc…"
    assert storable_text("a😀b") == "a😀b"  # a surrogate pair decoded is one code point
    value = {"ok": ["fine", 1, None, {"deep": True}]}
    assert storable_json(value) is value
    assert storable_json({"k\x00": ["v\x00", 2]}) == {f"k{REPLACEMENT}": [f"v{REPLACEMENT}", 2]}


def test_a_tool_returning_nul_completes_the_turn_and_the_stored_text_is_marked(chat, fake, app):
    client, account = chat
    fake.script(call_tool("calc__echo", {"text": "a\u0000b"}), reply("The tool said a\u0000b"))
    response = client.post("/chat", headers=account.headers, json={"message": "@calc echo a b"})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_json()
    [call] = body["tool_calls"]
    assert call["is_error"] is False, call
    # The model got the tool's real text; only the stored copy is changed.
    assert fake.requests[-1].body["messages"][-1]["content"] == "a\x00b"
    with app.app_context():
        stored = db.session.scalars(select(ToolCallRecord)).one()
        assert stored.arguments == {"text": f"a{REPLACEMENT}b"}
        assert stored.result["content"][0]["text"] == f"a{REPLACEMENT}b"
        answer = db.session.scalars(
            select(ConversationMessage).where(
                ConversationMessage.role == "assistant", ConversationMessage.status == "complete"
            )
        ).all()[-1]
        assert answer.content[0]["text"] == f"The tool said a{REPLACEMENT}b"
    history = client.get(f"/conversations/{body['conversation_id']}", headers=account.headers)
    assert history.status_code == 200
    assert f"a{REPLACEMENT}b" in str(history.get_json())


def test_model_text_with_a_lone_surrogate_and_an_overlong_tool_name_are_stored(chat, fake, app):
    client, account = chat
    # Client input is checked at the edge (NUL and lone surrogates: 400); a model's output
    # is not, and reaches the database through the recorder.
    assert (
        client.post("/chat", headers=account.headers, json={"message": "hi\x00"}).status_code == 400
    )
    long_name = "calc__" + "n" * 300
    fake.script(call_tool(long_name, {"x\x00": 1}), reply("half a pair: \ud800 and a NUL \x00"))
    response = client.post("/chat", headers=account.headers, json={"message": "@calc do it"})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    [call] = response.get_json()["tool_calls"]
    assert call["is_error"] is True  # an unknown tool, reported to the model
    conversation_id = response.get_json()["conversation_id"]
    with app.app_context():
        stored = db.session.scalars(select(ToolCallRecord)).one()
        assert len(stored.tool) == 128 and stored.tool.endswith("…")
        assert stored.arguments == {f"x{REPLACEMENT}": 1}
        answer = db.session.scalars(
            select(ConversationMessage).where(
                ConversationMessage.role == "assistant", ConversationMessage.status == "complete"
            )
        ).all()[-1]
        assert answer.content[0]["text"] == f"half a pair: {REPLACEMENT} and a NUL {REPLACEMENT}"
    listed = client.get(f"/conversations/{conversation_id}", headers=account.headers)
    assert listed.status_code == 200
