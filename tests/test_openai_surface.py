"""/v1 over HTTP (gunicorn) against the fake upstream, which records what it receives.

Every row of docs/openai-compatibility.md's field table is sent to both providers; messages,
client tools, errors and upstream failures are checked on the wire.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from gateway.compat import fields
from tests.chat_setup import chat_env, write_mcp_config
from tests.conftest import TEST_SECRET
from tests.fakes.fake_llm import Script, call_tool, call_tools, fail, reply
from tests.live_server import api_key_with_ready_tools, gunicorn

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parent.parent / "docs" / "openai-compatibility.md"
OPENAI_MODEL = "openai/gpt-test"
ANTHROPIC_MODEL = "anthropic/claude-test"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

# A value to send for each field of the table, and what Anthropic must receive for it.
SAMPLES = {
    "max_tokens": (4000, {"max_tokens": 4000}),
    "max_completion_tokens": (4000, {"max_tokens": 4000}),
    "temperature": (0.3, None),
    "top_p": (0.9, None),
    "stop": (["END", "STOP"], {"stop_sequences": ["END", "STOP"]}),
    "seed": (7, None),
    "n": (2, None),
    "response_format": (
        {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}}},
        {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
    ),
    "tool_choice": ("required", {"tool_choice": {"type": "any"}}),
    "parallel_tool_calls": (
        False,
        {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
    ),
    "presence_penalty": (0.5, None),
    "frequency_penalty": (0.5, None),
    "logit_bias": ({"50256": -100}, None),
    "logprobs": (True, None),
    "top_logprobs": (3, None),
    "user": ("user-42", {"metadata": {"user_id": "user-42"}}),
    "metadata": ({"team": "a"}, None),
    "reasoning_effort": ("high", {"output_config": {"effort": "high"}}),
    "service_tier": ("default", {"service_tier": "standard_only"}),
    "functions": ([{"name": "f", "parameters": {"type": "object"}}], None),
    "function_call": ("auto", None),
    "any other field": (None, None),
}
UNKNOWN_FIELD, UNKNOWN_VALUE = "top_k", 40


def field_table() -> list[tuple[str, str, str]]:
    """(field, OpenAI-compatible fate, Anthropic fate) for each row of the doc's table."""
    text = DOC.read_text()
    section = text.split("## Request fields", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("Field", "---"):
            continue
        rows.append((cells[0].strip("`"), cells[1], cells[2]))
    return rows


@pytest.fixture(scope="module")
def gateway(make_database, tmp_path_factory, fake):
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": make_database(),
        "JWT_SECRET_KEY": TEST_SECRET,
        **chat_env(fake.url, write_mcp_config(tmp_path_factory.mktemp("mcp"))),
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_MODEL": "claude-test",
        "ANTHROPIC_MAX_TOKENS": "2048",
        # Dozens of requests a minute from one user: the chat rate limit is a policy, off here.
        "CHAT_RATE_LIMIT": "0",
    }
    with gunicorn(env, workers=1, threads=4) as server:
        yield server


@pytest.fixture(scope="module")
def headers(gateway):
    return {"Authorization": f"Bearer {api_key_with_ready_tools(gateway, 'surface@example.com')}"}


@pytest.fixture
def post(gateway, headers, fake):
    fake.reset()

    def send(body, **kwargs):
        kwargs.setdefault("headers", headers)
        return requests.post(gateway.url + "/v1/chat/completions", json=body, timeout=30, **kwargs)

    return send


def user(text):
    return [{"role": "user", "content": text}]


def test_the_table_lists_every_field_the_issue_names():
    named = [row[0] for row in field_table()]
    assert set(named) == {"model", "messages", "stream", "stream_options", "tools", *SAMPLES}
    assert fields.HANDLED <= set(named)


@pytest.mark.parametrize("row", field_table(), ids=lambda row: row[0])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_each_field_has_its_documented_fate(row, provider, post, fake):
    name, openai_fate, anthropic_fate = row
    fate = openai_fate if provider == "openai" else anthropic_fate
    if fate == "gateway":
        check_gateway_field(name, provider, post, fake)
        return
    value, anthropic_expected = SAMPLES[name]
    if name == "any other field":
        name, value = UNKNOWN_FIELD, UNKNOWN_VALUE
    body = {
        "model": OPENAI_MODEL if provider == "openai" else ANTHROPIC_MODEL,
        "messages": user("hello there"),
        "tools": [WEATHER],
        name: value,
    }
    fake.script(reply("ok"))
    response = post(body)
    if fate == "400":
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == name
        assert error["type"] == "invalid_request_error"
        assert fake.requests == []
        return
    assert response.status_code == 200, response.text
    sent = fake.requests[0].body
    if fate == "forwarded":
        assert sent[name] == value
    else:
        assert fate.startswith("mapped to `"), fate
        for key, expected in anthropic_expected.items():
            assert sent[key] == expected


def check_gateway_field(name, provider, post, fake):
    """The fields the gateway acts on itself, each checked on the wire."""
    model = OPENAI_MODEL if provider == "openai" else ANTHROPIC_MODEL
    body = {"model": model, "messages": user("hello there"), "tools": [WEATHER]}
    if name == "model":
        response = post({**body, "model": "no-such-model"})
        assert (response.status_code, response.json()["error"]["code"]) == (404, "model_not_found")
        assert fake.requests == []
        return
    stream = name in ("stream", "stream_options")
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": name == "stream_options"}}
    fake.script(reply("ok"))
    response = post(body, stream=stream)
    assert response.status_code == 200, response.text
    sent = fake.requests[0].body
    if name == "messages":
        assert sent["messages"][-1] == {"role": "user", "content": "hello there"}
    elif name == "tools":
        offered = [t.get("name") or t["function"]["name"] for t in sent["tools"]]
        assert "get_weather" in offered
    else:
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = sse_chunks(response)
        assert sent["stream"] is True
        with_usage = [c for c in chunks if c.get("usage")]
        assert len(with_usage) == (1 if name == "stream_options" else 0)


def test_the_output_cap_defaults_to_the_provider_setting(post, fake):
    assert post({"model": OPENAI_MODEL, "messages": user("hi")}).status_code == 200
    assert "max_tokens" not in fake.requests[0].body
    assert "max_completion_tokens" not in fake.requests[0].body
    assert post({"model": ANTHROPIC_MODEL, "messages": user("hi")}).status_code == 200
    assert fake.requests[1].body["max_tokens"] == 2048


def test_a_streamed_request_honours_the_fields_too(post, fake):
    fake.script(reply("streamed answer"))
    body = {"model": OPENAI_MODEL, "messages": user("hi"), "stream": True, "seed": 3, "top_k": 5}
    response = post(body, stream=True)
    assert response.status_code == 200
    assert "streamed" in response.text
    sent = fake.requests[0].body
    assert (sent["seed"], sent["top_k"], sent["stream"]) == (3, 5, True)


IMAGE = "data:image/png;base64,iVBORw0KGgo="


def test_image_and_text_parts_reach_both_providers_in_order(post, fake):
    content = [
        {"type": "text", "text": "What is"},
        {"type": "image_url", "image_url": {"url": IMAGE}},
        {"type": "text", "text": "in this picture?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    messages = [{"role": "user", "content": content}]
    assert post({"model": OPENAI_MODEL, "messages": messages}).status_code == 200
    assert fake.requests[0].body["messages"][-1] == {"role": "user", "content": content}
    assert post({"model": ANTHROPIC_MODEL, "messages": messages}).status_code == 200
    assert fake.requests[1].body["messages"][-1]["content"] == [
        {"type": "text", "text": "What is"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "text", "text": "in this picture?"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]


def test_a_part_anthropic_cannot_take_is_a_400_naming_it(post, fake):
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}, audio]}]
    response = post({"model": ANTHROPIC_MODEL, "messages": messages})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[1].type"
    assert post({"model": OPENAI_MODEL, "messages": messages}).status_code == 200
    assert fake.requests[0].body["messages"][-1]["content"][1] == audio


CLIENT_HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "18C and sunny"},
    {"role": "developer", "content": "Answer in French."},
    {"role": "user", "content": "And so?"},
]


def test_client_tool_history_and_system_messages_reach_an_openai_upstream(post, fake):
    response = post({"model": OPENAI_MODEL, "messages": CLIENT_HISTORY, "tools": [WEATHER]})
    assert response.status_code == 200, response.text
    sent = fake.requests[0].body["messages"]
    assert sent[0]["role"] == "system"  # the gateway's own
    # Every message as the client sent it, in order: system, tool call, tool result, developer.
    assert sent[1:] == CLIENT_HISTORY


def test_client_tool_history_reaches_anthropic(post, fake):
    response = post({"model": ANTHROPIC_MODEL, "messages": CLIENT_HISTORY, "tools": [WEATHER]})
    assert response.status_code == 200, response.text
    sent = fake.requests[0].body
    assert sent["system"].endswith("Be brief.\n\nAnswer in French.")
    assert sent["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "c1",
                    "content": [{"type": "text", "text": "18C and sunny"}],
                    "is_error": False,
                }
            ],
        },
        {"role": "user", "content": "And so?"},
    ]


def test_a_client_tool_call_ends_the_response_and_its_result_continues_the_turn(post, fake):
    fake.script(call_tool("get_weather", {"city": "Paris"}), reply("It is sunny."))
    first = post({"model": OPENAI_MODEL, "messages": user("Weather in Paris?"), "tools": [WEATHER]})
    choice = first.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    messages = [
        *user("Weather in Paris?"),
        choice["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"},
    ]
    second = post({"model": OPENAI_MODEL, "messages": messages, "tools": [WEATHER]})
    assert second.json()["choices"][0]["message"]["content"] == "It is sunny."
    assert fake.requests[-1].body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": "18C and sunny",
    }


def sse_chunks(response):
    chunks = []
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data: ") and line != "data: [DONE]":
            chunks.append(json.loads(line[6:]))
    return chunks


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_one_response_calling_both_kinds_of_tool(stream, post, fake):
    fake.script(
        call_tools(("calc__add", {"a": 40, "b": 2}), ("get_weather", {"city": "Oslo"})),
        reply("42, and 18C in Oslo."),
    )
    body = {
        "model": OPENAI_MODEL,
        "messages": user("add 40 and 2"),
        "tools": [WEATHER],
        "stream": stream,
    }
    response = post(body, stream=stream)
    assert response.status_code == 200
    if stream:
        chunks = sse_chunks(response)
        deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
        calls = [call for d in deltas for call in d.get("tool_calls", ())]
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{k: v for k, v in call.items() if k != "index"} for call in calls],
        }
    else:
        choice = response.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        message = choice["message"]
    # The client sees only its own call; the gateway ran the MCP one.
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["get_weather"]
    assert [m["role"] for m in fake.requests[0].body["messages"]][-1] == "user"
    call_id = message["tool_calls"][0]["id"]
    messages = [
        *body["messages"],
        message,
        {"role": "tool", "tool_call_id": call_id, "content": "18C"},
    ]
    final = post({"model": OPENAI_MODEL, "messages": messages, "tools": [WEATHER]})
    assert final.json()["choices"][0]["message"]["content"] == "42, and 18C in Oslo."
    # The model saw its whole response, the MCP result and the client's result, in order.
    sent = fake.requests[-1].body["messages"]
    assistant = sent[-3]
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == [
        "calc__add",
        "get_weather",
    ]
    assert sent[-2] == {
        "role": "tool",
        "tool_call_id": assistant["tool_calls"][0]["id"],
        "content": "42",
    }
    assert sent[-1] == {"role": "tool", "tool_call_id": call_id, "content": "18C"}


def test_a_client_tool_named_like_a_gateway_tool_is_a_400(post):
    clash = {"type": "function", "function": {"name": "calc__add", "parameters": {}}}
    response = post({"model": OPENAI_MODEL, "messages": user("hi"), "tools": [clash]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools[0].function.name"


def test_parallel_calls_streamed_at_index_zero_are_two_calls(post, fake):
    fake.script(
        call_tools(("calc__echo", {"text": "a"}), ("calc__add", {"a": 1, "b": 2}), same_index=True),
        reply("done"),
    )
    body = {"model": OPENAI_MODEL, "messages": user("echo a and add 1 and 2"), "stream": True}
    response = post(body, stream=True)
    assert response.status_code == 200
    assert "done" in response.text
    results = fake.requests[1].body["messages"]
    assert [m["content"] for m in results if m["role"] == "tool"] == ["a", "3"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_upstream_429_stays_a_429_with_its_retry_after(stream, post, fake):
    fake.script(fail(429, retry_after=100))
    response = post({"model": OPENAI_MODEL, "messages": user("hi"), "stream": stream})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "100"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(fake.requests) == 1


def test_an_upstream_500_is_tried_once_by_the_gateway(post, fake):
    fake.script(fail(500), fail(500), fail(500))
    response = post({"model": OPENAI_MODEL, "messages": user("hi")})
    assert response.status_code == 502
    assert len(fake.requests) == 1


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL])
def test_a_200_html_page_is_a_502_naming_the_provider(model, post, fake, gateway):
    fake.script(Script(raw_body="<html><body>502 Bad Gateway</body></html>"))
    response = post({"model": model, "messages": user("hi")})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert ("OpenAI-compatible" if model == OPENAI_MODEL else "Anthropic") in error["message"]
    assert "Traceback" not in gateway.log()


def test_errors_have_openai_types_and_codes(gateway, headers, post):
    bad_key = requests.get(
        gateway.url + "/v1/models", headers={"Authorization": "Bearer mgw_nope"}, timeout=10
    )
    assert bad_key.status_code == 401
    assert bad_key.json()["error"]["code"] == "invalid_api_key"
    unknown = post({"model": "no-such-model", "messages": user("hi")})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "model_not_found")
    for method, path, status in (("GET", "/v1/nowhere", 404), ("GET", "/v1/chat/completions", 405)):
        response = requests.request(method, gateway.url + path, headers=headers, timeout=10)
        assert response.status_code == status
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"
    model = requests.get(gateway.url + "/v1/models/" + OPENAI_MODEL, headers=headers, timeout=10)
    assert model.json() == {
        "id": OPENAI_MODEL,
        "object": "model",
        "created": 0,
        "owned_by": "openai",
    }
    missing = requests.get(gateway.url + "/v1/models/nope", headers=headers, timeout=10)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "model_not_found")
    # The alias chat completions take exists for the SDKs' models.retrieve too.
    alias = requests.get(gateway.url + "/v1/models/default", headers=headers, timeout=10)
    assert alias.json() == {"id": "default", "object": "model", "created": 0, "owned_by": "openai"}


def test_the_doc_table_agrees_with_the_anthropic_field_list():
    for name, _, anthropic_fate in field_table():
        if anthropic_fate.startswith("mapped"):
            assert name in fields.ANTHROPIC_MAPPED, name
        elif anthropic_fate == "400" and name in fields.ANTHROPIC_MAPPED:
            assert name in ("n", "logprobs"), name  # only their no-op value passes


def test_a_kept_conversation_carries_the_client_tool_loop(post, fake, gateway, headers):
    fake.script(
        call_tools(("calc__add", {"a": 40, "b": 2}), ("get_weather", {"city": "Oslo"})),
        reply("42, and 18C."),
    )
    body = {"model": OPENAI_MODEL, "messages": user("add 40 and 2"), "tools": [WEATHER]}
    first = post(body, headers={**headers, "X-Conversation-Id": "new"})
    assert first.status_code == 200, first.text
    conversation_id = first.headers["X-Conversation-Id"]
    message = first.json()["choices"][0]["message"]
    messages = [
        *body["messages"],
        message,
        {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "18C"},
    ]
    second = post(
        {**body, "messages": messages}, headers={**headers, "X-Conversation-Id": conversation_id}
    )
    assert second.json()["choices"][0]["message"]["content"] == "42, and 18C."
    assert second.headers["X-Conversation-Id"] == conversation_id
    stored = requests.get(
        f"{gateway.url}/conversations/{conversation_id}", headers=headers, timeout=10
    ).json()["messages"]
    assert stored[-1]["content"] == [{"type": "text", "text": "42, and 18C."}]
    assert {m["status"] for m in stored if m["role"] == "user"} == {"complete"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("stop", 5),
        ("stop", ["ok", 3]),
        ("response_format", "json"),
        ("response_format", {"type": "json_schema", "json_schema": "x"}),
        ("reasoning_effort", ["high"]),
        ("service_tier", {"tier": 1}),
        ("parallel_tool_calls", "no"),
    ],
)
def test_a_mapped_field_of_the_wrong_type_is_a_400_not_a_500(name, value, post, fake):
    body = {"model": ANTHROPIC_MODEL, "messages": user("hi"), "tools": [WEATHER], name: value}
    response = post(body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == name
    assert fake.requests == []


@pytest.mark.parametrize(
    ("name", "value", "param"),
    [
        ("stream", "yes", "stream"),
        ("stream", 1, "stream"),
        ("n", True, "n"),
        ("max_tokens", "5", "max_tokens"),
        ("max_completion_tokens", False, "max_completion_tokens"),
        ("model", 5, "model"),
        ("messages", [{"role": "user", "content": 5}], "messages[0].content"),
        ("messages", [{"role": "user", "content": [5]}], "messages[0].content"),
        ("stream_options", {"include_usage": "no"}, "stream_options.include_usage"),
    ],
)
def test_a_consumed_field_is_never_coerced_from_another_type(name, value, param, post, fake):
    # OpenAI's validation is by JSON type: "yes" is no boolean, true no number.
    body = {"model": OPENAI_MODEL, "messages": user("hi"), name: value}
    response = post(body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    # The param names what the client sent, never the member of a union pydantic tried.
    assert (error["type"], error["param"]) == ("invalid_request_error", param), error
    assert error["message"].startswith(f"{param}: "), error
    assert fake.requests == []


@pytest.mark.parametrize("body", [[], "hi", 5])
def test_a_body_that_is_no_json_object_is_a_400_naming_no_class(body, post, fake):
    response = post(body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", None), error
    assert "CompletionRequest" not in error["message"] and "object" in error["message"], error
    assert fake.requests == []


def test_an_integer_written_with_a_zero_fraction_is_an_integer(post, fake):
    # JSON Schema (and the published document) counts 7.0 as an integer; the upstream gets 7.
    body = {"model": ANTHROPIC_MODEL, "messages": user("hi"), "max_tokens": 7.0}
    assert post(body).status_code == 200
    sent = fake.requests[0].body["max_tokens"]
    assert (sent, type(sent)) == (7, int)


def test_a_message_author_name_is_forwarded_or_refused(post, fake):
    messages = [{"role": "user", "content": "hi", "name": "alice"}]
    assert post({"model": OPENAI_MODEL, "messages": messages}).status_code == 200
    assert fake.requests[0].body["messages"][-1] == {
        "role": "user",
        "content": "hi",
        "name": "alice",
    }
    refused = post({"model": ANTHROPIC_MODEL, "messages": messages})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "messages[0].name"
