"""Learning from use: successful tool calls become routing examples that every worker reads."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway import create_app
from gateway.database import upgrade_database
from gateway.extensions import db
from gateway.models import RoutingExample
from gateway.services import close_services, get_services
from tests.chat_setup import chat_settings, write_mcp_config
from tests.conftest import test_settings
from tests.factories import create_account
from tests.fakes.fake_llm import call_tool, reply


@pytest.fixture(scope="module")
def learning_app(database_url, fake, app, tmp_path_factory):
    config = write_mcp_config(tmp_path_factory.mktemp("mcp"))
    settings = chat_settings(
        fake.url,
        config,
        routing_env={"ROUTING_SEMANTIC": "false", "ROUTING_LEARN_REFRESH_SECONDS": "0"},
    )
    learning = create_app(test_settings(database_url, **settings))
    upgrade_database(learning)
    yield learning
    close_services(learning)


def examples(app):
    with app.app_context():
        rows = db.session.scalars(select(RoutingExample).order_by(RoutingExample.id)).all()
        return [(r.server, r.tool, r.prompt) for r in rows]


def test_a_successful_tool_call_teaches_the_router_its_prompt(learning_app, fake, app):
    fake.reset()
    client, alice = learning_app.test_client(), create_account(app)
    fake.script(call_tool("calc__add", {"a": 2, "b": 3}), reply("5"))
    response = client.post("/chat", headers=alice.headers, json={"message": "add 2 and 3"})
    assert response.status_code == 200, response.get_json()
    assert examples(learning_app) == [("calc", "add", "add 2 and 3")]
    with learning_app.app_context():
        assert get_services().tools.router().examples == {"calc__add": ("add 2 and 3",)}

    # A failed call teaches nothing.
    fake.script(call_tool("calc__fail", {"message": "no"}), reply("It failed."))
    response = client.post("/chat", headers=alice.headers, json={"message": "add and fail"})
    assert response.status_code == 200, response.get_json()
    assert [e[1] for e in examples(learning_app)] == ["add"]

    # Deleting the conversation deletes what was learned from it.
    conversation = response.get_json()["conversation_id"]
    first = client.get("/conversations", headers=alice.headers).get_json()["conversations"]
    for item in first:
        client.delete(f"/conversations/{item['id']}", headers=alice.headers)
    assert conversation and examples(learning_app) == []
    with learning_app.app_context():
        assert get_services().tools.router().examples == {}


def test_learning_can_be_turned_off(database_url, fake, app, tmp_path):
    fake.reset()
    settings = chat_settings(
        fake.url,
        write_mcp_config(tmp_path),
        routing_env={"ROUTING_SEMANTIC": "false", "ROUTING_LEARNED_EXAMPLES": "0"},
    )
    off = create_app(test_settings(database_url, **settings))
    try:
        fake.script(call_tool("calc__add", {"a": 1, "b": 1}), reply("2"))
        alice = create_account(app)
        response = off.test_client().post(
            "/chat", headers=alice.headers, json={"message": "add 1 and 1"}
        )
        assert response.status_code == 200, response.get_json()
        assert examples(off) == []
    finally:
        close_services(off)
