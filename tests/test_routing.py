from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.routing import Catalog, Router, RoutingSettings, ServerDescriptor, log_decision
from gateway.routing.evaluate import load_catalog
from gateway.tools import Tool

FIXTURES = Path(__file__).parent / "fixtures" / "routing"
# The lexical stage alone: exact, fast and independent of the embedding model.
LEXICAL = RoutingSettings(semantic=False)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(FIXTURES / "catalog.json")


@pytest.fixture(scope="module")
def router(catalog: Catalog) -> Router:
    return Router(catalog, LEXICAL)


@pytest.mark.parametrize(
    ("prompt", "server"),
    [
        ("What time is it in Tokyo right now?", "time"),
        ("convert 3pm London time to New York time", "time"),
        ("Show me the last five commits of my repository log", "git"),
        ("create a branch called feature-x", "git"),
        ("Will it rain tomorrow? What's the forecast?", "weather"),
        ("Open an issue on GitHub about the broken login", "github"),
        ("list open pull requests", "github"),
        ("Read the file notes.txt", "filesystem"),
    ],
)
def test_route_picks_the_relevant_server_first(router: Router, prompt: str, server: str) -> None:
    decision = router.route(prompt)
    assert decision.servers[0] == server
    assert decision.method == "lexical"
    assert all(name.startswith(f"{server}__") for name in decision.tools[:1])


@pytest.mark.parametrize(
    "prompt", ["hi, how are you?", "write me a poem about autumn", "thanks!", "", "   "]
)
def test_route_offers_nothing_for_plain_chat(router: Router, prompt: str) -> None:
    decision = router.route(prompt)
    assert decision.servers == ()
    assert decision.tools == ()
    assert decision.method == "none"


def test_tool_names_are_split_for_matching(router: Router) -> None:
    ranking = router.rank("create branch")
    assert ranking.tools[0][0].name == "gitCreateBranch"
    assert router.rank("weather alerts").tools[0][0].name == "get-alerts"


def test_follow_up_keeps_previous_turn_servers_in_view(router: Router) -> None:
    assert router.route("and in Tokyo?").servers == ()
    decision = router.route("and in Tokyo?", history=["what time is it in London?"])
    assert decision.servers == ("time",)


def test_history_is_down_weighted_against_the_current_prompt(router: Router) -> None:
    decision = router.route(
        "now show me the weather forecast", history=["what time is it in London?"]
    )
    assert decision.servers[0] == "weather"
    assert decision.scores["weather"] > decision.scores.get("time", 0.0)


def test_threshold_is_respected(catalog: Catalog) -> None:
    prompt = "What time is it in Tokyo right now?"
    assert Router(catalog, LEXICAL).route(prompt).servers == ("time",)
    strict = Router(catalog, replace(LEXICAL, threshold=0.99))
    decision = strict.route(prompt)
    assert decision.servers == () and decision.method == "none"


def test_max_servers_and_tool_budget_are_respected(catalog: Catalog) -> None:
    prompt = "git log of the repository and the github pull requests and the files"
    loose = replace(LEXICAL, threshold=0.01, relative_threshold=0.0, max_servers=5)
    assert len(Router(catalog, loose).route(prompt).servers) >= 3
    capped = Router(catalog, replace(loose, max_servers=2, tool_budget=6)).route(prompt)
    assert len(capped.servers) == 2
    assert len(capped.tools) == 6
    assert {name.split("__")[0] for name in capped.tools} <= set(capped.servers)
    one_tool = Router(catalog, replace(loose, tool_budget=1)).route(prompt)
    assert len(one_tool.tools) == 1


def test_at_mention_pins_the_server_and_is_stripped(router: Router) -> None:
    decision = router.route("@weather what time is it in London?")
    assert decision.servers == ("weather",)
    assert decision.pinned == ("weather",)
    assert decision.method == "pinned"
    assert router.rank("@weather what time is it").query == "what time is it"


def test_at_mention_matches_names_loosely_and_ignores_unknown(router: Router) -> None:
    assert router.route("ask @GitHub, please").servers == ("github",)
    assert router.route("email bob@example.com the forecast").pinned == ()
    assert router.route("@nosuchserver what time is it?").servers == ("time",)


def test_pinned_servers_override_ranking(router: Router) -> None:
    decision = router.route("hi there", pinned_servers=["git", "filesystem"])
    assert decision.servers == ("git", "filesystem")
    assert decision.method == "pinned"
    assert {t.split("__")[0] for t in decision.tools} == {"git", "filesystem"}


def test_always_servers_are_always_offered() -> None:
    catalog = Catalog.build(
        [
            ServerDescriptor("memory", "Long-term notes about the user.", always=True),
            ServerDescriptor("time", "Current time in any timezone."),
        ],
        [
            Tool("memory", "remember", "Store a note."),
            Tool("time", "get_current_time", "Current time in a timezone."),
        ],
    )
    router = Router(catalog, LEXICAL)
    assert router.route("hello!").servers == ("memory",)
    assert router.route("hello!").method == "none"
    assert router.route("what time is it in Paris?").servers == ("time", "memory")
    assert router.route("hi", pinned_servers=["time"]).servers == ("time", "memory")


def test_catalog_changes_change_what_is_offered(catalog: Catalog) -> None:
    prompt = "Will it rain tomorrow? What's the forecast?"
    assert Router(catalog, LEXICAL).route(prompt).servers == ("weather",)
    without = Catalog.build(
        [s for s in catalog.servers if s.name != "weather"],
        [t for t in catalog.tools if t.server != "weather"],
    )
    assert "weather" not in Router(without, LEXICAL).route(prompt).servers
    assert without.fingerprint() != catalog.fingerprint()
    added = Catalog.build(
        [*catalog.servers, ServerDescriptor("stocks", "Stock quotes and market prices.")],
        [*catalog.tools, Tool("stocks", "get_quote", "Latest price of a stock ticker.")],
    )
    assert Router(added, LEXICAL).route("what is the stock price of ACME?").servers == ("stocks",)


def test_decision_to_dict_is_json_ready(router: Router) -> None:
    data = router.route("What time is it in Tokyo right now?").to_dict()
    assert set(data) == {"servers", "tools", "scores", "method", "latency_ms", "pinned"}
    assert data["servers"] == ["time"]
    assert data["tools"][0].startswith("time__")
    assert data["method"] == "lexical"
    assert {"lexical", "fusion", "selection", "total"} <= set(data["latency_ms"])
    assert json.loads(json.dumps(data)) == data


def test_log_line_format(router: Router, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.routing.decision")
    log_decision(router.route("What time is it in Tokyo right now?"))
    log_decision(router.route("x" * 200))
    first, second = (r.getMessage() for r in caplog.records)
    assert first.startswith(
        "🧠 Intelligent routing: 'What time is it in Tokyo right now?' → time ("
    )
    assert "scores: time=" in first and "method: lexical" in first
    assert second.startswith("🧠 Intelligent routing: '" + "x" * 79 + "…' → none (")


def test_explain_lists_the_ranking(router: Router) -> None:
    text = router.explain("What time is it in Tokyo right now?")
    assert "decision: time (method: lexical)" in text
    assert "* time" in text
    assert "get_current_time" in text
