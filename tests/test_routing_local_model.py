from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from gateway.routing import Router, RoutingSettings
from gateway.routing.encoders import BlendedEncoder, WordLlamaEncoder, encoder_for, local_encoder
from gateway.routing.evaluate import load_catalog
from gateway.routing.semantic import EmbeddingCache

FIXTURES = Path(__file__).parent / "fixtures" / "routing"


def test_default_router_is_hybrid_with_the_bundled_model() -> None:
    router = Router(load_catalog(FIXTURES / "catalog.json"))
    prompt = "what hour is it in Tokyo?"
    assert Router(router.catalog, RoutingSettings(semantic=False)).route(prompt).servers == ()
    decision = router.route(prompt)
    assert decision.servers == ("time",)
    assert decision.method == "hybrid"
    assert router.route("write me a poem about autumn").servers == ()


def test_local_encoder_is_one_per_process_and_normalized() -> None:
    assert encoder_for(RoutingSettings()) is local_encoder()
    assert encoder_for(RoutingSettings(semantic=False)) is None
    vectors = local_encoder().encode(
        ["current time in Tokyo", "what time is it in Japan"], query=True
    )
    assert vectors.shape == (2, 384 + 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > 0.5


def test_endpoint_backend_without_url_falls_back_to_lexical() -> None:
    settings = RoutingSettings(semantic_backend="endpoint")
    assert encoder_for(settings) is None
    router = Router(load_catalog(FIXTURES / "catalog.json"), settings)
    assert router.route("show the git log").method == "lexical"


def test_batched_encoding_matches_one_by_one_and_queries_are_truncated() -> None:
    encoder = local_encoder("minilm")
    texts = ["weather", "current time in Tokyo", "list the commits of this repository today"]
    together = encoder.encode(texts, query=False)
    alone = np.vstack([encoder.encode([t], query=False) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)
    long_prompt = "find flights " * 60
    assert not np.allclose(
        encoder.encode([long_prompt], query=True), encoder.encode([long_prompt], query=False)
    )
    assert np.allclose(
        encoder.encode([long_prompt], query=True),
        encoder.encode([" ".join(long_prompt.split()[: encoder.query_max_tokens - 2])], query=True),
        atol=1e-4,
    )


def test_length_batches_keep_padding_small() -> None:
    from gateway.routing.encoders import _length_batches

    lengths = [5, 40, 6, 38, 7, 120]
    batches = _length_batches(lengths, 32)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert [sorted(lengths[i] for i in batch) for batch in batches] == [[5, 6, 7], [38, 40], [120]]
    assert all(len(batch) <= 2 for batch in _length_batches([10] * 5, 2)[:-1])


def test_blend_cosine_is_the_weighted_mean_of_its_models() -> None:
    texts = ["current time in Tokyo", "what hour is it in Japan", "git commit history"]
    blend = local_encoder()
    assert isinstance(blend, BlendedEncoder)
    joined = blend.encode(texts, query=True)
    assert np.allclose(np.linalg.norm(joined, axis=1), 1.0, atol=1e-5)
    expected = sum(
        weight * (encoder.encode(texts, query=True) @ encoder.encode(texts, query=True).T)
        for encoder, weight in blend.parts
    )
    assert np.allclose(joined @ joined.T, expected, atol=1e-5)
    static = local_encoder("wordllama")
    assert isinstance(static, WordLlamaEncoder)
    vectors = static.encode(texts, query=True)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])


def test_missing_local_model_falls_back_to_lexical(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wordllama" else real(name)
    )
    assert encoder_for(RoutingSettings()) is None
    assert encoder_for(RoutingSettings(local_model="minilm")) is local_encoder("minilm")


def test_learned_examples_move_a_tool_towards_prompts_like_them() -> None:
    catalog = load_catalog(FIXTURES / "catalog.json")
    prompt = "any chance I will need an umbrella in Lyon on Saturday?"
    assert Router(catalog).route(prompt).servers == ()
    learned = {
        "weather__get_forecast": [
            "do I need an umbrella in Berlin tomorrow?",
            "will I need a jacket in Paris?",
        ]
    }
    assert Router(catalog, examples=learned).route(prompt).servers == ("weather",)
    assert (
        Router(catalog, RoutingSettings(learned_examples=0), examples=learned).route(prompt).servers
        == ()
    )


def test_a_new_example_encodes_one_text_not_the_catalog() -> None:
    cache = EmbeddingCache()
    catalog = load_catalog(FIXTURES / "catalog.json")
    router = Router(catalog, embedding_cache=cache)
    router.warm()
    first = cache.texts_encoded
    assert first > 0
    # One new text per encoder: the first stage, the English blend, and the multilingual one.
    encoders = 1 + (router._first is not None) + (router._multilingual is not None)
    learned = {"time__get_current_time": ["what hour is it in Lima?"]}
    Router(catalog, embedding_cache=cache, examples=learned).warm()
    assert cache.texts_encoded == first + encoders
    Router(catalog, embedding_cache=cache, examples=learned).warm()
    assert cache.texts_encoded == first + encoders


def test_learned_prompts_are_mixed_in_without_their_mentions() -> None:
    catalog = load_catalog(FIXTURES / "catalog.json")
    router = Router(
        catalog,
        RoutingSettings(semantic=False, learned_examples=1),
        examples={"time__get_current_time": ["@time what hour is it in Lima?", "older prompt"]},
    )
    assert router.examples == {"time__get_current_time": ("what hour is it in Lima?",)}
