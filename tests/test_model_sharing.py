"""Routing models loaded once in the gunicorn master and shared by its forked workers."""

from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests

from gateway.routing.encoders import (
    first_stage_encoder,
    local_encoder,
    multilingual_encoder,
    preload_models,
)
from gateway.routing.settings import RoutingSettings
from tests.chat_setup import chat_env, write_mcp_config
from tests.conftest import TEST_SECRET
from tests.fakes.fake_llm import FakeLLM, reply
from tests.live_server import gunicorn

TEXTS = ["What time is it in Tokyo?", "¿Qué hora es en Tokio?", "東京は今何時ですか？"]


def _encode_all(_: int) -> list[np.ndarray]:
    settings = RoutingSettings()
    encoders = [local_encoder(settings.local_model), first_stage_encoder(settings)]
    encoders.append(multilingual_encoder())
    return [encoder.encode(TEXTS, query=True) for encoder in encoders if encoder is not None]


def test_models_loaded_before_a_fork_encode_the_same_in_the_children() -> None:
    loaded = preload_models(RoutingSettings())
    assert len(loaded) == 3, loaded  # the blend, the first stage, the multilingual model
    expected = _encode_all(0)
    # Two children at once, each encoding with the inherited models (threads, locks, sessions).
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(_encode_all, range(4))
    for vectors in results:
        assert len(vectors) == len(expected)
        for got, want in zip(vectors, expected, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_lexical_routing_or_an_endpoint_loads_no_local_model() -> None:
    assert preload_models(RoutingSettings(semantic=False)) == []
    endpoint = RoutingSettings(semantic_backend="endpoint", embeddings_url="http://127.0.0.1:9")
    assert preload_models(endpoint) == []


def test_gunicorn_workers_route_with_the_masters_models(make_database, tmp_path) -> None:
    with FakeLLM() as fake:
        fake.script(*[reply("ok") for _ in range(8)])
        env = {
            "ENVIRONMENT": "test",
            "DATABASE_URL": make_database(),
            "JWT_SECRET_KEY": TEST_SECRET,
            **chat_env(fake.url, write_mcp_config(tmp_path), ROUTING_SEMANTIC="true"),
            "CHAT_MAX_CONCURRENT": "0",
        }
        with gunicorn(env, workers=2, threads=4) as server:
            body = {"email": "sharer@example.com", "password": "a long enough password"}
            requests.post(server.url + "/auth/register", json=body, timeout=10)
            login = requests.post(server.url + "/auth/login", json=body, timeout=10).json()
            auth = {"Authorization": f"Bearer {login['access_token']}"}
            prompts = ["add 2 and 40 please", "suma dos y cuarenta, por favor"] * 4

            def chat(prompt: str) -> int:
                message = {"message": prompt}
                return requests.post(
                    server.url + "/chat", headers=auth, json=message, timeout=60
                ).status_code

            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(chat, prompts))
            log = server.log()
    assert statuses == [200] * len(prompts), log
    assert "routing models loaded before fork: " in log
    # The workers warm up with the inherited models: no worker loads one of its own.
    assert "cannot prepare the MiniLM model" not in log
    routed = re.findall(r"\[(\d+)\] gateway\.routing\.decision: .* → calc", log)
    assert len(routed) == len(prompts), log
