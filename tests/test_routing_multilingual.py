"""Prompts in other languages: the language check, and routing with the multilingual encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.routing import Catalog, Router, RoutingSettings, ServerDescriptor
from gateway.routing.text import looks_english
from gateway.tools import Tool

FIXTURES = Path(__file__).parent / "fixtures" / "routing"


@pytest.mark.parametrize(
    ("prompt", "english"),
    [
        ("What time is it in Tokyo?", True),
        ("show the git log", True),
        ("weather Berlin", True),
        ("Che ore sono a New York?", False),
        ("Wie spät ist es in Berlin?", False),
        ("¿Qué hora es en Tokio?", False),
        ("東京は今何時ですか？", False),
        ("מה השעה עכשיו בתל אביב?", False),
        ("كم الساعة الآن في دبي؟", False),
    ],
)
def test_the_language_check(prompt: str, english: bool) -> None:
    assert looks_english(prompt) is english


def test_the_multilingual_cases_cover_ten_languages_and_plain_chat() -> None:
    text = (FIXTURES / "multilingual.jsonl").read_text(encoding="utf-8")
    cases = [json.loads(line) for line in text.splitlines()]
    assert len(cases) >= 60
    assert len({c["lang"] for c in cases}) >= 10
    assert {"ar", "he", "ja", "zh", "ko"} <= {c["lang"] for c in cases}
    assert sum(not c["servers"] for c in cases) >= 10


@pytest.fixture(scope="module")
def router() -> Router:
    tools = [
        Tool("time", "get_current_time", "Get the current time in a specific timezone"),
        Tool("time", "convert_time", "Convert a time between timezones"),
        Tool("weather", "get_weather_by_city", "Get the current weather and forecast for a city"),
        Tool("git", "git_log", "Show the commit logs of a git repository"),
        Tool("calculator", "calculate", "Evaluate a mathematical expression"),
    ]
    servers = [
        ServerDescriptor("time", "Current time and time zone conversion"),
        ServerDescriptor("weather", "Weather forecasts"),
        ServerDescriptor("git", "Git repository tools"),
        ServerDescriptor("calculator", "A calculator"),
    ]
    made = Router(Catalog.build(servers, tools), RoutingSettings())
    made.warm()
    return made


@pytest.mark.parametrize(
    ("prompt", "server"),
    [
        ("¿Qué hora es en Tokio?", "time"),
        ("東京は今何時ですか？", "time"),
        ("Wie spät ist es in Berlin?", "time"),
        ("明日の大阪の天気を教えてください", "weather"),
        ("Какая погода будет завтра в Москве?", "weather"),
        ("Покажи историю коммитов в git-репозитории", "git"),
        ("كم الساعة الآن في دبي؟", "time"),
    ],
)
def test_prompts_in_other_languages_reach_the_right_server(
    router: Router, prompt: str, server: str
) -> None:
    decision = router.route(prompt)
    assert decision.servers[:1] == (server,), router.explain(prompt)
    assert "multilingual" in decision.latency_ms


def test_english_prompts_keep_the_english_model(router: Router) -> None:
    decision = router.route("What time is it in Tokyo?")
    assert decision.servers[:1] == ("time",)
    assert "multilingual" not in decision.latency_ms and "first_stage" in decision.latency_ms
