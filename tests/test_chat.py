"""The chat API in-process: turns with real MCP tools, history, failures, idempotency, CRUD."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from itertools import pairwise

import pytest
from sqlalchemy import select

from gateway import create_app
from gateway.extensions import db
from gateway.models import ConversationMessage, ToolCallRecord
from gateway.services import close_services
from tests.chat_setup import chat_gateway, chat_settings, write_mcp_config
from tests.conftest import test_settings
from tests.factories import create_account, create_conversation
from tests.fakes.fake_llm import call_tool, fail, reply


@pytest.fixture(scope="module")
def mcp_config(tmp_path_factory):
    return write_mcp_config(tmp_path_factory.mktemp("mcp"))


@pytest.fixture(scope="module")
def chat_app(database_url, fake, mcp_config, app):
    with chat_gateway(database_url, fake.url, mcp_config) as chat:
        yield chat


@pytest.fixture
def chat(chat_app, fake, app):
    fake.reset()
    return chat_app.test_client()


@pytest.fixture
def alice(app):
    return create_account(app)


def post_chat(client, account, message, **fields):
    return client.post("/chat", headers=account.headers, json={"message": message, **fields})


def stored_messages(app, conversation_id):
    with app.app_context():
        rows = db.session.scalars(
            select(ConversationMessage)
            .where(ConversationMessage.conversation_id == uuid.UUID(conversation_id))
            .order_by(ConversationMessage.created_at, ConversationMessage.id)
        ).all()
        return [(m.role, m.status, m.content) for m in rows]


def test_a_turn_runs_the_tool_and_stores_every_message(chat, chat_app, fake, alice):
    fake.script(call_tool("calc__add", {"a": 2, "b": 3}), reply("2 + 3 = 5."))
    response = post_chat(chat, alice, "please add 2 and 3")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["message"]["content"] == "2 + 3 = 5."
    assert body["routing"]["servers"] == ["calc"]
    assert "calc__add" in body["routing"]["tools"]
    [call] = body["tool_calls"]
    assert (call["server"], call["tool"], call["arguments"]) == ("calc", "add", {"a": 2, "b": 3})
    assert call["is_error"] is False and call["summary"] == "5"
    assert body["usage"] == {"input_tokens": 24, "output_tokens": 14}
    assert (body["provider"], body["model"], body["rounds"]) == ("openai", "gpt-test", 2)

    roles = [
        (role, status) for role, status, _ in stored_messages(chat_app, body["conversation_id"])
    ]
    assert roles == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("tool", "complete"),
        ("assistant", "complete"),
    ]
    with chat_app.app_context():
        row = db.session.scalar(select(ToolCallRecord))
        assert (row.server, row.tool, row.arguments, row.is_error) == (
            "calc",
            "add",
            {"a": 2, "b": 3},
            False,
        )
        final = db.session.get(ConversationMessage, uuid.UUID(body["message"]["id"]))
        assert final.routing["servers"] == ["calc"]
        assert (final.input_tokens, final.output_tokens, final.stop_reason) == (24, 14, "end_turn")


def test_plain_chat_offers_no_tools(chat, fake, alice):
    fake.script(reply("Hello!"))
    body = post_chat(chat, alice, "hi, how are you today?").get_json()
    assert body["routing"]["servers"] == []
    # Only the gateway's tool search, in case the model needs a tool after all.
    [offered] = fake.requests[-1].body["tools"]
    assert offered["function"]["name"] == "gateway__find_tools"


def test_history_is_replayed_with_its_tool_calls(chat, fake, alice):
    fake.script(call_tool("calc__add", {"a": 1, "b": 1}), reply("It is 2."))
    first = post_chat(chat, alice, "add 1 and 1").get_json()
    fake.script(reply("You asked me to add."))
    second = post_chat(chat, alice, "what did I ask?", conversation_id=first["conversation_id"])
    assert second.status_code == 200
    sent = fake.requests[-1].body["messages"]
    roles = [m["role"] for m in sent]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[2]["tool_calls"][0]["function"]["name"] == "calc__add"
    assert sent[3]["content"] == "2"
    assert sent[4]["content"] == "It is 2."
    assert sent[5]["content"] == "what did I ask?"


def test_a_follow_up_keeps_the_previous_turns_servers_in_view(chat, fake, alice):
    fake.script(call_tool("calc__add", {"a": 1, "b": 2}), reply("3"))
    first = post_chat(chat, alice, "add 1 and 2").get_json()
    fake.script(reply("ok"))
    second = post_chat(chat, alice, "and 5 more?", conversation_id=first["conversation_id"])
    assert second.get_json()["routing"]["servers"] == ["calc"]


def test_long_histories_are_trimmed_oldest_turns_first(database_url, fake, mcp_config, app):
    small = create_app(
        test_settings(database_url, history_token_budget=100, **chat_settings(fake.url, mcp_config))
    )
    account = create_account(app)
    conversation_id = create_conversation(app, account)
    client = small.test_client()
    fake.reset()
    for i in range(6):
        fake.script(reply(f"answer {i} " + "words " * 20))
        post_chat(
            client, account, f"question {i} " + "filler " * 20, conversation_id=str(conversation_id)
        )
    sent = fake.requests[-1].body["messages"]
    assert sent[1]["role"] == "user"  # whole turns dropped: it still starts with a user turn
    assert sent[-1]["content"].startswith("question 5")
    assert len(sent) < 2 + 2 * 6
    assert not any(m.get("content") == "hello" for m in sent)  # the oldest turn is gone
    close_services(small)


def test_llm_failure_keeps_the_users_message_marked_failed(chat, chat_app, fake, alice):
    fake.script(fail(500))
    response = post_chat(chat, alice, "hello?")
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["type"] == "upstream_error"
    assert "fake upstream failure" not in error["message"]
    [conversation] = chat.get("/conversations", headers=alice.headers).get_json()["conversations"]
    [(role, status, content)] = stored_messages(chat_app, conversation["id"])
    assert (role, status, content[0]["text"]) == ("user", "failed", "hello?")
    # The client retries in the same conversation; the failed turn is not replayed.
    fake.script(reply("Hi!"))
    retry = post_chat(chat, alice, "hello?", conversation_id=conversation["id"])
    assert retry.status_code == 200
    assert [m["role"] for m in fake.requests[-1].body["messages"]] == ["system", "user"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"message": ""}, 422),
        ({"message": 42}, 422),
        ({"message": "hi", "surprise": 1}, 422),
        ({"message": "hi", "conversation_id": "not-a-uuid"}, 422),
        ({"message": "hi", "stream": "yes"}, 422),
        ({"message": "hi", "servers": "calc"}, 422),
        ({"message": "hi", "provider": "nonesuch"}, 422),
        ({"message": "x" * 32_001}, 422),
        ({"message": "hi", "conversation_id": str(uuid.uuid4())}, 404),
    ],
)
def test_bad_chat_input_is_refused_and_nothing_is_stored(chat, chat_app, fake, alice, body, status):
    response = chat.post("/chat", headers=alice.headers, json=body)
    assert response.status_code == status, response.get_json()
    assert "error" in response.get_json()
    assert stored_messages_count(chat_app) == 0
    assert fake.requests == []


def stored_messages_count(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(ConversationMessage.id)).all())


def test_pinned_servers_and_mentions_override_routing(chat, fake, alice):
    fake.script(reply("sure"))
    body = post_chat(chat, alice, "tell me a story", servers=["calc"]).get_json()
    assert body["routing"]["servers"] == ["calc"] and body["routing"]["method"] == "pinned"
    fake.script(reply("sure"))
    body = post_chat(chat, alice, "@calc tell me a story").get_json()
    assert body["routing"]["servers"] == ["calc"]


def test_a_pinned_server_that_is_not_configured_is_a_422_and_nothing_is_stored(
    chat, chat_app, fake, alice
):
    before = stored_messages_count(chat_app)
    response = post_chat(chat, alice, "tell me a story", servers=["calc", "nope"])
    assert response.status_code == 422
    [detail] = response.get_json()["error"]["details"]
    assert detail["field"] == "servers" and "nope" in detail["message"]
    assert "calc" not in detail["message"]
    assert stored_messages_count(chat_app) == before and fake.requests == []


# --- idempotency ------------------------------------------------------------------------


def test_a_repeated_idempotency_key_returns_the_stored_answer(chat, fake, alice):
    headers = {**alice.headers, "Idempotency-Key": "order-1"}
    fake.script(reply("only once"))
    first = chat.post("/chat", headers=headers, json={"message": "hello"})
    again = chat.post("/chat", headers=headers, json={"message": "hello"})
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    assert len(fake.requests) == 1


def test_the_same_key_with_another_body_is_a_422(chat, fake, alice):
    headers = {**alice.headers, "Idempotency-Key": "order-2"}
    fake.script(reply("one"))
    chat.post("/chat", headers=headers, json={"message": "hello"})
    other = chat.post("/chat", headers=headers, json={"message": "something else"})
    assert other.status_code == 422
    assert other.get_json()["error"]["type"] == "idempotency_key_reused"


def test_a_repeat_while_in_flight_waits_for_the_first_answer(chat, chat_app, fake, alice):
    headers = {**alice.headers, "Idempotency-Key": "order-3"}
    fake.script(reply("slow answer", delay=1.0))
    results = {}

    def send(name):
        results[name] = chat_app.test_client().post(
            "/chat", headers=headers, json={"message": "hi"}
        )

    first = threading.Thread(target=send, args=("first",))
    first.start()
    threading.Event().wait(0.3)
    send("second")
    first.join()
    assert results["first"].get_json() == results["second"].get_json()
    assert results["second"].get_json()["message"]["content"] == "slow answer"
    assert len(fake.requests) == 1


def test_a_failed_turn_gives_the_key_back(chat, fake, alice):
    headers = {**alice.headers, "Idempotency-Key": "order-4"}
    fake.script(fail(500), reply("second try"))
    assert chat.post("/chat", headers=headers, json={"message": "hi"}).status_code == 502
    retry = chat.post("/chat", headers=headers, json={"message": "hi"})
    assert retry.get_json()["message"]["content"] == "second try"


# --- conversations ----------------------------------------------------------------------


def test_conversations_are_paginated_newest_first(chat, app, alice):
    ids = [str(create_conversation(app, alice, title=f"c{i}")) for i in range(5)]
    seen, cursor = [], None
    for _ in range(3):
        url = "/conversations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = chat.get(url, headers=alice.headers).get_json()
        seen += [c["id"] for c in page["conversations"]]
        cursor = page["next_cursor"]
    assert seen == ids[::-1]
    assert cursor is None


@pytest.mark.parametrize(
    ("query", "status"), [("limit=0", 400), ("limit=x", 400), ("cursor=!!", 400)]
)
def test_bad_pagination_is_a_400(chat, alice, query, status):
    assert chat.get(f"/conversations?{query}", headers=alice.headers).status_code == status


def test_page_size_is_capped(chat, alice):
    assert chat.get("/conversations?limit=100000", headers=alice.headers).status_code == 200


def test_conversation_detail_rename_delete(chat, app, alice):
    conversation_id = create_conversation(app, alice)
    url = f"/conversations/{conversation_id}"
    detail = chat.get(url, headers=alice.headers).get_json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    renamed = chat.patch(url, headers=alice.headers, json={"title": "Renamed"})
    assert renamed.get_json()["title"] == "Renamed"
    assert chat.patch(url, headers=alice.headers, json={"title": ""}).status_code == 422
    assert chat.delete(url, headers=alice.headers).status_code == 204
    assert chat.get(url, headers=alice.headers).status_code == 404


def test_a_conversation_id_that_is_not_a_uuid_is_a_404(chat, alice):
    response = chat.get("/conversations/12345", headers=alice.headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "not_found"


def test_export_as_json_and_markdown(chat, fake, alice):
    fake.script(call_tool("calc__add", {"a": 2, "b": 2}), reply("Four."))
    conversation_id = post_chat(chat, alice, "add 2 and 2").get_json()["conversation_id"]
    as_json = chat.get(
        f"/conversations/{conversation_id}/export?format=json", headers=alice.headers
    )
    assert as_json.headers["Content-Disposition"].endswith('.json"')
    assert [m["role"] for m in as_json.get_json()["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    as_md = chat.get(
        f"/conversations/{conversation_id}/export?format=markdown", headers=alice.headers
    )
    text = as_md.get_data(as_text=True)
    assert "**You:**" in text and "Four." in text and "calc.add" in text
    assert (
        chat.get(
            f"/conversations/{conversation_id}/export?format=pdf", headers=alice.headers
        ).status_code
        == 400
    )


# --- streaming in-process ---------------------------------------------------------------


def test_streamed_turn_events_in_order(chat, fake, alice):
    fake.script(call_tool("calc__add", {"a": 4, "b": 5}), reply("Nine it is."))
    response = post_chat(chat, alice, "add 4 and 5", stream=True)
    assert response.mimetype == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no"
    events = [
        line.split(": ", 1)[1]
        for line in response.get_data(as_text=True).splitlines()
        if line.startswith("event: ")
    ]
    assert events[0] == "routing"
    assert events.index("tool_call") < events.index("tool_result") < events.index("delta")
    assert events[-1] == "done"


def test_streamed_text_of_two_rounds_is_two_paragraphs(chat, fake, alice):
    fake.script(
        call_tool("calc__add", {"a": 4, "b": 5}, text="Let me add them."), reply("Nine it is.")
    )
    response = post_chat(chat, alice, "add 4 and 5", stream=True)
    deltas = [
        json.loads(line.split(": ", 1)[1])["text"]
        for previous, line in pairwise(response.get_data(as_text=True).splitlines())
        if previous == "event: delta"
    ]
    assert "".join(deltas) == "Let me add them.\n\nNine it is."
    # The stored answer is the last round's text, as without streaming.
    done = response.get_data(as_text=True).split("event: done\ndata: ", 1)[1]
    assert json.loads(done.split("\n", 1)[0])["message"]["content"] == "Nine it is."


def test_a_streamed_turns_log_lines_carry_the_request_id(chat, fake, alice, caplog):
    fake.script(call_tool("calc__add", {"a": 4, "b": 5}), reply("Nine it is."))
    headers = {**alice.headers, "X-Request-ID": "req-stream-7"}
    with caplog.at_level(logging.INFO, logger="gateway"):
        body = {"message": "add 4 and 5", "stream": True}
        response = chat.post("/chat", headers=headers, json=body)
        assert "event: done" in response.get_data(as_text=True)
    # The routing line is logged by the turn's producer thread, not the request's.
    routing = [r for r in caplog.records if r.name == "gateway.routing.decision"]
    assert routing and routing[0].threadName == "sse-turn"
    assert [r.request_id for r in routing] == ["req-stream-7"]


def test_streamed_upstream_failure_is_an_error_event(chat, fake, alice):
    fake.script(fail(500))
    text = post_chat(chat, alice, "hello", stream=True).get_data(as_text=True)
    assert "event: error" in text and "upstream_error" in text


def test_heartbeats_keep_the_stream_alive_during_a_long_tool_call(
    database_url, fake, mcp_config, app
):
    quick = create_app(
        test_settings(
            database_url, sse_heartbeat_seconds=0.2, **chat_settings(fake.url, mcp_config)
        )
    )
    account = create_account(app)
    fake.reset()
    fake.script(call_tool("calc__slow", {"seconds": 1.0}), reply("done waiting"))
    response = quick.test_client().post(
        "/chat",
        headers=account.headers,
        json={"message": "@calc wait a second", "stream": True},
    )
    text = response.get_data(as_text=True)
    before_result = text.split("event: tool_result")[0].split("event: tool_call")[1]
    assert ": keepalive" in before_result
    close_services(quick)


def test_no_transaction_is_held_while_the_model_thinks(chat_app, chat, fake, alice, database_url):
    """While the upstream is slow, none of the gateway's connections sits in a transaction."""
    import psycopg2

    fake.script(reply("slow", delay=1.5))
    done = threading.Event()

    def send():
        chat_app.test_client().post("/chat", headers=alice.headers, json={"message": "hello"})
        done.set()

    threading.Thread(target=send).start()
    states = []
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        conn.autocommit = True
        while not fake.requests and not done.is_set():  # sample while the upstream is thinking
            threading.Event().wait(0.01)
        while not done.wait(0.1):
            cur.execute(
                "SELECT state FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'mcp-gateway'"
            )
            states += [row[0] for row in cur.fetchall()]
    conn.close()
    assert fake.requests, "the upstream was called"
    assert states, "the gateway's connections were observed"
    assert "idle in transaction" not in states
    assert "active" not in states


def test_messages_of_a_conversation_are_paginated_oldest_first(chat, fake, alice):
    fake.script(reply("one"), reply("two"))
    first = post_chat(chat, alice, "first").get_json()
    post_chat(chat, alice, "second", conversation_id=first["conversation_id"])
    url = f"/conversations/{first['conversation_id']}?limit=3"
    page = chat.get(url, headers=alice.headers).get_json()
    rest = chat.get(f"{url}&cursor={page['next_cursor']}", headers=alice.headers).get_json()
    texts = [m["content"][0]["text"] for m in page["messages"] + rest["messages"]]
    assert texts == ["first", "one", "second", "two"]
    assert rest["next_cursor"] is None
