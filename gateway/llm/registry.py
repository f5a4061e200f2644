"""LLM settings and the per-process provider registry built from them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.llm.errors import ProviderNotConfigured
from gateway.llm.types import ModelPrice, Provider

log = logging.getLogger(__name__)

PROVIDERS = ("anthropic", "openai", "offline")


@dataclass(frozen=True)
class LLMSettings:
    """Everything the providers need, passed explicitly: the SDKs never read the environment.

    ``default_provider="auto"`` picks Anthropic if it has a key, else OpenAI if it has a key
    or a base URL, else ``offline`` (when ``allow_offline``). ``prices`` maps a model name to
    its USD price per million tokens.
    """

    default_provider: str = "auto"
    default_model: str | None = None
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-4-6"
    anthropic_models: tuple[str, ...] = ()
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-5-mini"
    openai_models: tuple[str, ...] = ()
    openai_max_tokens_param: str | None = None
    # Output-token cap when a request sets none: Anthropic requires one; None lets an
    # OpenAI-compatible upstream apply its own default.
    anthropic_max_tokens: int = 4096
    openai_max_tokens: int | None = None
    # /v1 only: a model id no provider lists goes to the default provider instead of a 404.
    allow_unlisted_models: bool = False
    timeout: float = 60.0
    connect_timeout: float = 5.0
    max_retries: int = 2
    max_retry_wait: float = 10.0
    fallback_provider: str | None = None
    max_tool_rounds: int = 8
    max_parallel_tools: int = 4
    allow_offline: bool = True
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.default_provider not in (*PROVIDERS, "auto"):
            raise ValueError(f"unknown LLM provider {self.default_provider!r}")
        if self.fallback_provider not in (*PROVIDERS, None):
            raise ValueError(f"unknown fallback provider {self.fallback_provider!r}")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("LLM timeouts must be positive")
        if self.anthropic_max_tokens < 1 or (self.openai_max_tokens or 1) < 1:
            raise ValueError("ANTHROPIC_MAX_TOKENS and OPENAI_MAX_TOKENS must be positive")
        if self.max_retries < 0 or self.max_tool_rounds < 1 or self.max_parallel_tools < 1:
            raise ValueError("max_retries must be >= 0; max_tool_rounds, max_parallel_tools >= 1")

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> LLMSettings:
        """Settings from a config mapping such as ``app.config`` (never from ``os.environ``).

        Keys: ``LLM_PROVIDER``, ``LLM_MODEL``, ``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``,
        ``ANTHROPIC_MODEL``, ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_MODEL``,
        ``LLM_TIMEOUT``, ``LLM_CONNECT_TIMEOUT``, ``LLM_MAX_RETRIES``, ``LLM_MAX_RETRY_WAIT``,
        ``LLM_FALLBACK_PROVIDER``, ``LLM_MAX_TOOL_ROUNDS``, ``LLM_MAX_PARALLEL_TOOLS``,
        ``LLM_ALLOW_OFFLINE``, ``ANTHROPIC_MAX_TOKENS``, ``OPENAI_MAX_TOKENS``,
        ``LLM_ALLOW_UNLISTED_MODELS`` and ``LLM_PRICES`` (``{model: [input, output]}`` USD/Mtok).
        """
        values: dict[str, Any] = {}
        keys = {
            "LLM_PROVIDER": ("default_provider", str),
            "LLM_MODEL": ("default_model", str),
            "ANTHROPIC_API_KEY": ("anthropic_api_key", str),
            "ANTHROPIC_BASE_URL": ("anthropic_base_url", str),
            "ANTHROPIC_MODEL": ("anthropic_model", str),
            "OPENAI_API_KEY": ("openai_api_key", str),
            "OPENAI_BASE_URL": ("openai_base_url", str),
            "OPENAI_MODEL": ("openai_model", str),
            "LLM_TIMEOUT": ("timeout", float),
            "LLM_CONNECT_TIMEOUT": ("connect_timeout", float),
            "LLM_MAX_RETRIES": ("max_retries", int),
            "LLM_MAX_RETRY_WAIT": ("max_retry_wait", float),
            "LLM_FALLBACK_PROVIDER": ("fallback_provider", str),
            "LLM_MAX_TOOL_ROUNDS": ("max_tool_rounds", int),
            "LLM_MAX_PARALLEL_TOOLS": ("max_parallel_tools", int),
            "LLM_ALLOW_OFFLINE": ("allow_offline", bool),
            "ANTHROPIC_MAX_TOKENS": ("anthropic_max_tokens", int),
            "OPENAI_MAX_TOKENS": ("openai_max_tokens", int),
            "LLM_ALLOW_UNLISTED_MODELS": ("allow_unlisted_models", bool),
        }
        for key, (name, kind) in keys.items():
            value = config.get(key)
            if value is None or value == "":
                continue
            if kind is bool and isinstance(value, str):
                value = value.strip().lower() in ("1", "true", "yes", "on")
            values[name] = kind(value)
        prices = config.get("LLM_PRICES") or {}
        values["prices"] = {
            model: price if isinstance(price, ModelPrice) else ModelPrice(*map(float, price))
            for model, price in prices.items()
        }
        return cls(**values)

    def configured(self) -> tuple[str, ...]:
        """Providers usable with these settings, in preference order."""
        names = []
        if self.anthropic_api_key:
            names.append("anthropic")
        if self.openai_api_key or self.openai_base_url:
            names.append("openai")
        if self.allow_offline:
            names.append("offline")
        return tuple(names)


class LLMRegistry:
    """The providers of one worker process; SDK clients are built on first use, once.

    Store one in ``app.extensions`` and call ``close()`` when the worker exits.
    """

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()

    @property
    def default_name(self) -> str:
        configured = self.settings.configured()
        wanted = self.settings.default_provider
        if wanted == "auto":
            if not configured:
                raise ProviderNotConfigured("No language model provider is configured.")
            return configured[0]
        return wanted

    def get(self, name: str | None = None) -> Provider:
        """The provider called ``name`` (default: the configured default)."""
        name = name or self.default_name
        if name not in self.settings.configured():
            raise ProviderNotConfigured(f"The LLM provider {name!r} is not configured.")
        provider = self._providers.get(name)
        if provider is None:
            with self._lock:
                provider = self._providers.get(name)
                if provider is None:
                    provider = self._providers[name] = self._build(name)
        return provider

    def fallback_for(self, name: str) -> Provider | None:
        """The provider to try once when ``name`` fails upstream, if one is configured."""
        fallback = self.settings.fallback_provider
        if not fallback or fallback == name or fallback not in self.settings.configured():
            return None
        return self.get(fallback)

    def default_model(self, name: str | None = None) -> str:
        name = name or self.default_name
        if name == self.default_name and self.settings.default_model:
            return self.settings.default_model
        return {
            "anthropic": self.settings.anthropic_model,
            "openai": self.settings.openai_model,
        }.get(name, "offline")

    def list_models(self) -> list[dict[str, Any]]:
        """Configured providers and their models for ``GET /models``; no upstream call."""
        try:
            default = self.default_name
        except ProviderNotConfigured:
            default = None
        listed = {
            "anthropic": self.settings.anthropic_models,
            "openai": self.settings.openai_models,
            "offline": (),
        }
        rows = []
        for name in self.settings.configured():
            first = self.default_model(name)
            for model in dict.fromkeys((first, *listed[name])):
                price = self.settings.prices.get(model)
                rows.append(
                    {
                        "provider": name,
                        "model": model,
                        "default": name == default and model == first,
                        "price_per_mtok": (
                            {"input": price.input_per_mtok, "output": price.output_per_mtok}
                            if price
                            else None
                        ),
                    }
                )
        return rows

    def close(self) -> None:
        """Close the SDK clients (their connection pools)."""
        with self._lock:
            providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            close = getattr(provider, "close", None)
            if close is not None:
                close()

    def _build(self, name: str) -> Provider:
        s = self.settings
        common: dict[str, Any] = {
            "timeout": s.timeout,
            "connect_timeout": s.connect_timeout,
            "max_retries": s.max_retries,
            "max_retry_wait": s.max_retry_wait,
        }
        if name == "anthropic":
            from gateway.llm.anthropic import AnthropicProvider

            return AnthropicProvider(
                api_key=s.anthropic_api_key or "",
                base_url=s.anthropic_base_url,
                default_model=self.default_model("anthropic"),
                default_max_tokens=s.anthropic_max_tokens,
                **common,
            )
        if name == "openai":
            from gateway.llm.openai import OpenAIProvider

            return OpenAIProvider(
                api_key=s.openai_api_key,
                base_url=s.openai_base_url,
                default_model=self.default_model("openai"),
                max_tokens_param=s.openai_max_tokens_param,
                default_max_tokens=s.openai_max_tokens,
                **common,
            )
        from gateway.llm.offline import OfflineProvider

        return OfflineProvider()
