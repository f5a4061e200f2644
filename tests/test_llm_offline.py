"""The offline provider: argument filling, templated answers, and a real turn on mcp-server-time."""

from __future__ import annotations

import asyncio
import sys

import pytest

from gateway.agent import complete_turn, run_turn
from gateway.llm import ChatRequest, LLMRegistry, LLMSettings, Message
from gateway.llm.offline import OfflineProvider, fill_arguments
from gateway.settings import Settings
from gateway.tools import Tool, ToolResult

SCHEMA = {
    "type": "object",
    "properties": {
        "timezone": {"type": "string"},
        "count": {"type": "integer"},
        "verbose": {"type": "boolean", "default": False},
        "unit": {"type": "string", "enum": ["celsius"]},
        "mode": {"type": "string", "enum": ["fast", "slow"]},
    },
    "required": ["timezone", "count", "unit"],
}


@pytest.mark.parametrize(
    ("prompt", "found", "missing"),
    [
        (
            "what time is it in timezone=Asia/Tokyo count=3?",
            {"timezone": "Asia/Tokyo", "count": 3, "verbose": False, "unit": "celsius"},
            [],
        ),
        (
            'use {"timezone": "UTC", "count": 2, "mode": "slow"} please',
            {"timezone": "UTC", "count": 2, "mode": "slow", "verbose": False, "unit": "celsius"},
            [],
        ),
        ("TimeZone='Europe/Paris' count=many", {"timezone": "Europe/Paris"}, ["count"]),
        ("mode=sideways", {}, ["timezone", "count"]),
        ("nothing useful", {}, ["timezone", "count"]),
    ],
)
def test_fill_arguments_from_prompt_and_schema(prompt, found, missing):
    arguments, still_missing = fill_arguments(SCHEMA, prompt)
    assert still_missing == missing
    assert {k: arguments[k] for k in found} == found
    assert "mode" not in arguments or arguments["mode"] in ("fast", "slow")


def test_without_tools_says_it_is_offline():
    response = OfflineProvider().complete(ChatRequest(messages=(Message.user("hi"),)))
    assert response.provider == "offline"
    assert "offline provider" in response.text
    assert response.stop_reason == "end_turn"


def test_the_gateway_tool_search_is_not_called_for_plain_chat():
    search = Tool(
        server="gateway",
        name="find_tools",
        input_schema={
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    )
    request = ChatRequest(messages=(Message.user("hello there"),), tools=(search,))
    response = OfflineProvider().complete(request)
    assert response.tool_calls == ()
    assert "no tool matched" in response.text
    assert "query" not in response.text


def test_missing_arguments_are_named():
    tool = Tool("time", "get_current_time", "Get the time.", SCHEMA)
    request = ChatRequest(messages=(Message.user("what time is it?"),), tools=(tool,))
    response = OfflineProvider().complete(request)
    assert response.tool_calls == ()
    assert "time__get_current_time" in response.text
    assert "timezone, count" in response.text


def test_picks_the_best_ranked_tool_and_is_deterministic():
    first = Tool("a", "first", "", {"type": "object"})
    second = Tool("b", "second", "", {"type": "object"})
    request = ChatRequest(messages=(Message.user("go"),), tools=(first, second))
    one, two = OfflineProvider().complete(request), OfflineProvider().complete(request)
    assert [c.name for c in one.tool_calls] == ["a__first"]
    assert one.tool_calls == two.tool_calls and one.text == two.text


def test_stream_matches_complete():
    request = ChatRequest(messages=(Message.user("hello there"),))
    events = list(OfflineProvider().stream(request))
    assert "".join(e.text for e in events if e.type == "text_delta") == events[-1].response.text


def test_registry_defaults_to_offline_without_keys():
    registry = LLMRegistry(LLMSettings())
    assert registry.default_name == "offline"
    assert registry.get().name == "offline"
    assert registry.list_models() == [
        {"provider": "offline", "model": "offline", "default": True, "price_per_mtok": None}
    ]


def test_settings_from_variables_and_model_listing():
    settings = Settings.from_env(
        {
            "ANTHROPIC_API_KEY": "k",
            "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1",
            "OPENAI_MODEL": "llama3.2",
            "LLM_MAX_RETRIES": "1",
            "LLM_ALLOW_OFFLINE": "false",
            "LLM_FALLBACK_PROVIDER": "openai",
            "LLM_PRICES": '{"claude-sonnet-4-6": [3, 15]}',
        }
    ).llm
    registry = LLMRegistry(settings)
    assert settings.configured() == ("anthropic", "openai")
    assert settings.max_retries == 1
    assert registry.default_name == "anthropic"
    rows = {(r["provider"], r["model"]): r for r in registry.list_models()}
    assert rows[("anthropic", "claude-sonnet-4-6")]["default"] is True
    assert rows[("anthropic", "claude-sonnet-4-6")]["price_per_mtok"] == {
        "input": 3.0,
        "output": 15.0,
    }
    assert rows[("openai", "llama3.2")]["default"] is False
    assert registry.fallback_for("anthropic") is not None
    registry.close()


def test_offline_turn_with_a_tool_summarizes_the_result():
    tool = Tool("time", "get_current_time", "", SCHEMA)
    seen = []

    def runner(call):
        seen.append(call)
        return ToolResult(content=({"type": "text", "text": "It is 09:00."},))

    request = ChatRequest(
        messages=(Message.user("timezone=UTC count=1"),), tools=(tool,), model=None
    )
    events = list(run_turn(OfflineProvider(), request, runner))
    response = events[-1].response
    assert [c.tool for c in seen] == ["get_current_time"]
    assert response.rounds == 2
    assert "`time.get_current_time` returned: It is 09:00." in response.text


def test_offline_provider_calls_mcp_server_time():
    response = asyncio.run(_turn_on_time_server("what time is it in timezone=Asia/Tokyo"))
    assert response.provider == "offline"
    assert response.stop_reason == "end_turn"
    call = response.messages[0].tool_calls[0]
    assert (call.server, call.tool, dict(call.arguments)) == (
        "time",
        "get_current_time",
        {"timezone": "Asia/Tokyo"},
    )
    result = response.messages[1].tool_result
    assert not result.is_error
    assert "Asia/Tokyo" in result.text()
    assert "`time.get_current_time` returned:" in response.text
    assert "Asia/Tokyo" in response.text


async def _turn_on_time_server(prompt):
    """One offline turn whose tool runner calls a real mcp-server-time over stdio."""
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server_time", "--local-timezone", "UTC"]
    )
    async with Client(params, mode="legacy", read_timeout_seconds=15) as client:
        listed = await client.list_tools()
        by_name = {t.name: t for t in listed.tools}
        # Rank order as the router would give it for a time question.
        ranked = sorted(by_name, key=lambda name: name != "get_current_time")
        tools = tuple(
            Tool("time", name, by_name[name].description or "", by_name[name].input_schema)
            for name in ranked
        )
        loop = asyncio.get_running_loop()

        def runner(call):
            future = asyncio.run_coroutine_threadsafe(
                client.call_tool(call.tool, dict(call.arguments)), loop
            )
            result = future.result(15)
            return ToolResult(
                content=tuple(
                    b.model_dump(by_alias=True, exclude_none=True) for b in result.content
                ),
                structured_content=result.structured_content,
                is_error=result.is_error,
            )

        request = ChatRequest(messages=(Message.user(prompt),), tools=tools)
        return await asyncio.to_thread(complete_turn, OfflineProvider(), request, runner)


# --- arguments from plain words: tz database, enums, the server's start-up options ----------

CONVERT = {
    "type": "object",
    "properties": {
        "source_timezone": {"type": "string", "description": "Source IANA timezone name"},
        "time": {"type": "string"},
        "target_timezone": {"type": "string", "description": "Target IANA timezone name"},
    },
    "required": ["source_timezone", "time", "target_timezone"],
}


@pytest.mark.parametrize(
    ("prompt", "zone"),
    [
        ("what time is it in Tokyo?", "Asia/Tokyo"),
        ("and in new york right now", "America/New_York"),
        ("time in Sao Paulo, please", "America/Sao_Paulo"),
        ("what about Asia/Kolkata", "Asia/Kolkata"),
        ("the time in UTC", "UTC"),
    ],
)
def test_a_city_named_in_the_prompt_gives_its_iana_timezone(prompt, zone):
    schema = {
        "properties": {"timezone": {"type": "string", "description": "IANA timezone name"}},
        "required": ["timezone"],
    }
    assert fill_arguments(schema, prompt) == ({"timezone": zone}, [])


def test_several_cities_fill_the_timezone_arguments_in_the_order_named():
    arguments, missing = fill_arguments(CONVERT, "convert time=16:30 from London to Los Angeles")
    assert missing == []
    assert arguments == {
        "source_timezone": "Europe/London",
        "time": "16:30",
        "target_timezone": "America/Los_Angeles",
    }


def test_an_unknown_place_leaves_the_timezone_missing_and_named():
    tool = Tool("time", "get_current_time", "Get the time.", CONVERT)
    request = ChatRequest(messages=(Message.user("time in Atlantis?"),), tools=(tool,))
    response = OfflineProvider().complete(request)
    assert response.tool_calls == ()
    assert "source_timezone, time, target_timezone" in response.text


def test_an_enum_value_named_in_the_prompt_is_used_only_when_unambiguous():
    schema = {"properties": {"mode": {"type": "string", "enum": ["fast", "slow"]}}}
    assert fill_arguments(schema, "do it the fast way") == ({"mode": "fast"}, [])
    assert fill_arguments(schema, "fast or slow, you pick") == ({}, [])
    assert fill_arguments(schema, "breakfast") == ({}, [])  # whole words only


def test_a_required_path_comes_from_the_option_the_server_was_started_with():
    schema = {
        "properties": {"repo_path": {"type": "string"}, "max_count": {"type": "integer"}},
        "required": ["repo_path"],
    }
    args = ("-m", "mcp_server_git", "--repository", ".")
    git_log = Tool("git", "git_log", "Shows the commit logs", schema, server_args=args)
    request = ChatRequest(messages=(Message.user("show the git log"),), tools=(git_log,))
    [call] = OfflineProvider().complete(request).tool_calls
    assert call.arguments == {"repo_path": "."}
    # An option naming something else is not taken for it.
    other = Tool("x", "read", "", schema, server_args=("--local-timezone", "UTC"))
    request = ChatRequest(messages=(Message.user("read it"),), tools=(other,))
    response = OfflineProvider().complete(request)
    assert response.tool_calls == () and "repo_path" in response.text


def test_offline_provider_answers_readmes_tokyo_question_on_mcp_server_time():
    response = asyncio.run(_turn_on_time_server("what time is it in Tokyo?"))
    call = response.messages[0].tool_calls[0]
    assert (call.tool, dict(call.arguments)) == ("get_current_time", {"timezone": "Asia/Tokyo"})
    assert not response.messages[1].tool_result.is_error
    assert "Asia/Tokyo" in response.text
