"""Real OpenAI clients, unchanged but for base URL and key, against the gateway over HTTP.

The official ``openai`` Python SDK, ``langchain-openai`` and the ``openai`` npm package (from
tests/clients, installed there with npm on first use).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import openai
import pytest
import requests
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.chat_setup import chat_env, write_mcp_config
from tests.conftest import TEST_SECRET
from tests.fakes.fake_llm import call_tool, fail, reply
from tests.live_server import api_key_with_ready_tools, gunicorn

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
    return api_key_with_ready_tools(gateway, "sdk@example.com")


@pytest.fixture
def client(gateway, api_key, fake):
    fake.reset()
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=0, timeout=30)
    yield sdk
    sdk.close()


def test_models_are_listed(client):
    ids = [m.id for m in client.models.list()]
    assert "openai/gpt-test" in ids
    # The alias chat completions take comes first, owned by the default provider.
    assert ids[0] == "default" and ids.count("default") == 1, ids
    assert client.models.retrieve("default").owned_by == "openai"


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
    # The client's system message keeps its place, after the gateway's own.
    assert first["messages"][1] == {"role": "system", "content": "Be brief."}


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
    fake.script(fail(500))
    with pytest.raises(openai.InternalServerError) as failure:
        client.chat.completions.create(
            model="openai/gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
    assert failure.value.status_code == 502
    assert failure.value.body["type"] == "server_error"
    assert failure.value.body["code"] == "upstream_error"


class Weather(BaseModel):
    city: str
    celsius: int


def test_parse_with_a_pydantic_model(client, fake):
    fake.script(reply('{"city": "Paris", "celsius": 18}'))
    completion = client.chat.completions.parse(
        model="openai/gpt-test",
        messages=[{"role": "user", "content": "weather in Paris as JSON"}],
        response_format=Weather,
    )
    assert completion.choices[0].message.parsed == Weather(city="Paris", celsius=18)
    sent = fake.requests[0].body["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"]["properties"]["celsius"]["type"] == "integer"


def test_models_retrieve(client):
    model = client.models.retrieve("openai/gpt-test")
    assert (model.id, model.owned_by) == ("openai/gpt-test", "openai")
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("no-such-model")
    assert missing.value.code == "model_not_found"


def test_error_classes(client, fake):
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="openai/gpt-test", messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert refused.value.param == "n"
    fake.script(fail(429, retry_after=100))
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(
            model="openai/gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
    assert limited.value.response.headers["retry-after"] == "100"
    assert limited.value.code == "rate_limit_exceeded"


def test_sdk_retries_are_the_only_retries(gateway, api_key, fake):
    fake.reset()
    fake.script(fail(500), fail(500), fail(500))
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=2)
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(
            model="openai/gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
    sdk.close()
    # One try by the client and two retries, each one upstream call: three, not nine.
    assert len(fake.requests) == 3


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"18C and sunny in {city}"


@pytest.fixture
def chat_model(gateway, api_key, fake):
    fake.reset()
    return ChatOpenAI(
        model="openai/gpt-test",
        base_url=gateway.url + "/v1",
        api_key=api_key,
        max_retries=0,
        timeout=30,
    )


def test_langchain_bind_tools_agent_loop(chat_model, fake):
    fake.script(call_tool("get_weather", {"city": "Paris"}), reply("Sunny, 18C."))
    model = chat_model.bind_tools([get_weather])
    messages = [HumanMessage("What is the weather in Paris?")]
    answer = model.invoke(messages)
    assert [c["name"] for c in answer.tool_calls] == ["get_weather"]
    messages.append(answer)
    for call in answer.tool_calls:
        messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    final = model.invoke(messages)
    assert final.content == "Sunny, 18C."
    assert fake.requests[-1].body["messages"][-1]["content"] == "18C and sunny in Paris"


def test_langchain_with_structured_output(chat_model, fake):
    fake.script(reply('{"city": "Oslo", "celsius": 3}'))
    structured = chat_model.with_structured_output(Weather)
    assert structured.invoke("Weather in Oslo?") == Weather(city="Oslo", celsius=3)


CLIENTS = Path(__file__).resolve().parent / "clients"


@pytest.fixture(scope="module")
def node_client():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(
            "node and npm are needed for the npm openai client test (apt-get install nodejs npm)"
        )
    if not (CLIENTS / "node_modules" / "openai").exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"], cwd=CLIENTS, check=True, timeout=300
        )
    return CLIENTS / "openai_client.mjs"


def test_the_npm_openai_package(node_client, gateway, api_key, fake):
    fake.reset()
    fake.script(
        reply("Hello, node."),
        reply("Streamed to node."),
        call_tool("get_weather", {"city": "Paris"}),
        reply("Sunny in Paris."),
    )
    done = subprocess.run(
        ["node", str(node_client), gateway.url + "/v1", api_key, "openai/gpt-test"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["created"] == "Hello, node."
    assert result["streamed"] == "Streamed to node."
    assert result["usage"]["total_tokens"] == 19
    assert (result["rounds"], result["final"]) == (2, "Sunny in Paris.")
