"""One turn at a time per conversation (issue 17.4): a second is a 409, history stays valid."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from gateway import create_app
from gateway.chat.history import to_llm
from gateway.extensions import db
from gateway.llm import anthropic as anthropic_wire
from gateway.llm import openai as openai_wire
from gateway.models import Conversation, ConversationMessage
from gateway.services import close_services
from tests.chat_setup import chat_settings, write_mcp_config
from tests.conftest import test_settings
from tests.factories import create_account
from tests.fakes.fake_llm import call_tool, reply
from tests.history_rules import (  # the validators' own test runs here too
    anthropic_violations,
    openai_violations,
    test_the_validators_catch_an_interleaved_history,  # noqa: F401
)
from tests.test_storable_text import wait_ready


@pytest.fixture(scope="module")
def mcp_config(tmp_path_factory):
    return write_mcp_config(tmp_path_factory.mktemp("mcp"))


@pytest.fixture
def chat(database_url, fake, mcp_config, app):
    chat = create_app(
        test_settings(database_url, chat_max_concurrent=0, **chat_settings(fake.url, mcp_config))
    )
    fake.reset()
    client, account = chat.test_client(), create_account(app, role="admin")
    wait_ready(client, account, "calc")
    yield client, account
    close_services(chat)


def _stored_history_violations(app, conversation_id) -> list[str]:
    """Every stored message, in order, as each provider would be sent it."""
    with app.app_context():
        rows = db.session.scalars(
            select(ConversationMessage)
            .where(ConversationMessage.conversation_id == conversation_id)
            .order_by(ConversationMessage.created_at, ConversationMessage.id)
        ).all()
        neutral = tuple(m for row in rows for m in to_llm(row))
    return openai_violations(openai_wire.render_messages(neutral, None)) + anthropic_violations(
        anthropic_wire.render_messages(neutral)
    )


def _start(client, account, message: str) -> str:
    response = client.post("/chat", headers=account.headers, json={"message": message})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()["conversation_id"]


def _wait_for_requests(fake, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(fake.requests) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake.requests) >= count


def test_a_turn_posted_while_another_runs_is_409_and_the_history_stays_valid(chat, fake, app):
    client, account = chat
    fake.script(reply("hello"))
    conversation_id = _start(client, account, "hi")
    fake.script(call_tool("calc__slow", {"seconds": 2}), reply("slept"))
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            client.post,
            "/chat",
            headers=account.headers,
            json={"message": "@calc sleep", "conversation_id": conversation_id},
        )
        _wait_for_requests(fake, 2)  # turn A's first model call is made; its tool now runs
        second = client.post(
            "/chat",
            headers=account.headers,
            json={"message": "@calc add 1 and 2", "conversation_id": conversation_id},
        )
        assert second.status_code == 409, second.get_data(as_text=True)[:300]
        assert second.get_json()["error"]["type"] == "conversation_busy"
        assert int(second.headers["Retry-After"]) > 0
        # Deleting is refused the same way; renaming is harmless and goes through.
        deleted = client.delete(f"/conversations/{conversation_id}", headers=account.headers)
        assert deleted.status_code == 409
        renamed = client.patch(
            f"/conversations/{conversation_id}", headers=account.headers, json={"title": "New"}
        )
        assert renamed.status_code == 200
        assert first.result().status_code == 200
    assert _stored_history_violations(app, conversation_id) == []
    with app.app_context():
        assert db.session.get(Conversation, conversation_id).title == "New"
    # Once turn A has ended, the retried turn goes through and deleting works.
    fake.script(reply("3"))
    again = client.post(
        "/chat",
        headers=account.headers,
        json={"message": "add 1 and 2", "conversation_id": conversation_id},
    )
    assert again.status_code == 200
    assert _stored_history_violations(app, conversation_id) == []
    deleted = client.delete(f"/conversations/{conversation_id}", headers=account.headers)
    assert deleted.status_code == 204


def test_two_posts_at_once_one_runs_one_is_refused(chat, fake, app):
    client, account = chat
    fake.script(reply("hello"))
    conversation_id = _start(client, account, "hi")
    fake.script(call_tool("calc__slow", {"seconds": 1}), reply("slept"))
    barrier = threading.Barrier(2)

    def post(message: str):
        barrier.wait()
        return client.post(
            "/chat",
            headers=account.headers,
            json={"message": message, "conversation_id": conversation_id},
        )

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(
            f.result().status_code for f in [pool.submit(post, "@calc a"), pool.submit(post, "b")]
        )
    assert statuses == [200, 409]
    assert _stored_history_violations(app, conversation_id) == []


def test_a_turn_left_pending_by_a_dead_worker_stops_counting_after_the_lease(
    database_url, fake, mcp_config, app
):
    settings = test_settings(
        database_url, chat_max_concurrent=0, **chat_settings(fake.url, mcp_config)
    )
    # A one-second lease, below what CHAT_LEASE_SECONDS accepts (10), so the test need not wait.
    limits = settings.limits.model_copy(update={"chat_lease_seconds": 1})
    chat = create_app(settings.model_copy(update={"limits": limits}))
    try:
        client, account = chat.test_client(), create_account(app)
        fake.reset()
        fake.script(reply("hello"))
        conversation_id = _start(client, account, "hi")
        with app.app_context():
            db.session.add(
                ConversationMessage(
                    conversation_id=conversation_id,
                    user_id=account.id,
                    role="user",
                    content=[{"type": "text", "text": "never answered"}],
                    status="pending",
                )
            )
            db.session.commit()
        body = {"message": "next", "conversation_id": conversation_id}
        assert client.post("/chat", headers=account.headers, json=body).status_code == 409
        time.sleep(1.2)
        fake.script(reply("back"))
        assert client.post("/chat", headers=account.headers, json=body).status_code == 200
        assert _stored_history_violations(app, conversation_id) == []
    finally:
        close_services(chat)


def test_a_conversation_deleted_under_a_stale_turn_ends_the_turn_without_a_500(chat, fake, app):
    """What a delete after the lease ran out does to the turn still running: it answers, and
    stores nothing more (no foreign-key error reaches the client)."""
    client, account = chat
    fake.script(reply("hello"))
    conversation_id = _start(client, account, "hi")
    fake.script(call_tool("calc__slow", {"seconds": 1.5}), reply("slept"))
    with ThreadPoolExecutor(1) as pool:
        turn = pool.submit(
            client.post,
            "/chat",
            headers=account.headers,
            json={"message": "@calc sleep", "conversation_id": conversation_id},
        )
        _wait_for_requests(fake, 2)
        with app.app_context():  # as an expired lease would allow
            db.session.delete(db.session.get(Conversation, conversation_id))
            db.session.commit()
        response = turn.result()
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.get_json()["message"]["content"] == "slept"
    with app.app_context():
        assert db.session.get(Conversation, conversation_id) is None
        assert db.session.scalars(select(ConversationMessage)).all() == []
