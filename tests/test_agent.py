"""The agent loop end to end: both SDKs against the fake upstream, tools run by a test runner."""

from __future__ import annotations

import threading
import time

import pytest

from gateway.agent import complete_turn, run_turn
from gateway.llm import ChatRequest, Message, ModelPrice, wire_name
from gateway.llm.errors import UpstreamError
from gateway.mcp.errors import ToolUnavailable
from gateway.tools import Tool, ToolResult
from tests.fakes.fake_llm import Script, call_tool, call_tools, fail, reply
from tests.fakes.llm_settings import APIS

CLOCK = Tool(
    "time",
    "get_current_time",
    "Current time in a timezone.",
    {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
)
CLOCK_WIRE = wire_name(CLOCK)
STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])


class Runner:
    """A tool runner that records its calls; answers like a clock unless told otherwise."""

    def __init__(self, *, sleep: float = 0.0, fail_with: Exception | None = None) -> None:
        self.sleep = sleep
        self.fail_with = fail_with
        self.calls = []
        self.spans: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def __call__(self, call):
        started = time.perf_counter()
        time.sleep(self.sleep)
        with self._lock:
            self.calls.append(call)
            self.spans.append((started, time.perf_counter()))
        if self.fail_with is not None:
            raise self.fail_with
        zone = call.arguments.get("timezone", "?")
        return ToolResult(content=({"type": "text", "text": f"12:00 in {zone}"},))


def _request(prompt="What time is it?", tools=(CLOCK,)):
    return ChatRequest(messages=(Message.user(prompt),), tools=tools, model=None)


def _turn(provider, request, runner, stream, **options):
    if not stream:
        return complete_turn(provider, request, runner, **options), []
    events = list(run_turn(provider, request, runner, stream=True, **options))
    assert events[-1].type == "done"
    assert [e.type for e in events].count("done") == 1
    return events[-1].response, events


@pytest.mark.parametrize("api", APIS)
@STREAMS
def test_plain_answer_without_tools(providers, fake, api, stream):
    fake.script(reply("Just text."))
    response, _ = _turn(providers(api), _request(tools=()), Runner(), stream)
    assert (response.text, response.rounds, response.stop_reason) == ("Just text.", 1, "end_turn")
    assert [m.role for m in response.messages] == ["assistant"]


@pytest.mark.parametrize("api", APIS)
@STREAMS
def test_one_tool_round_then_answer(providers, fake, api, stream):
    fake.script(call_tool(CLOCK_WIRE, {"timezone": "Asia/Tokyo"}))
    runner = Runner()
    response, _ = _turn(providers(api), _request(), runner, stream)
    (call,) = runner.calls
    assert (call.server, call.tool, dict(call.arguments)) == (
        "time",
        "get_current_time",
        {"timezone": "Asia/Tokyo"},
    )
    assert response.text == "The tool said: 12:00 in Asia/Tokyo"
    assert (response.rounds, response.stop_reason, response.provider) == (2, "end_turn", api)
    assert (response.usage.input_tokens, response.usage.output_tokens) == (24, 14)
    assert [m.role for m in response.messages] == ["assistant", "tool", "assistant"]
    assert response.messages[0].tool_calls[0].server == "time"


@pytest.mark.parametrize("api", APIS)
@STREAMS
def test_parallel_tool_calls_run_concurrently(providers, fake, api, stream):
    fake.script(
        call_tools((CLOCK_WIRE, {"timezone": "UTC"}), (CLOCK_WIRE, {"timezone": "Asia/Tokyo"}))
    )
    runner = Runner(sleep=0.3)
    response, _ = _turn(providers(api), _request(), runner, stream)
    # Overlapping spans prove concurrency without a wall-clock bound (no timed tests).
    (a_start, a_end), (b_start, b_end) = runner.spans
    assert max(a_start, b_start) < min(a_end, b_end), "the two calls did not overlap"
    # Results go back in the order the model asked for them.
    tool_messages = [m for m in response.messages if m.role == "tool"]
    assert [m.tool_result.text() for m in tool_messages] == ["12:00 in UTC", "12:00 in Asia/Tokyo"]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    "failure",
    [ToolUnavailable("server time is down"), RuntimeError("boom")],
    ids=["unavailable", "crash"],
)
def test_tool_failure_goes_back_to_the_model(providers, fake, api, failure, caplog):
    runner = Runner(fail_with=failure)
    response, _ = _turn(providers(api), _request(), runner, stream=False)
    assert response.stop_reason == "end_turn"
    assert "The tool said:" in response.text
    result = response.messages[1].tool_result
    assert result.is_error
    if isinstance(failure, ToolUnavailable):
        assert "server time is down" in result.text()
    else:
        assert "failed unexpectedly" in result.text() and "boom" not in result.text()
    sent = fake.requests[-1].body["messages"][-1]
    if api == "anthropic":
        assert sent["content"][0]["is_error"] is True
    else:
        assert sent["content"].startswith("Error: ")


@pytest.mark.parametrize("api", APIS)
def test_error_result_from_tool_is_recovered(providers, fake, api):
    fake.script(
        call_tool(CLOCK_WIRE, {"timezone": "Mars/Base"}),
        call_tool(CLOCK_WIRE, {"timezone": "UTC"}),
        reply("It is 12:00 UTC."),
    )
    calls = []

    def runner(call):
        calls.append(call)
        if call.arguments["timezone"] == "Mars/Base":
            return ToolResult.error("Invalid timezone: Mars/Base")
        return ToolResult(content=({"type": "text", "text": "12:00"},))

    response = complete_turn(providers(api), _request(), runner)
    assert [c.arguments["timezone"] for c in calls] == ["Mars/Base", "UTC"]
    assert (response.text, response.rounds) == ("It is 12:00 UTC.", 3)
    second_request = fake.requests[1].body["messages"][-1]
    assert "Invalid timezone: Mars/Base" in str(second_request)


@pytest.mark.parametrize("api", APIS)
@STREAMS
def test_max_tool_rounds_stops_the_turn(providers, fake, api, stream):
    fake.script(*[call_tool(CLOCK_WIRE, {"timezone": "UTC"}) for _ in range(3)])
    runner = Runner()
    response, _ = _turn(providers(api), _request(), runner, stream, max_tool_rounds=2)
    assert response.stop_reason == "max_tool_rounds"
    assert "Stopped after 2 rounds" in response.text
    assert (len(runner.calls), response.rounds, len(fake.requests)) == (2, 3, 3)
    last = response.messages[-1]
    assert last.role == "tool" and "Not run" in last.tool_result.text()


@pytest.mark.parametrize("api", APIS)
@STREAMS
@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ('{"timezone": ', "not valid JSON"),
        ('["Asia/Tokyo"]', "must be a JSON object"),
        ({}, "missing required argument(s): timezone"),
    ],
    ids=["invalid-json", "not-object", "missing-required"],
)
def test_malformed_arguments_become_error_results(providers, fake, api, stream, arguments, error):
    fake.script(call_tool(CLOCK_WIRE, arguments))
    runner = Runner()
    response, _ = _turn(providers(api), _request(), runner, stream)
    assert runner.calls == []
    result = response.messages[1].tool_result
    assert result.is_error and error in result.text()
    assert response.stop_reason == "end_turn"
    assert error in response.text  # the fake quotes the error result back


@pytest.mark.parametrize("api", APIS)
def test_unknown_tool_name_becomes_error_result(providers, fake, api):
    fake.script(call_tool("nope__missing", {}))
    runner = Runner()
    response, _ = _turn(providers(api), _request(), runner, stream=False)
    assert runner.calls == []
    assert "unknown tool 'nope__missing'" in response.messages[1].tool_result.text()


@pytest.mark.parametrize("api", APIS)
def test_stream_events_arrive_in_order_with_tool_events(providers, fake, api):
    fake.script(
        Script(text="Let me check the clock.", tool_calls=[(CLOCK_WIRE, {"timezone": "UTC"})])
    )
    _, events = _turn(providers(api), _request(), Runner(sleep=0.05), stream=True)
    kinds = [(e.round, e.type) for e in events]
    deltas_1 = [k for k in kinds if k == (1, "text_delta")]
    deltas_2 = [k for k in kinds if k == (2, "text_delta")]
    assert len(deltas_1) > 1 and len(deltas_2) > 1
    assert kinds == [
        *deltas_1,
        (1, "usage"),
        (1, "tool_call_started"),
        (1, "tool_call_finished"),
        *deltas_2,
        (2, "usage"),
        (2, "done"),
    ]
    round_1 = "".join(e.text for e in events if e.type == "text_delta" and e.round == 1)
    assert round_1 == "Let me check the clock."
    finished = next(e for e in events if e.type == "tool_call_finished")
    assert finished.summary == "12:00 in UTC"
    assert finished.duration_ms >= 50
    assert finished.as_dict()["tool_call"]["server"] == "time"


@pytest.mark.parametrize(("primary", "backup"), [("anthropic", "openai"), ("openai", "anthropic")])
@STREAMS
def test_fallback_provider_answers_when_primary_fails(providers, fake, primary, backup, stream):
    registry = providers.registry(primary, fallback_provider=backup)
    fake.script(fail(500), reply("from the backup"))
    response, _ = _turn(
        registry.get(primary),
        _request(tools=()),
        Runner(),
        stream,
        fallback=registry.fallback_for(primary),
    )
    assert (response.text, response.provider, response.fallback_from) == (
        "from the backup",
        backup,
        primary,
    )
    assert response.model == ("gpt-test" if backup == "openai" else "claude-test")


@pytest.mark.parametrize("api", APIS)
def test_failure_without_fallback_raises(providers, fake, api):
    fake.script(fail(503))
    with pytest.raises(UpstreamError):
        complete_turn(providers(api), _request(tools=()), Runner())


@pytest.mark.parametrize("api", APIS)
def test_cancellation_stops_the_stream(providers, fake, api):
    fake.chunk_delay = 0.05
    fake.script(reply(" ".join(f"w{i}" for i in range(40))))
    stop = threading.Event()
    deltas = []
    done = None
    for event in run_turn(providers(api), _request(tools=()), Runner(), cancelled=stop.is_set):
        if event.type == "text_delta":
            deltas.append(event.text)
            if len(deltas) == 2:
                stop.set()
        if event.type == "done":
            done = event.response
    assert done.stop_reason == "cancelled"
    assert len(deltas) == 2
    assert done.text == "".join(deltas)


def test_cancellation_before_start_makes_no_upstream_call(providers, fake):
    events = list(run_turn(providers("openai"), _request(), Runner(), cancelled=lambda: True))
    assert [e.type for e in events] == ["done"]
    assert events[0].response.stop_reason == "cancelled"
    assert fake.requests == []


@pytest.mark.parametrize("api", APIS)
def test_cost_is_summed_over_rounds_from_the_price_table(providers, fake, api):
    model = "claude-test" if api == "anthropic" else "gpt-test"
    prices = {model: ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0)}
    response = complete_turn(providers(api), _request(), Runner(), prices=prices)
    assert response.cost_usd == pytest.approx((24 * 3.0 + 14 * 15.0) / 1_000_000)
    assert complete_turn(providers(api), _request(tools=()), Runner()).cost_usd is None


@pytest.mark.parametrize("api", APIS)
def test_namespaced_names_round_trip_to_server_and_tool(providers, fake, api):
    odd = Tool("files.example-com", "read/file", "Read a file.", {"type": "object"})
    long = Tool("x" * 50, "y" * 30, "Long.", {"type": "object"})
    fake.script(call_tools((wire_name(long), {}), (wire_name(odd), {})))
    runner = Runner()
    complete_turn(providers(api), _request(tools=(odd, long)), runner)
    offered = fake.requests[0].body["tools"]
    names = [t["name"] if api == "anthropic" else t["function"]["name"] for t in offered]
    assert names == [wire_name(odd), wire_name(long)]
    assert sorted((c.server, c.tool) for c in runner.calls) == sorted(
        [("files.example-com", "read/file"), ("x" * 50, "y" * 30)]
    )
