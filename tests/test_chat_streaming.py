"""Streaming through a real gunicorn process: event order, and a client that goes away."""

from __future__ import annotations

import time

import psycopg2
import pytest
import requests

from tests.chat_setup import chat_env, write_mcp_config
from tests.conftest import TEST_SECRET
from tests.fakes.fake_llm import FakeLLM, call_tool, reply
from tests.live_server import bearer_headers, gunicorn

pytestmark = pytest.mark.slow


def _events(response: requests.Response):
    """(event, data line) pairs as they arrive."""
    name = None
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: ") and name:
            yield name, line[len("data: ") :]
            name = None


def test_sse_events_arrive_in_order_through_gunicorn(make_database, tmp_path):
    url = make_database()
    with FakeLLM() as fake:
        env = {
            "ENVIRONMENT": "test",
            "DATABASE_URL": url,
            "JWT_SECRET_KEY": TEST_SECRET,
            **chat_env(fake.url, write_mcp_config(tmp_path)),
        }
        fake.script(
            call_tool("calc__add", {"a": 20, "b": 22}), reply("The answer is 42, of course.")
        )
        with gunicorn(env, workers=1, threads=4) as server:
            with requests.post(
                server.url + "/chat",
                headers={
                    **bearer_headers(server, "streamer@example.com"),
                    "Accept": "text/event-stream",
                },
                json={"message": "add 20 and 22"},
                stream=True,
                timeout=30,
            ) as response:
                assert response.headers["Content-Type"].startswith("text/event-stream")
                assert response.headers["X-Accel-Buffering"] == "no"
                events = list(_events(response))
    names = [name for name, _ in events]
    assert names[0] == "routing"
    assert names[1:3] == ["tool_call", "tool_result"]
    assert set(names[3:-1]) == {"delta"}
    assert names[-1] == "done"
    assert '"42"' in events[2][1]
    text = "".join(
        data.split('"text": "', 1)[1].rsplit('"', 1)[0] for name, data in events if name == "delta"
    )
    assert text == "The answer is 42, of course."


def test_a_client_disconnect_saves_the_partial_answer_and_frees_the_thread(make_database, tmp_path):
    url = make_database()
    long_answer = " ".join(f"word{i}" for i in range(200))
    with FakeLLM(chunk_delay=0.05) as fake:
        env = {
            "ENVIRONMENT": "test",
            "DATABASE_URL": url,
            "JWT_SECRET_KEY": TEST_SECRET,
            **chat_env(fake.url, write_mcp_config(tmp_path)),
        }
        fake.script(reply(long_answer))
        # One worker with one thread: if the stream kept it, /health could not answer.
        with gunicorn(env, workers=1, threads=1) as server:
            headers = bearer_headers(server, "streamer@example.com")
            response = requests.post(
                server.url + "/chat",
                headers=headers,
                json={"message": "tell me a long story", "stream": True},
                stream=True,
                timeout=30,
            )
            deltas = 0
            for name, _ in _events(response):
                deltas += name == "delta"
                if deltas == 5:
                    break
            response.close()
            started = time.monotonic()
            assert requests.get(server.url + "/health", timeout=10).status_code == 200
            freed_after = time.monotonic() - started
            status, text = _wait_for_final_message(url)
    assert freed_after < 5
    assert status == "incomplete"
    assert text and long_answer.startswith(text) and len(text) < len(long_answer)


def _wait_for_final_message(url: str) -> tuple[str | None, str | None]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT status, content->0->>'text' FROM messages "
                "WHERE role = 'assistant' ORDER BY created_at DESC LIMIT 1"
            )
            row = cur.fetchone()
        conn.close()
        if row:
            return row
        time.sleep(0.2)
    return None, None
