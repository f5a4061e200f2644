"""Fault injection: the database, the pool, MCP servers and the LLM upstream fail mid-traffic.

Each test asserts the failure is a clear answer (503 + Retry-After, 502/504, an error tool
result), that no acknowledged message is lost, and that the service recovers without a restart.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import psycopg2
import pytest
from sqlalchemy import text

from gateway import create_app
from gateway.database import upgrade_database
from gateway.extensions import db
from gateway.services import close_services
from tests.chat_setup import chat_settings, write_mcp_config
from tests.conftest import test_settings
from tests.factories import create_account
from tests.fakes.fake_llm import FakeLLM, call_tool, fail, reply
from tests.fakes.tcp_proxy import TCPProxy

pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def mcp_config(tmp_path_factory):
    return write_mcp_config(tmp_path_factory.mktemp("mcp"))


def _through(proxy: TCPProxy, url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(
        netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}", query=""
    ).geturl()


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    conn.close()
    return rows


def _assert_unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]["type"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0


@pytest.fixture
def proxied(make_database, fake, mcp_config):
    """A chat app whose every database connection goes through a fault proxy."""
    url = make_database()
    proxy = TCPProxy.for_database(url).start()
    app = create_app(
        test_settings(
            _through(proxy, url),
            db_pool_timeout=1.0,
            db_connect_timeout=1,
            chat_max_concurrent=0,
            **chat_settings(fake.url, mcp_config),
        )
    )
    upgrade_database(app)
    fake.reset()
    yield app, proxy, url
    proxy.stop()
    close_services(app)
    with app.app_context():
        db.engine.dispose()


def test_database_outage_during_a_stream_of_chats(proxied, fake, app):
    chat_app, proxy, url = proxied
    account = create_account(chat_app)
    api_key = chat_app.test_client().post("/auth/keys", headers=account.headers, json={"name": "k"})
    key_headers = {"Authorization": f"Bearer {api_key.get_json()['key']}"}
    client = chat_app.test_client()
    acknowledged, outcomes = [], []
    for i in range(12):
        if i == 4:
            proxy.stop()
        if i == 8:
            proxy.start()
        # No script: the fake answers "Fake answer to: <prompt>", so unsent turns queue nothing.
        response = client.post("/chat", headers=account.headers, json={"message": f"msg {i}"})
        if response.status_code == 200:
            acknowledged.append(response.get_json()["user_message_id"])
        else:
            _assert_unavailable(response)
            # Every authenticated path: a JWT (user lookup, blocklist) and an API key.
            _assert_unavailable(client.get("/auth/me", headers=account.headers))
            _assert_unavailable(client.get("/auth/me", headers=key_headers))
            _assert_unavailable(client.get("/conversations", headers=account.headers))
        outcomes.append(response.status_code)
    assert outcomes == [200] * 4 + [503] * 4 + [200] * 4
    # Every acknowledged message is stored, complete, with its answer; nothing half-written.
    stored = _rows(url, "SELECT id::text, status FROM messages WHERE role = 'user'")
    assert sorted(stored) == sorted((m, "complete") for m in acknowledged)
    answers = _rows(url, "SELECT content->0->>'text' FROM messages WHERE role = 'assistant'")
    assert sorted(a for (a,) in answers) == sorted(
        f"Fake answer to: msg {i}" for i in (0, 1, 2, 3, 8, 9, 10, 11)
    )
    assert client.get("/health/ready").status_code == 200


def test_database_lost_mid_turn_is_a_503_and_the_next_turn_works(proxied, fake):
    chat_app, proxy, url = proxied
    account = create_account(chat_app)
    client = chat_app.test_client()
    # The proxy cuts the database while the model is answering.
    fake.script(reply("never stored", delay=0.6))
    threading.Timer(0.2, proxy.stop).start()
    response = client.post("/chat", headers=account.headers, json={"message": "mid-turn"})
    _assert_unavailable(response)
    proxy.start()
    fake.reset()
    fake.script(reply("streamed loss", delay=0.6))
    threading.Timer(0.2, proxy.stop).start()
    streamed = client.post(
        "/chat", headers=account.headers, json={"message": "mid-stream", "stream": True}
    ).get_data(as_text=True)
    assert "event: error" in streamed and "service_unavailable" in streamed
    proxy.start()
    fake.reset()
    fake.script(reply("back"))
    again = client.post("/chat", headers=account.headers, json={"message": "again"})
    assert again.status_code == 200
    # The interrupted prompts were never acknowledged; no answer was stored for them.
    answers = _rows(url, "SELECT content->0->>'text' FROM messages WHERE role = 'assistant'")
    assert answers == [("back",)]


def test_an_exhausted_pool_is_a_503_not_a_401(database_url, fake, mcp_config, app):
    tiny = create_app(
        test_settings(
            database_url,
            db_pool_size=1,
            db_max_overflow=0,
            db_pool_timeout=0.5,
            **chat_settings(fake.url, mcp_config),
        )
    )
    account = create_account(app)
    client = tiny.test_client()
    assert client.get("/auth/me", headers=account.headers).status_code == 200
    with tiny.app_context():
        held = db.engine.connect()  # the only connection of the pool
        held.execute(text("SELECT 1"))
        try:
            for path in ("/auth/me", "/conversations"):
                _assert_unavailable(client.get(path, headers=account.headers))
            _assert_unavailable(
                client.post("/chat", headers=account.headers, json={"message": "hi"})
            )
        finally:
            held.close()
    assert client.get("/auth/me", headers=account.headers).status_code == 200
    close_services(tiny)
    with tiny.app_context():
        db.engine.dispose()


@pytest.fixture
def chat_client(database_url, fake, mcp_config, app):
    chat = create_app(test_settings(database_url, **chat_settings(fake.url, mcp_config)))
    fake.reset()
    # An admin, so that /mcp/servers shows each server's pid.
    yield chat.test_client(), create_account(app, role="admin")
    close_services(chat)


def _wait_ready(client, account, server: str, *, not_pid: int | None = None) -> int:
    """Wait until ``server`` is ready (with a process other than ``not_pid``); its pid."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        servers = client.get("/mcp/servers", headers=account.headers).get_json()["servers"]
        for s in servers:
            if s["name"] == server and s["state"] == "ready" and s["pid"] != not_pid:
                return s["pid"]
        time.sleep(0.1)
    raise AssertionError(f"{server} did not become ready")


def test_mcp_stdio_server_killed_mid_call_gives_an_error_result_and_recovers(chat_client, fake):
    client, account = chat_client
    crashed_pid = _wait_ready(client, account, "calc")
    fake.script(call_tool("calc__crash", {}), reply("the tool died"))
    response = client.post("/chat", headers=account.headers, json={"message": "@calc crash"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    [call] = body["tool_calls"]
    assert call["is_error"] is True
    assert body["message"]["content"] == "the tool died"
    # The model saw the failure as a tool result.
    assert fake.requests[-1].body["messages"][-1]["role"] == "tool"
    # The hub restarts the server (a new process; the old state may read "ready" for a moment).
    _wait_ready(client, account, "calc", not_pid=crashed_pid)
    fake.script(call_tool("calc__add", {"a": 1, "b": 2}), reply("3"))
    again = client.post("/chat", headers=account.headers, json={"message": "add 1 and 2"})
    [call] = again.get_json()["tool_calls"]
    assert (call["is_error"], call["summary"]) == (False, "3")


@pytest.mark.parametrize(
    ("script", "status", "error_type"),
    [
        (fail(500), 502, "upstream_error"),
        (fail(503), 502, "upstream_error"),
        # Longer than LLM_MAX_RETRY_WAIT: not retried, and the 429 is passed on as one.
        (fail(429, retry_after=3600), 429, "rate_limit_exceeded"),
        (reply("late", delay=3.0), 504, "upstream_timeout"),
    ],
)
def test_llm_failures_keep_the_message_and_the_next_turn_works(
    database_url, fake, mcp_config, app, script, status, error_type
):
    chat = create_app(
        test_settings(
            database_url, **chat_settings(fake.url, mcp_config, llm_env={"LLM_TIMEOUT": "1"})
        )
    )
    client, account = chat.test_client(), create_account(app)
    fake.reset()
    fake.script(script)
    response = client.post("/chat", headers=account.headers, json={"message": "hello"})
    assert response.status_code == status
    assert response.get_json()["error"]["type"] == error_type
    if status == 429:
        assert response.headers["Retry-After"] == "3600"
    conversation = client.get("/conversations", headers=account.headers).get_json()
    [listed] = conversation["conversations"]
    detail = client.get(f"/conversations/{listed['id']}", headers=account.headers).get_json()
    assert [(m["role"], m["status"]) for m in detail["messages"]] == [("user", "failed")]
    fake.script(reply("recovered"))
    again = client.post(
        "/chat", headers=account.headers, json={"message": "again", "conversation_id": listed["id"]}
    )
    assert again.get_json()["message"]["content"] == "recovered"
    close_services(chat)


def test_an_llm_stream_cut_midway_is_an_error_event_and_the_partial_text_is_not_an_answer(
    chat_client, fake
):
    client, account = chat_client
    fake.script(reply("one two three four five six seven eight", cut_after=3))
    text_ = client.post(
        "/chat", headers=account.headers, json={"message": "hello", "stream": True}
    ).get_data(as_text=True)
    assert "event: error" in text_ and "upstream_error" in text_
    assert "event: done" not in text_
    fake.script(reply("whole answer"))
    again = client.post("/chat", headers=account.headers, json={"message": "hello again"})
    assert again.get_json()["message"]["content"] == "whole answer"


@pytest.mark.slow
def test_a_worker_killed_mid_request_is_replaced_and_other_requests_finish(make_database, tmp_path):
    import os
    import signal
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from tests.chat_setup import chat_env
    from tests.conftest import TEST_SECRET
    from tests.live_server import bearer_headers, gunicorn
    from tests.test_mcp_processes import wait_for, worker_pids

    url = make_database()
    with FakeLLM(latency=1.5) as fake:
        env = {
            "ENVIRONMENT": "test",
            "DATABASE_URL": url,
            "JWT_SECRET_KEY": TEST_SECRET,
            "CHAT_MAX_CONCURRENT": "0",
            **chat_env(fake.url, write_mcp_config(tmp_path)),
        }
        with gunicorn(env, workers=2, threads=4) as server:
            headers = bearer_headers(server, "killed@example.com")

            def chat(i: int):
                try:
                    return requests.post(
                        server.url + "/chat",
                        headers=headers,
                        json={"message": f"slow {i}"},
                        timeout=30,
                    )
                except requests.ConnectionError as exc:
                    return exc

            victim = min(worker_pids(server.process.pid))
            with ThreadPoolExecutor(6) as pool:
                futures = [pool.submit(chat, i) for i in range(6)]
                assert wait_for(lambda: len(fake.requests) >= 4, timeout=10)
                os.kill(victim, signal.SIGKILL)
                results = [f.result() for f in futures]
            ok = [r for r in results if not isinstance(r, Exception)]
            assert all(r.status_code == 200 for r in ok), [r.status_code for r in ok]
            assert ok, "no request survived on the other worker"
            assert wait_for(
                lambda: (
                    victim not in worker_pids(server.process.pid)
                    and len(worker_pids(server.process.pid)) == 2
                )
            )
            fake.latency = 0.0
            after = requests.post(
                server.url + "/chat", headers=headers, json={"message": "after"}, timeout=30
            )
            assert after.status_code == 200
            acknowledged = {r.json()["user_message_id"] for r in [*ok, after]}
    stored = {m for (m,) in _rows(url, "SELECT id::text FROM messages WHERE status = 'complete'")}
    assert acknowledged <= stored
