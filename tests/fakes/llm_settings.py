"""Settings and helpers that point our LLM providers at the fake upstream."""

from __future__ import annotations

import socket
from typing import Any

from gateway.llm import LLMRegistry, LLMSettings
from gateway.llm.types import Provider
from tests.fakes.fake_llm import FakeLLM

APIS = ("anthropic", "openai")


def settings_for(fake: FakeLLM | None, api: str = "anthropic", **overrides: Any) -> LLMSettings:
    """Both providers aimed at ``fake`` with a test key, no retries and a short timeout."""
    base = {
        "default_provider": api,
        "anthropic_api_key": "test-key",
        "anthropic_base_url": fake.anthropic_url if fake else closed_url(),
        "anthropic_model": "claude-test",
        "openai_api_key": "test-key",
        "openai_base_url": fake.openai_url if fake else closed_url() + "/v1",
        "openai_model": "gpt-test",
        "max_retries": 0,
        "timeout": 5.0,
    }
    return LLMSettings(**(base | overrides))


class Providers:
    """Builds providers against the fake and closes their SDK clients afterwards."""

    def __init__(self, fake: FakeLLM | None) -> None:
        self.fake = fake
        self._registries: list[LLMRegistry] = []

    def __call__(self, api: str, **overrides: Any) -> Provider:
        return self.registry(api, **overrides).get(api)

    def registry(self, api: str, **overrides: Any) -> LLMRegistry:
        registry = LLMRegistry(settings_for(self.fake, api, **overrides))
        self._registries.append(registry)
        return registry

    def close(self) -> None:
        for registry in self._registries:
            registry.close()


def closed_url() -> str:
    """A loopback URL where nothing listens (the port was just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
