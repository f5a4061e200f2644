"""The agent loop with a client's own tools: both SDKs against the fake upstream."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.fakes.fake_llm import call_tools, reply
from tests.fakes.llm_settings import APIS
from tests.test_agent import CLOCK_WIRE, STREAMS, Runner, _request, _turn

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.mark.parametrize("api", APIS)
@STREAMS
def test_a_client_call_ends_the_turn_after_the_gateway_calls_ran(providers, fake, api, stream):
    fake.script(call_tools((CLOCK_WIRE, {"timezone": "UTC"}), ("get_weather", {"city": "Oslo"})))
    runner = Runner()
    request = replace(_request(), client_tools=(WEATHER,), options={"tool_choice": "auto"})
    response, _ = _turn(providers(api), request, runner, stream)
    assert response.stop_reason == "client_tool_calls"
    assert [c.name for c in response.client_calls] == ["get_weather"]
    assert [c.tool for c in runner.calls] == ["get_current_time"]  # only the gateway's call ran
    # The history holds the whole model response and the gateway's result, nothing invented.
    assert [m.role for m in response.messages] == ["assistant", "tool"]
    assert len(response.messages[0].tool_calls) == 2
    assert response.as_dict()["client_tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Oslo"}',
    }
    offered = fake.requests[0].body["tools"]
    names = [t.get("name") or t["function"]["name"] for t in offered]
    assert names == [CLOCK_WIRE, "get_weather"]


@pytest.mark.parametrize("api", APIS)
def test_tool_choice_applies_to_the_clients_model_call_only(providers, fake, api):
    fake.script(call_tools((CLOCK_WIRE, {"timezone": "UTC"})), reply("Noon."))
    request = replace(_request(), client_tools=(WEATHER,), options={"tool_choice": "required"})
    response, _ = _turn(providers(api), request, Runner(), stream=False)
    assert response.text == "Noon."
    first, second = (r.body for r in fake.requests)
    assert "tool_choice" in first
    assert "tool_choice" not in second
