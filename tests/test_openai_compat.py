"""The official openai SDK, unchanged but for base_url and api_key, against the gateway."""

from __future__ import annotations

import openai
import pytest
import requests

from tests.chat_setup import chat_env, write_mcp_config
from tests.conftest import TEST_SECRET
from tests.fakes.fake_llm import call_tool, reply
from tests.live_server import gunicorn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(make_database, tmp_path_factory, fake):
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": make_database(),
        "JWT_SECRET_KEY": TEST_SECRET,
        **chat_env(fake.url, write_mcp_config(tmp_path_factory.mktemp("mcp"))),
    }
    with gunicorn(env, workers=1, threads=4) as server:
        yield server


@pytest.fixture(scope="module")
def api_key(gateway):
    body = {"email": "sdk@example.com", "password": "a long enough password"}
    requests.post(gateway.url + "/auth/register", json=body, timeout=10)
    token = requests.post(gateway.url + "/auth/login", json=body, timeout=10).json()["access_token"]
    created = requests.post(
        gateway.url + "/auth/keys",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": "openai sdk"},
        timeout=10,
    )
    return created.json()["key"]


@pytest.fixture
def client(gateway, api_key, fake):
    fake.reset()
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=0, timeout=30)
    yield sdk
    sdk.close()


def test_models_are_listed(client):
    ids = [m.id for m in client.models.list()]
    assert "openai/gpt-test" in ids


def test_a_completion_runs_an_mcp_tool_server_side(client, fake):
    fake.script(call_tool("calc__add", {"a": 40, "b": 2}), reply("It is 42."))
    completion = client.chat.completions.create(
        model="openai/gpt-test",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "add 40 and 2"},
        ],
    )
    assert completion.choices[0].message.content == "It is 42."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == 38
    gateway_info = completion.model_extra["gateway"]
    assert [c["tool"] for c in gateway_info["tool_calls"]] == ["add"]
    # The upstream saw the gateway's tools and the tool result, not the client.
    first, second = (r.body for r in fake.requests)
    assert "calc__add" in [t["function"]["name"] for t in first["tools"]]
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": second["messages"][-2]["tool_calls"][0]["id"],
        "content": "42",
    }
    assert "Be brief." in first["messages"][0]["content"]


def test_a_streamed_completion_with_usage(client, fake):
    fake.script(call_tool("calc__add", {"a": 1, "b": 2}), reply("One plus two is three."))
    stream = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "add 1 and 2"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "One plus two is three."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 14


def test_the_stream_helper_works_too(client, fake):
    fake.script(reply("Hello from the gateway."))
    with client.chat.completions.stream(
        model="openai/gpt-test", messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello from the gateway."


def test_the_exchange_is_kept_when_asked(client, gateway, api_key, fake):
    fake.script(reply("Stored."))
    raw = client.chat.completions.with_raw_response.create(
        model="openai/gpt-test",
        messages=[{"role": "user", "content": "keep this"}],
        extra_headers={"X-Conversation-Id": "new"},
    )
    conversation_id = raw.headers["X-Conversation-Id"]
    detail = requests.get(
        f"{gateway.url}/conversations/{conversation_id}",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    ).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]


def test_errors_come_in_openai_shape(client, gateway):
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="openai/gpt-test", messages=[])
    assert bad.value.body["type"] == "invalid_request_error"
    wrong_key = openai.OpenAI(base_url=gateway.url + "/v1", api_key="mgw_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong_key.models.list()
    wrong_key.close()


def test_upstream_failure_is_a_502_in_openai_shape(client, fake):
    from tests.fakes.fake_llm import fail

    fake.script(fail(500))
    with pytest.raises(openai.InternalServerError) as failure:
        client.chat.completions.create(
            model="openai/gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
    assert failure.value.status_code == 502
    assert failure.value.body["type"] == "upstream_error"
