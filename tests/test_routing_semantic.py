from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import requests
from requests.adapters import BaseAdapter

from gateway.routing import Catalog, Router, RoutingSettings, ServerDescriptor
from gateway.routing.evaluate import load_catalog
from gateway.routing.semantic import (
    EmbeddingCache,
    EndpointEncoder,
    SemanticIndex,
    plain_chat_examples,
)
from gateway.routing.text import without_closing_punctuation
from gateway.tools import Tool
from tests.routing_fakes import HashingEncoder

FIXTURES = Path(__file__).parent / "fixtures" / "routing"
HYBRID = RoutingSettings(semantic=True)


@pytest.fixture()
def catalog() -> Catalog:
    return load_catalog(FIXTURES / "catalog.json")


def make_router(catalog: Catalog, encoder: HashingEncoder, cache: EmbeddingCache) -> Router:
    return Router(catalog, HYBRID, encoder=encoder, embedding_cache=cache)


def test_hybrid_router_reports_both_stages(catalog: Catalog) -> None:
    router = make_router(catalog, HashingEncoder(), EmbeddingCache())
    decision = router.route("Will it rain tomorrow? What's the forecast?")
    assert decision.servers[0] == "weather"
    assert decision.method == "hybrid"
    assert {"lexical", "semantic", "fusion"} <= set(decision.latency_ms)


def test_warming_loads_the_encoder_even_when_the_catalog_vectors_are_cached(
    catalog: Catalog,
) -> None:
    cache = EmbeddingCache()
    make_router(catalog, HashingEncoder(), cache).warm()
    fresh = HashingEncoder()  # as a worker's encoder whose model is not loaded yet
    make_router(catalog, fresh, cache).warm()
    # No document encoded again, but one query: a model loaded lazily is loaded by warm().
    assert fresh.calls == [(1, True)]


def test_catalog_vectors_are_encoded_once_per_catalog(catalog: Catalog) -> None:
    encoder, cache = HashingEncoder(), EmbeddingCache()
    first = make_router(catalog, encoder, cache)
    first.route("what time is it in London?")
    second = make_router(catalog, encoder, cache)
    second.route("show the git log")
    assert cache.document_encodes == 1
    # 5 server documents; 16 tools, each with two generic example requests; the plain-chat
    # examples.
    documents = 5 + 16 * 3 + len(plain_chat_examples())
    assert [n for n, query in encoder.calls if not query] == [documents]

    changed = Catalog.build(
        catalog.servers[:-1], [t for t in catalog.tools if t.server != catalog.servers[-1].name]
    )
    make_router(changed, encoder, cache).route("show the git log")
    assert cache.document_encodes == 2


def test_query_vectors_of_earlier_turns_are_reused(catalog: Catalog) -> None:
    encoder, cache = HashingEncoder(), EmbeddingCache()
    router = make_router(catalog, encoder, cache)
    router.route("what time is it in London?")
    router.route("and in Tokyo?", history=["what time is it in London?"])
    queries = [n for n, query in encoder.calls if query]
    assert len(queries) == 2


def test_semantic_index_scores_are_in_unit_range() -> None:
    index = SemanticIndex(
        HashingEncoder(),
        servers=[["time zones"], ["weather"]],
        tools=[["current time"], ["forecast", "I need a forecast."], ["alerts"]],
        fingerprint="x",
        embedding_cache=EmbeddingCache(),
    )
    servers, tools = index.scores("current time", [], 0.5)
    assert len(servers) == 2 and len(tools) == 3
    assert all(0.0 <= s <= 1.0 for s in [*servers, *tools])
    assert tools[0] == pytest.approx(1.0)


class FakeEmbeddings(BaseAdapter):
    """Answers ``/v1/embeddings`` in the OpenAI wire format, in reverse order on purpose."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, object]] = []

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        body = json.loads(request.body)
        self.requests.append(
            {"url": request.url, "body": body, "auth": request.headers.get("Authorization")}
        )
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), 1.0, 0.0]}
            for i, text in enumerate(body["input"])
        ]
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps({"object": "list", "data": data[::-1]}).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url
        return response

    def close(self) -> None:
        pass


def test_endpoint_encoder_speaks_the_openai_embeddings_format() -> None:
    adapter = FakeEmbeddings()
    session = requests.Session()
    session.mount("http://embeddings.test", adapter)
    encoder = EndpointEncoder(
        "http://embeddings.test/v1", "small", api_key="k", batch=2, session=session
    )
    vectors = encoder.encode(["a", "bbb", "cc"], query=False)
    assert vectors.shape == (3, 3)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[1][0] > vectors[2][0] > vectors[0][0]
    assert [r["url"] for r in adapter.requests] == ["http://embeddings.test/v1/embeddings"] * 2
    assert adapter.requests[0]["body"] == {"model": "small", "input": ["a", "bbb"]}
    assert adapter.requests[0]["auth"] == "Bearer k"


def test_semantic_stage_finds_what_words_alone_miss() -> None:
    class SynonymEncoder(HashingEncoder):
        """Maps 'umbrella' onto 'rain' the way a real model would."""

        def encode(self, texts, *, query):  # type: ignore[no-untyped-def]
            return super().encode([t.replace("umbrella", "rain") for t in texts], query=query)

    catalog = Catalog.build(
        [ServerDescriptor("weather", "Rain and temperature forecasts."), ServerDescriptor("time")],
        [Tool("weather", "forecast", "Rain forecast."), Tool("time", "now", "Current time.")],
    )
    lexical = Router(catalog, RoutingSettings(semantic=False)).route("umbrella needed?")
    assert lexical.servers == ()
    router = Router(
        catalog,
        replace(HYBRID, threshold=0.1),
        encoder=SynonymEncoder(),
        embedding_cache=EmbeddingCache(),
    )
    assert router.route("umbrella needed?").servers == ("weather",)


@pytest.fixture(scope="module")
def shipped() -> Router:
    """The shipped configuration with its own local models (first stage, MiniLM blend, USE)."""
    made = Router(load_catalog(FIXTURES / "catalog.json"), RoutingSettings())
    made.warm()
    return made


def test_a_sure_first_stage_skips_the_transformer(shipped: Router) -> None:
    sure = Router(shipped.catalog, replace(shipped.settings, escalate_below=0.0))
    ranking = sure.rank("What time is it in Tokyo right now?")
    assert ranking.servers[0].name == "time"
    assert "first_stage" in ranking.latency_ms and "semantic" not in ranking.latency_ms


def test_an_unsure_first_stage_asks_the_transformer(shipped: Router) -> None:
    always = Router(shipped.catalog, replace(shipped.settings, escalate_below=2.0))
    ranking = always.rank("What time is it in Tokyo right now?")
    assert {"first_stage", "semantic"} <= set(ranking.latency_ms)
    assert ranking.servers[0].name == "time"


def test_a_wide_plain_chat_lead_skips_the_transformer(shipped: Router) -> None:
    prompt = "Say hello in one short sentence."
    ranking = shipped.rank(prompt)
    assert "semantic" not in ranking.latency_ms, shipped.explain(prompt)
    assert shipped.decide(prompt, ranking).method == "plain_chat"
    checked = Router(shipped.catalog, replace(shipped.settings, chat_sure=1.0))
    assert "semantic" in checked.rank(prompt).latency_ms


def test_a_thorough_ranking_always_uses_the_transformer(shipped: Router) -> None:
    ranking = shipped.rank("What time is it in Tokyo right now?", thorough=True)
    assert "semantic" in ranking.latency_ms


@pytest.mark.parametrize("prompt", ["thank you so much, that helped!", "tell me a joke"])
def test_plain_chat_is_offered_no_tool(shipped: Router, prompt: str) -> None:
    decision = shipped.route(prompt)
    assert decision.tools == () and decision.method == "plain_chat", shipped.explain(prompt)


@pytest.mark.parametrize(
    ("prompt", "offered"),
    [
        ("what time is it in Paris", True),
        ("what is the time in Paris", True),
        ("Is it already evening in Los Angeles", False),  # under the threshold on this catalog
    ],
)
def test_a_closing_question_mark_changes_no_decision(
    shipped: Router, prompt: str, offered: bool
) -> None:
    # Most plain-chat examples are questions: a final "?" drew requests to them (issue #18's
    # inputs; on the default catalog "what time is it in Paris?" was plain chat).
    plain = shipped.route(prompt)
    assert ("time" in plain.servers) is offered, shipped.explain(prompt)
    for asked in (prompt + "?", prompt + " ?", prompt + "？", prompt + "."):
        decision = shipped.route(asked)
        assert (decision.servers, decision.method) == (plain.servers, plain.method), asked


def test_closing_punctuation_is_dropped_only_at_the_end() -> None:
    assert without_closing_punctuation("what time is it in Paris?!") == "what time is it in Paris"
    assert without_closing_punctuation("東京は今何時ですか？") == "東京は今何時ですか"
    assert without_closing_punctuation("e.g. this. And that?") == "e.g. this. And that"
    assert without_closing_punctuation("?") == "?"  # nothing else left: kept as it is


def test_tools_per_server_caps_each_server(shipped: Router) -> None:
    capped = Router(shipped.catalog, replace(shipped.settings, tools_per_server=1, max_servers=3))
    decision = capped.route("list open pull requests and create a branch called feature-x")
    servers = [name.split("__")[0] for name in decision.tools]
    assert decision.tools and len(servers) == len(set(servers))
