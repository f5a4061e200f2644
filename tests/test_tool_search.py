"""find_tools end to end: the model searches the whole catalog, then calls a tool it found.

Real SDKs over HTTP against the fake upstream (OpenAI and Anthropic wire formats, streamed and
not), real MCP servers (the SDK-built test server and PyPI mcp-server-time), PostgreSQL.
"""

from __future__ import annotations

import json
import sys
import time
import uuid

import pytest
from sqlalchemy import select

from gateway import create_app
from gateway.catalog.search import ToolSearch
from gateway.database import upgrade_database
from gateway.extensions import db
from gateway.llm.types import ToolCall
from gateway.models import ConversationMessage, RoutingExample, ToolCallRecord
from gateway.routing import Catalog, Router, RoutingSettings, ServerDescriptor
from gateway.services import close_services, get_services
from gateway.tools import Tool
from tests.chat_setup import MCP_SERVER, chat_settings
from tests.conftest import test_settings
from tests.factories import create_account
from tests.fakes.fake_llm import call_tool, reply

SEARCH = "gateway__find_tools"
CLOCK = "clock__get_current_time"


@pytest.fixture(scope="module")
def mcp_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("mcp") / "mcp_servers.json"
    servers = {
        "calc": {
            "command": sys.executable,
            "args": [str(MCP_SERVER)],
            "description": "Arithmetic and echo: add two numbers, echo text back.",
            "keywords": ["add", "sum", "plus", "math", "echo"],
            "timeout": 10,
        },
        "clock": {
            "command": sys.executable,
            "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
            "description": "Current time in any time zone; convert times between zones.",
            "timeout": 10,
        },
    }
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def _app(database_url, fake, mcp_config, **routing):
    settings = chat_settings(
        fake.url,
        mcp_config,
        anthropic_base_url=fake.anthropic_url,
        anthropic_api_key="test-key",
        llm_env={"ANTHROPIC_MODEL": "claude-test"},
        routing_env={"ROUTING_SEMANTIC": "false", **routing},
    )
    app = create_app(test_settings(database_url, **settings))
    upgrade_database(app)
    with app.app_context():  # both servers ready before the first turn, however busy the host
        deadline = time.monotonic() + 60
        while any(s.state != "ready" for s in get_services().mcp.statuses()):
            assert time.monotonic() < deadline, get_services().mcp.statuses()
            time.sleep(0.1)
    return app


@pytest.fixture(scope="module")
def search_app(database_url, fake, mcp_config, app):
    made = _app(database_url, fake, mcp_config, ROUTING_SEARCH_MAX_ADDED="2")
    yield made
    close_services(made)


@pytest.fixture
def client(search_app, fake, app):
    fake.reset()
    return search_app.test_client()


@pytest.fixture
def alice(app):
    return create_account(app)


def offered(request, api):
    tools = request.body.get("tools") or []
    return [t["name"] if api == "anthropic" else t["function"]["name"] for t in tools]


def post(client, account, message, **fields):
    return client.post("/chat", headers=account.headers, json={"message": message, **fields})


def done_of(response, stream):
    if not stream:
        assert response.status_code == 200, response.get_json()
        return response.get_json()
    lines = response.get_data(as_text=True).splitlines()
    events = [line.split(": ", 1)[1] for line in lines if line.startswith("event: ")]
    data = [json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("data: ")]
    assert events[0] == "routing" and events[-1] == "done", events
    assert SEARCH in [d.get("tool") and f"{d['server']}__{d['tool']}" for d in data]
    return data[-1]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_the_model_searches_then_calls_a_found_tool(client, search_app, fake, alice, api, stream):
    # Lexical routing finds nothing for a Spanish prompt: only the search tool is offered.
    fake.script(
        call_tool(SEARCH, {"query": "current time in a time zone"}),
        call_tool(CLOCK, {"timezone": "Asia/Tokyo"}),
        reply("Son las nueve en Tokio."),
    )
    response = post(client, alice, "¿Qué hora es en Tokio?", provider=api, stream=stream)
    body = done_of(response, stream)
    assert body["message"]["content"] == "Son las nueve en Tokio."
    first, second, third = fake.requests[-3:]
    assert offered(first, api) == [SEARCH]
    assert CLOCK in offered(second, api) and SEARCH in offered(second, api)
    assert offered(third, api) == offered(second, api)
    calls = [(c["server"], c["tool"], c["is_error"]) for c in body["tool_calls"]]
    assert calls == [("gateway", "find_tools", False), ("clock", "get_current_time", False)]
    record = body["routing"]["tool_search"]
    assert record["searches"][0]["query"] == "current time in a time zone"
    assert record["added"][0] == CLOCK and len(record["added"]) <= 2
    with search_app.app_context():
        stored = db.session.get(ConversationMessage, uuid.UUID(body["message"]["id"]))
        assert stored.routing["tool_search"]["added"] == record["added"]
        rows = db.session.scalars(
            select(ToolCallRecord)
            .join(ConversationMessage, ToolCallRecord.message_id == ConversationMessage.id)
            .where(ConversationMessage.conversation_id == uuid.UUID(body["conversation_id"]))
        ).all()
        assert sorted((r.server, r.tool) for r in rows) == [
            ("clock", "get_current_time"),
            ("gateway", "find_tools"),
        ]
        # The found tool learns the prompt (learning from use); the search itself does not.
        learned = db.session.scalars(
            select(RoutingExample.server).where(RoutingExample.prompt == "¿Qué hora es en Tokio?")
        ).all()
        assert set(learned) == {"clock"}


def test_the_search_result_lists_the_matches_for_the_model(client, fake, alice):
    fake.script(call_tool(SEARCH, {"query": "add two numbers"}), reply("ok"))
    post(client, alice, "¿Puedes ayudarme?")
    sent = fake.requests[-1].body["messages"]
    result = json.loads(next(m for m in sent if m["role"] == "tool")["content"])
    names = [t["name"] for t in result["tools"]]
    assert names[0] == "calc__add"
    assert all(t["description"] and "\n" not in t["description"] for t in result["tools"])


def test_a_turn_adds_at_most_the_configured_number_of_tools(client, fake, alice):
    fake.script(
        call_tool(SEARCH, {"query": "add numbers echo text time zone"}),
        call_tool(SEARCH, {"query": "convert time between zones"}),
        reply("done"),
    )
    body = post(client, alice, "Hilf mir bitte.").get_json()
    record = body["routing"]["tool_search"]
    assert len(record["searches"]) == 2
    assert len(record["added"]) == 2  # ROUTING_SEARCH_MAX_ADDED=2
    last = offered(fake.requests[-1], "openai")
    assert len(last) == 3 and last[0] == SEARCH
    assert "No more tools" in json.loads(_tool_texts(fake.requests[-1])[-1])["note"]


def test_a_bad_query_is_an_error_result_not_a_failed_turn(client, fake, alice):
    fake.script(call_tool(SEARCH, {"query": "   "}), call_tool(SEARCH, {}), reply("sorry"))
    response = post(client, alice, "Hallo")
    assert response.status_code == 200
    body = response.get_json()
    assert [c["is_error"] for c in body["tool_calls"]] == [True, True]
    assert body["routing"]["tool_search"]["searches"] == []


def test_a_pinned_turn_searches_only_its_servers(client, fake, alice):
    fake.script(call_tool(SEARCH, {"query": "current time in a time zone"}), reply("no clock"))
    body = post(client, alice, "@calc what time is it in Tokyo?").get_json()
    assert body["routing"]["pinned"] == ["calc"]
    # Every calc tool is offered already: nothing to search, so no search tool.
    assert "tool_search" not in body["routing"]
    assert SEARCH not in offered(fake.requests[0], "openai")


def test_the_search_can_be_turned_off(database_url, fake, mcp_config, app, alice):
    off = _app(database_url, fake, mcp_config, ROUTING_TOOL_SEARCH="false")
    try:
        fake.reset()
        fake.script(reply("Hola"))
        body = post(off.test_client(), alice, "¿Qué hora es en Tokio?").get_json()
        assert "tool_search" not in body["routing"]
        assert "tools" not in fake.requests[-1].body
    finally:
        close_services(off)


def _tool_texts(request):
    return [m["content"] for m in request.body["messages"] if m["role"] == "tool"]


# --- the search itself, on a router without the gateway around it ------------------------


def _router():
    tools = [
        Tool("clock", "get_current_time", "Get the current time in a specific timezone"),
        Tool("clock", "convert_time", "Convert time between timezones"),
        Tool("calc", "add", "Add two numbers"),
        Tool("notes", "write_note", "Save a note to remember later"),
    ]
    servers = [ServerDescriptor(name, f"{name} server") for name in ("clock", "calc", "notes")]
    return Router(Catalog.build(servers, tools), RoutingSettings(semantic=False))


def test_a_withheld_tool_is_never_found():
    # The live catalog holds approved definitions only: a tool missing from it cannot be found.
    router = _router()
    search = ToolSearch(router, offered=frozenset())
    result, added = search.run(ToolCall(id="1", name=SEARCH, arguments={"query": "weather"}))
    assert added == () and json.loads(result.text())["tools"] == []


def test_servers_limit_what_the_search_finds():
    router = _router()
    search = ToolSearch(router, offered=frozenset(), servers=frozenset({"calc"}))
    call = ToolCall(id="1", name=SEARCH, arguments={"query": "add the current time"})
    result, added = search.run(call)
    assert [t.qualified_name for t in added] == ["calc__add"]
    assert [t["name"] for t in json.loads(result.text())["tools"]] == ["calc__add"]
    assert not ToolSearch.worth_offering(router, {"calc__add"}, {"calc"})
    assert ToolSearch.worth_offering(router, {"calc__add"}, None)
