"""LLM settings and the per-process provider registry built from them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.llm.base import SDK_KEEPALIVE_CONNECTIONS
from gateway.llm.errors import ProviderNotConfigured
from gateway.llm.types import ModelPrice, Provider

log = logging.getLogger(__name__)

PROVIDERS = ("anthropic", "openai", "offline")


def _env(name: str, default: Any, doc: str, *, secret: bool = False) -> Any:
    """A field read from the variable ``name`` by gateway.settings."""
    metadata = {"env": name, "doc": doc, "secret": secret}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class LLMSettings:
    """Everything the providers need, passed explicitly: the SDKs never read the environment.

    ``default_provider="auto"`` picks Anthropic if it has a key, else OpenAI if it has a key
    or a base URL, else ``offline`` (when ``allow_offline``). ``prices`` maps a model name to
    its USD price per million tokens. gateway.settings reads each field from the variable in
    its metadata.
    """

    default_provider: str = _env(
        "LLM_PROVIDER",
        "auto",
        "`anthropic`, `openai`, `offline`, or `auto`: Anthropic if it has a key, else OpenAI if "
        "it has a key or base URL, else `offline`; production refuses to start when it cannot "
        "answer",
    )
    default_model: str | None = _env("LLM_MODEL", None, "the default provider's default model")
    anthropic_api_key: str | None = _env(
        "ANTHROPIC_API_KEY", None, "Anthropic API key", secret=True
    )
    anthropic_base_url: str | None = _env(
        "ANTHROPIC_BASE_URL", None, "Anthropic API root, e.g. a proxy (default: the SDK's)"
    )
    anthropic_model: str = _env("ANTHROPIC_MODEL", "claude-sonnet-4-6", "default Anthropic model")
    anthropic_models: tuple[str, ...] = ()
    # Header names the Anthropic SDK would add from this variable; we cancel them.
    anthropic_custom_headers: str = _env(
        "ANTHROPIC_CUSTOM_HEADERS",
        "",
        "read by the Anthropic SDK itself; the gateway cancels the headers it names",
    )
    openai_api_key: str | None = _env(
        "OPENAI_API_KEY", None, "OpenAI (or compatible server) API key", secret=True
    )
    openai_base_url: str | None = _env(
        "OPENAI_BASE_URL",
        None,
        "OpenAI-compatible API root including `/v1` (Ollama, vLLM, LM Studio; default: the SDK's)",
    )
    openai_model: str = _env("OPENAI_MODEL", "gpt-5-mini", "default OpenAI model")
    openai_models: tuple[str, ...] = ()
    openai_max_tokens_param: str | None = None
    # Output-token cap when a request sets none: Anthropic requires one; None lets an
    # OpenAI-compatible upstream apply its own default.
    anthropic_max_tokens: int = _env(
        "ANTHROPIC_MAX_TOKENS", 4096, "output-token cap when a request sets none"
    )
    openai_max_tokens: int | None = _env(
        "OPENAI_MAX_TOKENS",
        None,
        "output-token cap when a request sets none (unset: the OpenAI-compatible upstream's)",
    )
    # /v1 only: a model id no provider lists goes to the default provider instead of a 404.
    allow_unlisted_models: bool = _env(
        "LLM_ALLOW_UNLISTED_MODELS",
        False,
        "on `/v1`, send a model id no provider lists to the default provider instead of "
        "answering 404 `model_not_found`",
    )
    timeout: float = _env("LLM_TIMEOUT", 60.0, "seconds per upstream read")
    connect_timeout: float = _env("LLM_CONNECT_TIMEOUT", 5.0, "seconds per upstream connect")
    max_retries: int = _env("LLM_MAX_RETRIES", 2, "the SDKs' retries on 429/5xx/connection errors")
    max_retry_wait: float = _env(
        "LLM_MAX_RETRY_WAIT", 10.0, "seconds; a longer `Retry-After` fails at once"
    )
    fallback_provider: str | None = _env(
        "LLM_FALLBACK_PROVIDER",
        None,
        "tried once when the chosen provider fails upstream; recorded on the message",
    )
    max_tool_rounds: int = _env("LLM_MAX_TOOL_ROUNDS", 8, "tool-call rounds per turn")
    max_parallel_tools: int = _env("LLM_MAX_PARALLEL_TOOLS", 4, "tool calls run at once")
    allow_offline: bool = _env(
        "LLM_ALLOW_OFFLINE",
        True,
        "whether the `offline` provider may answer (default: `true`, production `false`)",
    )
    prices: Mapping[str, ModelPrice] = _env(
        "LLM_PRICES",
        {},
        'JSON `{"model": [input, output]}` in USD per million tokens: cost per message',
    )

    def __post_init__(self) -> None:
        if self.default_provider not in (*PROVIDERS, "auto"):
            raise ValueError(f"LLM_PROVIDER: unknown LLM provider {self.default_provider!r}")
        if self.fallback_provider not in (*PROVIDERS, None):
            raise ValueError(
                f"LLM_FALLBACK_PROVIDER: unknown fallback provider {self.fallback_provider!r}"
            )
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("LLM_TIMEOUT: LLM timeouts (and LLM_CONNECT_TIMEOUT) must be positive")
        if self.anthropic_max_tokens < 1 or (self.openai_max_tokens or 1) < 1:
            raise ValueError(
                "ANTHROPIC_MAX_TOKENS: ANTHROPIC_MAX_TOKENS and OPENAI_MAX_TOKENS must be positive"
            )
        if self.max_retries < 0:
            raise ValueError("LLM_MAX_RETRIES: must be at least 0")
        if self.max_tool_rounds < 1 or self.max_parallel_tools < 1:
            raise ValueError(
                "LLM_MAX_TOOL_ROUNDS: LLM_MAX_TOOL_ROUNDS and LLM_MAX_PARALLEL_TOOLS must be >= 1"
            )
        # JSON gives [input, output] pairs; the settings keep ModelPrice values.
        try:
            prices = {
                model: price if isinstance(price, ModelPrice) else ModelPrice(*map(float, price))
                for model, price in self.prices.items()
            }
        except (TypeError, ValueError):
            raise ValueError('LLM_PRICES: expected {"model": [input, output]}') from None
        object.__setattr__(self, "prices", prices)

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

    def __init__(
        self, settings: LLMSettings, *, keepalive_connections: int = SDK_KEEPALIVE_CONNECTIONS
    ) -> None:
        self.settings = settings
        # Idle upstream connections each SDK client keeps: the worker's threads (see
        # base.connection_limits).
        self.keepalive_connections = keepalive_connections
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
            "keepalive_connections": self.keepalive_connections,
        }
        if name == "anthropic":
            from gateway.llm.anthropic import AnthropicProvider

            return AnthropicProvider(
                api_key=s.anthropic_api_key or "",
                base_url=s.anthropic_base_url,
                default_model=self.default_model("anthropic"),
                default_max_tokens=s.anthropic_max_tokens,
                custom_headers=s.anthropic_custom_headers,
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
