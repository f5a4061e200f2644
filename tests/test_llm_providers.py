"""Both providers through the real SDKs against the fake upstream: answers, streams, failures."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.llm import ChatRequest, Message, ToolCall, wire_name
from gateway.llm.errors import UpstreamError, UpstreamTimeout
from gateway.llm.registry import LLMRegistry
from gateway.tools import Tool, ToolResult
from tests.fakes.fake_llm import Script, call_tool, fail, reply
from tests.fakes.llm_settings import APIS, Providers, closed_url, settings_for

CLOCK = Tool(
    "time",
    "get_current_time",
    "Current time in a timezone.",
    {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
)
CLOCK_CALL = ToolCall(id="call_1", name="time__get_current_time", arguments={"timezone": "UTC"})
HELLO = ChatRequest(messages=(Message.user("Say hello"),), system="Be brief.", max_tokens=64)


@pytest.mark.parametrize("api", APIS)
def test_complete_returns_plain_answer_with_usage(providers, fake, api):
    fake.script(reply("Hello there."))
    response = providers(api).complete(HELLO)
    assert response.text == "Hello there."
    assert (response.provider, response.model, response.stop_reason) == (
        api,
        "claude-test" if api == "anthropic" else "gpt-test",
        "end_turn",
    )
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 7)
    assert response.tool_calls == ()
    sent = fake.requests[-1]
    assert sent.headers["authorization"] == "Bearer test-key"
    # A base_url means a compatible server, which gets the classic max_tokens.
    assert sent.body["max_tokens"] == 64
    if api == "anthropic":
        assert sent.body["system"] == "Be brief."
    else:
        assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("api", APIS)
def test_stream_yields_text_deltas_in_order_then_done(providers, fake, api):
    fake.script(reply("one two three four five six"))
    events = list(providers(api).stream(HELLO))
    deltas = [e.text for e in events if e.type == "text_delta"]
    assert len(deltas) == 3
    assert "".join(deltas) == "one two three four five six"
    assert events[-1].type == "done"
    assert events[-1].response.text == "one two three four five six"
    assert events[-1].response.usage.output_tokens == 7
    if api == "openai":
        assert fake.requests[-1].body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_tool_call_is_parsed(providers, fake, api, stream):
    fake.script(call_tool(wire_name(CLOCK), {"timezone": "Asia/Tokyo"}, text="Checking."))
    request = ChatRequest(messages=(Message.user("time?"),), tools=(CLOCK,))
    response = _ask(providers(api), request, stream)
    assert response.stop_reason == "tool_use"
    assert response.text == "Checking."
    (call,) = response.tool_calls
    assert (call.name, dict(call.arguments), call.error) == (
        "time__get_current_time",
        {"timezone": "Asia/Tokyo"},
        None,
    )


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_malformed_tool_arguments_are_flagged_not_raised(providers, fake, api, stream):
    fake.script(call_tool(wire_name(CLOCK), '{"timezone": "Asia/Tok'))
    request = ChatRequest(messages=(Message.user("time?"),), tools=(CLOCK,))
    (call,) = _ask(providers(api), request, stream).tool_calls
    assert call.arguments == {}
    assert "not valid JSON" in call.error


@pytest.mark.parametrize("api", APIS)
def test_retries_a_500_then_succeeds(providers, fake, api):
    fake.script(fail(500, retry_after=0.01), reply("recovered"))
    response = providers(api, max_retries=1).complete(HELLO)
    assert response.text == "recovered"
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1"]


@pytest.mark.parametrize("api", APIS)
def test_429_waits_for_retry_after(providers, fake, api):
    fake.script(fail(429, retry_after=0.4), reply("after the wait"))
    started = time.perf_counter()
    response = providers(api, max_retries=1).complete(HELLO)
    assert response.text == "after the wait"
    gap = fake.requests[1].received_at - fake.requests[0].received_at
    assert 0.4 <= gap < 2.0, gap
    assert time.perf_counter() - started < 3


@pytest.mark.parametrize("api", APIS)
def test_long_retry_after_fails_fast_instead_of_sleeping(providers, fake, api):
    fake.script(fail(429, retry_after=3600))
    started = time.perf_counter()
    with pytest.raises(UpstreamError) as info:
        providers(api, max_retries=2, max_retry_wait=5).complete(HELLO)
    assert time.perf_counter() - started < 2
    assert len(fake.requests) == 1
    assert "rate limiting" in str(info.value)


@pytest.mark.parametrize("api", APIS)
def test_upstream_error_names_provider_and_hides_vendor_text(providers, fake, api, caplog):
    fake.script(fail(500, error_message="secret vendor detail"))
    with caplog.at_level(logging.WARNING), pytest.raises(UpstreamError) as info:
        providers(api).complete(HELLO)
    assert type(info.value) is UpstreamError  # 502 (gateway.errors.DOMAIN_ERRORS)
    assert ("Anthropic" if api == "anthropic" else "OpenAI") in str(info.value)
    assert "HTTP 500" in str(info.value)
    assert "secret vendor detail" not in str(info.value)
    assert "secret vendor detail" in caplog.text


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_slow_upstream_raises_upstream_timeout(providers, fake, api, stream):
    fake.script(reply("too late", delay=2))
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeout):
        _ask(providers(api, timeout=0.3), HELLO, stream)
    assert time.perf_counter() - started < 1.5


@pytest.mark.parametrize("api", APIS)
def test_stalled_stream_raises_upstream_timeout(providers, fake, api):
    fake.chunk_delay = 1.0
    fake.script(reply("a b c d e f"))
    with pytest.raises(UpstreamTimeout):
        list(providers(api, timeout=0.3).stream(HELLO))


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_connection_refused_raises_upstream_error(api, stream):
    made = Providers(None)
    try:
        with pytest.raises(UpstreamError) as info:
            _ask(made(api, max_retries=0), HELLO, stream)
    finally:
        made.close()
    assert type(info.value) is UpstreamError
    assert "Could not reach" in str(info.value)


@pytest.mark.parametrize("api", APIS)
def test_stream_cut_midway_raises_upstream_error(providers, fake, api):
    fake.script(reply("a b c d e f g h", cut_after=4))
    events = []
    with pytest.raises(UpstreamError) as info:
        for event in providers(api).stream(HELLO):
            events.append(event)
    assert "incomplete" in str(info.value)
    assert events and all(e.type == "text_delta" for e in events)


@pytest.mark.parametrize("api", APIS)
def test_sdk_ignores_vendor_environment_variables(providers, fake, api, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", closed_url())
    monkeypatch.setenv("ANTHROPIC_CUSTOM_HEADERS", "x-leaked: yes")
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", closed_url() + "/v1")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-leaked")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-leaked")
    fake.script(reply("ok"))
    # The settings read ANTHROPIC_CUSTOM_HEADERS so the provider can cancel what the SDK adds.
    assert providers(api, anthropic_custom_headers="x-leaked: yes").complete(HELLO).text == "ok"
    headers = fake.requests[-1].headers
    assert headers["authorization"] == "Bearer test-key"
    assert not {"x-leaked", "openai-organization", "openai-project"} & headers.keys()


def test_anthropic_renders_tools_and_tool_results_with_images(providers, fake):
    image = {"type": "image", "data": "aGVsbG8=", "mimeType": "image/png"}
    result = ToolResult(content=({"type": "text", "text": "12:00"}, image), is_error=False)
    fake.script(reply("It is noon."))
    providers("anthropic").complete(_with_result(CLOCK_CALL, result))
    body = fake.requests[-1].body
    assert body["tools"] == [
        {
            "name": "time__get_current_time",
            "description": "Current time in a timezone.",
            "input_schema": CLOCK.input_schema,
        }
    ]
    assistant, tool_turn = body["messages"][1:]
    assert assistant["content"][-1] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "time__get_current_time",
        "input": {"timezone": "UTC"},
    }
    assert tool_turn == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "call_1",
                "is_error": False,
                "content": [
                    {"type": "text", "text": "12:00"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "aGVsbG8="},
                    },
                ],
            }
        ],
    }


def test_openai_renders_tools_and_tool_results_as_text(providers, fake):
    result = ToolResult(structured_content={"time": "12:00"}, is_error=True)
    fake.script(reply("It failed."))
    providers("openai").complete(_with_result(CLOCK_CALL, result))
    body = fake.requests[-1].body
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "time__get_current_time",
                "description": "Current time in a timezone.",
                "parameters": CLOCK.input_schema,
            },
        }
    ]
    assert body["messages"][1]["tool_calls"][0]["function"] == {
        "name": "time__get_current_time",
        "arguments": '{"timezone": "UTC"}',
    }
    assert body["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": 'Error: {"time": "12:00"}',
    }


@pytest.mark.parametrize(
    ("server", "name"),
    [
        ("time", "get_current_time"),
        ("my.server", "tool/with:odd chars"),
        ("s" * 40, "t" * 40),
        ("a", "b-c_d"),
    ],
)
def test_wire_names_fit_both_providers_and_are_stable(server, name):
    tool = Tool(server, name)
    first = wire_name(tool)
    assert first == wire_name(Tool(server, name, "other description"))
    assert 1 <= len(first) <= 64
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in first)
    if len(tool.qualified_name) <= 64 and "." not in server + name and " " not in name:
        assert first == tool.qualified_name


def test_wire_names_stay_distinct_after_shortening():
    long_a = Tool("s" * 40, "t" * 40 + "a")
    long_b = Tool("s" * 40, "t" * 40 + "b")
    odd_a, odd_b = Tool("x", "a.b"), Tool("x", "a_b")
    assert wire_name(long_a) != wire_name(long_b)
    assert wire_name(odd_a) != wire_name(odd_b)


def _with_result(call, result):
    return ChatRequest(
        messages=(
            Message.user("time?"),
            Message.assistant("Checking.", (call,)),
            Message.tool(call.id, result),
        ),
        tools=(CLOCK,),
    )


# Streamed events a broken or hostile upstream might send, each after one good text event.
MALFORMED_EVENTS = {
    "not JSON": "data: {not json\n\n",
    "a list": "data: [1, 2]\n\n",
    "choices a string": 'data: {"choices": "abc"}\n\n',
    "delta a number": 'data: {"choices": [{"delta": 7}]}\n\n',
    "usage a string": 'data: {"choices": [], "usage": "lots"}\n\n',
    "tool call index a list": (
        'data: {"choices": [{"delta": {"tool_calls": [{"index": [0], "id": "c"}]}}]}\n\n'
    ),
    "anthropic delta a string": (
        'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
        '"delta": "x"}\n\n'
    ),
}


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("event", list(MALFORMED_EVENTS.values()), ids=list(MALFORMED_EVENTS))
def test_a_malformed_stream_event_is_an_upstream_error(providers, fake, api, event):
    good = {
        "openai": 'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n',
        "anthropic": (
            'event: message_start\ndata: {"type": "message_start", "message": {"id": "m", '
            '"type": "message", "role": "assistant", "model": "x", "content": [], '
            '"usage": {"input_tokens": 1, "output_tokens": 0}}}\n\n'
            'event: content_block_start\ndata: {"type": "content_block_start", "index": 0, '
            '"content_block": {"type": "text", "text": ""}}\n\n'
        ),
    }[api]
    fake.script(Script(raw_events=[good, event, "data: [DONE]\n\n"]))
    with pytest.raises(UpstreamError):
        list(providers(api).stream(HELLO))


@pytest.mark.parametrize("api", APIS)
def test_a_worker_keeps_an_upstream_connection_for_each_of_its_threads(fake, api):
    """Past the SDKs' 100 idle connections, a busy worker reuses its connections instead of
    opening (against a real provider: a TLS handshake) one per call."""
    calls = 120
    fake.reset()  # no script left over from an earlier test
    # The fake answers no call of a burst before all of them have arrived: all are in flight.
    everyone_in = threading.Barrier(calls)
    fake.on_request = lambda _path: everyone_in.wait(timeout=30)
    registry = LLMRegistry(settings_for(fake, api, timeout=60), keepalive_connections=calls)
    provider = registry.get(api)

    def burst() -> int:
        before = fake.connections
        with ThreadPoolExecutor(calls) as pool:
            assert all(r.text for r in pool.map(lambda _: provider.complete(HELLO), range(calls)))
        return fake.connections - before

    try:
        assert burst() == calls
        assert burst() == 0
    finally:
        fake.reset()
        registry.close()


def _ask(provider, request, stream):
    if not stream:
        return provider.complete(request)
    events = list(provider.stream(request))
    assert events[-1].type == "done"
    return events[-1].response
