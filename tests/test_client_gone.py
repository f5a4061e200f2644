"""A non-streamed turn whose client leaves stops between rounds (issue 17.5), through gunicorn."""

from __future__ import annotations

import time

import psycopg2
import pytest
import requests

from tests.chat_setup import chat_env, write_mcp_config
from tests.conftest import TEST_SECRET
from tests.fakes.fake_llm import FakeLLM, call_tool, reply
from tests.live_server import gunicorn

pytestmark = pytest.mark.slow


def _token(server) -> dict[str, str]:
    body = {"email": "leaver@example.com", "password": "a long enough password"}
    requests.post(server.url + "/auth/register", json=body, timeout=10)
    token = requests.post(server.url + "/auth/login", json=body, timeout=10).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    conn.close()
    return rows


def test_a_client_that_leaves_during_a_tool_gets_no_second_model_call(make_database, tmp_path):
    url = make_database()
    with FakeLLM() as fake:
        env = {
            "ENVIRONMENT": "test",
            "DATABASE_URL": url,
            "JWT_SECRET_KEY": TEST_SECRET,
            **chat_env(fake.url, write_mcp_config(tmp_path)),
        }
        with gunicorn(env, workers=1, threads=4) as server:
            headers = _token(server)
            # A first turn waits for the MCP server to start (only the tool run should be slow).
            fake.script(reply("warm"))
            warm = requests.post(
                server.url + "/chat", headers=headers, json={"message": "hi"}, timeout=30
            )
            assert warm.status_code == 200
            fake.reset()
            fake.script(call_tool("calc__slow", {"seconds": 4}), reply("the paid second answer"))
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.post(
                    server.url + "/chat",
                    headers=headers,
                    json={"message": "@calc sleep for 4 seconds"},
                    timeout=(5, 1.5),
                )
            deadline = time.monotonic() + 20
            finals: list[tuple] = []
            while time.monotonic() < deadline and len(finals) < 2:
                time.sleep(0.2)
                finals = _rows(
                    url,
                    "SELECT status FROM messages WHERE role = 'assistant'"
                    " AND stop_reason IS NOT NULL ORDER BY created_at",
                )
            status = finals[-1][0]
            time.sleep(1.0)  # room for a second model call, if the turn were to make one
            model_calls = len(fake.requests)
    assert model_calls == 1
    assert status == "incomplete"
    # The tool's round is kept: the call and its result are stored, and the prompt is complete.
    assert _rows(url, "SELECT count(*) FROM tool_calls")[0][0] == 1
    assert _rows(url, "SELECT status FROM messages WHERE role = 'user'") == [("complete",)] * 2
