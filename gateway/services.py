"""One worker's long-lived objects (LLM clients, MCP sessions, tool offer, limit counters, the
``/mcp`` endpoint) in one typed :class:`Services`, built once per process after the fork."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from flask import current_app

from gateway.catalog.offer import ToolOffer
from gateway.catalog.reload import ConfigWatcher
from gateway.llm.registry import LLMRegistry
from gateway.mcp import MCPConfigError, MCPHub, ServerConfig, load_mcp_config
from gateway.settings import ConfigError, Settings

if TYPE_CHECKING:
    from flask import Flask

    from gateway.auth.tokens import ApiKeyCache
    from gateway.limits import Counters
    from gateway.mcp_server.server import Endpoint

log = logging.getLogger(__name__)
T = TypeVar("T")
# The one app.extensions key: everything else is reached through get_services().
_KEY = "gateway"
# Builds are rare (once per object per process); one lock keeps two threads from doubling one.
_lock = threading.RLock()


def mcp_configs_from(settings: Settings) -> list[ServerConfig]:
    """The operator's mcpServers file, validated; a bad file is a one-line ConfigError."""
    try:
        return load_mcp_config(settings.mcp.config, settings.environ)
    except MCPConfigError as exc:
        raise ConfigError(f"MCP_CONFIG: {exc}") from None


class Services:
    """This process's services; each is built on first use, once, and closed by :meth:`close`.

    ``warm`` is "warming" or "ok" in a process that warms up (a gunicorn worker), else None.
    """

    def __init__(self, app: Flask, settings: Settings, mcp_configs: list[ServerConfig]) -> None:
        self.app = app
        self.settings = settings
        self.mcp_configs = mcp_configs
        self.warm: str | None = None
        self._built: dict[str, object] = {}

    def _once(self, name: str, build: Callable[[], T]) -> T:
        if name not in self._built:
            with _lock:
                if name not in self._built:
                    self._built[name] = build()
        return self._built[name]  # type: ignore[return-value]

    @property
    def llm(self) -> LLMRegistry:
        """The LLM providers; SDK clients are built on first use."""
        return self._once(
            "llm",
            lambda: LLMRegistry(
                self.settings.llm, keepalive_connections=self.settings.http.threads
            ),
        )

    @property
    def mcp(self) -> MCPHub:
        """The MCP sessions; nothing connects until first use."""
        return self._once(
            "mcp",
            lambda: MCPHub(
                self.mcp_configs, max_result_bytes=self.settings.mcp.max_tool_result_bytes
            ),
        )

    @property
    def tools(self) -> ToolOffer:
        """The router over the live MCP tools."""

        def build() -> ToolOffer:
            watcher = ConfigWatcher(self.mcp, self.settings.mcp.config, self.settings.environ)
            return ToolOffer(self.mcp, self.settings.routing, watcher)

        return self._once("tools", build)

    @property
    def counters(self) -> Counters:
        """The abuse limits' counters: Redis when REDIS_URL is set, else PostgreSQL."""
        from gateway.limits import counters_for

        return self._once("counters", lambda: counters_for(self.settings.limits.redis_url))

    @property
    def api_key_cache(self) -> ApiKeyCache:
        """Valid API keys' owners, re-read every API_KEY_CACHE_SECONDS."""
        from gateway.auth.tokens import ApiKeyCache

        return self._once(
            "api_key_cache", lambda: ApiKeyCache(self.settings.auth.api_key_cache_seconds)
        )

    @property
    def endpoint(self) -> Endpoint:
        """The gateway's own MCP endpoint (``/mcp``)."""
        from gateway.mcp_server.server import Endpoint

        def build() -> Endpoint:
            http = self.settings.http
            # Each open stream (a 2026-07-28 listen) holds a gthread thread: keep half.
            max_streams = self.settings.mcp.endpoint.max_streams_per_worker or max(
                1, http.threads // 2
            )
            return Endpoint(
                self.app, max_request_bytes=http.max_request_bytes, max_streams=max_streams
            )

        return self._once("endpoint", build)

    def close(self) -> None:
        """Close the endpoint, the MCP sessions and the SDK clients (gunicorn worker_exit)."""
        with _lock:
            built, self._built = self._built, {}
        for name in ("endpoint", "mcp", "llm"):
            service = built.get(name)
            if service is not None:
                service.close()  # type: ignore[attr-defined]


class ServicesFactory:
    """One :class:`Services` per process: a process that forked builds its own, and the one it
    inherited (whose threads and sockets belong to the parent) is dropped, never closed."""

    def __init__(self, app: Flask, settings: Settings, mcp_configs: list[ServerConfig]) -> None:
        self.app = app
        self.settings = settings
        self.mcp_configs = mcp_configs
        self._current: tuple[int, Services] | None = None

    def get(self) -> Services:
        current = self._current
        if current is None or current[0] != os.getpid():
            with _lock:
                current = self._current
                if current is None or current[0] != os.getpid():
                    current = (os.getpid(), Services(self.app, self.settings, self.mcp_configs))
                    self._current = current
        return current[1]

    def close(self) -> None:
        """Close this process's services, if it built any."""
        current, self._current = self._current, None
        if current is not None and current[0] == os.getpid():
            current[1].close()


def register_services(app: Flask, settings: Settings) -> None:
    """Check the MCP config file and register the factory (create_app); builds nothing yet."""
    app.extensions[_KEY] = ServicesFactory(app, settings, mcp_configs_from(settings))


def get_services(app: Flask | None = None) -> Services:
    """This process's services for ``app`` (default: the current app)."""
    if app is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    factory: ServicesFactory = app.extensions[_KEY]
    return factory.get()


def close_services(app: Flask) -> None:
    """Release this process's clients, sessions and endpoint (gunicorn worker_exit)."""
    factory: ServicesFactory | None = app.extensions.get(_KEY)
    if factory is not None:
        factory.close()


def warm_up(app: Flask, *, settle_seconds: float = 30.0) -> None:
    """Connect the MCP servers, open a database connection, build the LLM clients (importing
    their SDKs), build the router and load its model: what a first chat would wait for.

    gunicorn's post_worker_init calls it before the worker accepts a connection; until it
    returns, :func:`warm_state` is "warming" and /health/ready answers 503.
    """
    services = get_services(app)
    services.warm = "warming"
    started = time.monotonic()
    with app.app_context():
        try:
            hub = services.mcp
            hub.start()
            # The ORM's mappers and a pooled database connection, as the first request needs.
            from sqlalchemy.orm import configure_mappers

            from gateway.database import database_ready

            configure_mappers()
            database_ready()
            registry = services.llm
            for name in registry.settings.configured():
                registry.get(name)
            deadline = time.monotonic() + settle_seconds
            while time.monotonic() < deadline and any(
                s.state == "starting" for s in hub.statuses()
            ):
                time.sleep(0.05)
            services.tools.offer("warm up")
            # Every index and its model, the multilingual one included: an English warm-up
            # prompt leaves it to a worker's first prompt in another language (1.5-3 s).
            services.tools.router().warm()
        except Exception:  # warm-up is best effort; the first request retries
            log.warning("warm-up failed", exc_info=True)
    services.warm = "ok"
    # What start-up made lives as long as the worker: moved out of the collector's reach,
    # its full collections no longer walk the SDKs', models' and catalog's objects on every
    # request path (issue #20: a tenth of a loaded worker's CPU per streamed turn, py-spy
    # showed the pauses inside unrelated allocations). Python docs, ``gc.freeze``.
    gc.freeze()
    log.info("worker warm in %.1f s", time.monotonic() - started)


def warm_state(app: Flask) -> str | None:
    """ "warming" or "ok" in a process that warms up (a gunicorn worker), else None."""
    return get_services(app).warm
