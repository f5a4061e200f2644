"""Per-process objects (LLM providers, MCP hub, router): built on first use, after the fork."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from flask import current_app

from gateway.catalog.offer import ToolOffer
from gateway.catalog.reload import ConfigWatcher
from gateway.config import ConfigError
from gateway.llm.registry import LLMRegistry, LLMSettings
from gateway.mcp import MCPConfigError, MCPHub, ServerConfig, load_mcp_config
from gateway.routing import RoutingSettings

if TYPE_CHECKING:
    from flask import Flask

    from gateway.config import Settings

_lock = threading.Lock()


def llm_settings_from(settings: Settings) -> LLMSettings:
    """The providers' settings; a bad LLM_* value is a one-line ConfigError at start-up."""
    raw: dict[str, Any] = dict(settings.llm_env)
    raw.update(
        ANTHROPIC_API_KEY=settings.anthropic_api_key,
        ANTHROPIC_BASE_URL=settings.anthropic_base_url,
        OPENAI_API_KEY=settings.openai_api_key,
        OPENAI_BASE_URL=settings.openai_base_url,
    )
    # The offline provider is the development default; production must ask for it.
    raw.setdefault("LLM_ALLOW_OFFLINE", "false" if settings.is_production else "true")
    try:
        if raw.get("LLM_PRICES"):
            raw["LLM_PRICES"] = json.loads(raw["LLM_PRICES"])
        return LLMSettings.from_mapping(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"LLM settings: {exc}") from None


def _per_process(app: Flask, name: str, build: Any) -> Any:
    """``app.extensions[name]`` for this process, rebuilt when inherited through a fork."""
    entry = app.extensions.get(name)
    if entry is None or entry[0] != os.getpid():
        with _lock:
            entry = app.extensions.get(name)
            if entry is None or entry[0] != os.getpid():
                entry = app.extensions[name] = (os.getpid(), build(app))
    return entry[1]


def mcp_configs_from(settings: Settings) -> list[ServerConfig]:
    """The operator's mcpServers file, validated; a bad file is a one-line ConfigError."""
    try:
        return load_mcp_config(settings.mcp_config, os.environ)
    except MCPConfigError as exc:
        raise ConfigError(f"MCP_CONFIG: {exc}") from None


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def llm_registry() -> LLMRegistry:
    return _per_process(
        _app(), "gateway.llm", lambda app: LLMRegistry(app.extensions["gateway.llm_settings"])
    )


def mcp_hub() -> MCPHub:
    """This worker's MCP sessions; nothing connects until first use."""

    def build(app: Flask) -> MCPHub:
        settings = app.extensions["gateway.settings"]
        return MCPHub(
            app.extensions["gateway.mcp_configs"], max_result_bytes=settings.max_tool_result_bytes
        )

    return _per_process(_app(), "gateway.mcp", build)


def tool_offer() -> ToolOffer:
    """This worker's router over its live MCP tools."""
    hub = mcp_hub()

    def build(app: Flask) -> ToolOffer:
        settings = app.extensions["gateway.settings"]
        watcher = ConfigWatcher(hub, settings.mcp_config)
        return ToolOffer(hub, app.extensions["gateway.routing_settings"], watcher)

    return _per_process(_app(), "gateway.tool_offer", build)


def routing_settings_from(settings: Settings) -> RoutingSettings:
    """ROUTING_* variables over the shipped, measured defaults."""
    env = dict(settings.routing_env)
    if env.get("ROUTING_EMBEDDINGS_URL"):
        env.setdefault("ROUTING_SEMANTIC_BACKEND", "endpoint")
    try:
        return RoutingSettings.from_mapping(env)
    except ValueError as exc:
        raise ConfigError(f"{exc}") from None


def close_runtime(app: Flask) -> None:
    """Release this process's clients and sessions (gunicorn worker_exit)."""
    app.extensions.pop("gateway.tool_offer", None)
    for name in ("gateway.mcp", "gateway.llm"):
        entry = app.extensions.pop(name, None)
        if entry is not None and entry[0] == os.getpid():
            entry[1].close()


WARM_KEY = "gateway.warm"


def warm_up(app: Flask, *, settle_seconds: float = 30.0) -> None:
    """Connect the MCP servers, open a database connection, build the LLM clients (importing
    their SDKs), build the router and load its model: what a first chat would wait for.

    gunicorn's post_worker_init calls it before the worker accepts a connection; until it
    returns, :func:`warm_state` is "warming" and /health/ready answers 503.
    """
    log = logging.getLogger(__name__)
    app.extensions[WARM_KEY] = (os.getpid(), "warming")
    started = time.monotonic()
    with app.app_context():
        try:
            hub = mcp_hub()
            hub.start()
            # The ORM's mappers and a pooled database connection, as the first request needs.
            from sqlalchemy.orm import configure_mappers

            from gateway.database import database_ready

            configure_mappers()
            database_ready()
            registry = llm_registry()
            for name in registry.settings.configured():
                registry.get(name)
            deadline = time.monotonic() + settle_seconds
            while time.monotonic() < deadline and any(
                s.state == "starting" for s in hub.statuses()
            ):
                time.sleep(0.05)
            tool_offer().offer("warm up")
        except Exception:  # warm-up is best effort; the first request retries
            log.warning("warm-up failed", exc_info=True)
    app.extensions[WARM_KEY] = (os.getpid(), "ok")
    log.info("worker warm in %.1f s", time.monotonic() - started)


def warm_state(app: Flask) -> str | None:
    """ "warming" or "ok" in a process that warms up (a gunicorn worker), else None."""
    entry = app.extensions.get(WARM_KEY)
    if entry is None or entry[0] != os.getpid():
        return None
    return entry[1]
