"""The gateway as one MCP server at ``/mcp``: every ready server's tools, resources and prompts.

Also ``/mcp/servers`` (``servers.py``): the upstream servers behind it, for users and admins.
Not named ``mcp``: a package of that name would shadow the SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.config import gunicorn_counts
from gateway.mcp_server.settings import EndpointSettings

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Register ``/mcp``; nothing starts until the first request or ``start_endpoint``.

    Raises ConfigError for a bad MCP_ENDPOINT_* value.
    """
    from gateway.mcp_server import servers
    from gateway.mcp_server.server import Endpoint
    from gateway.mcp_server.views import bp

    settings = app.extensions["gateway.settings"]
    endpoint_settings = EndpointSettings.from_env(settings.mcp_endpoint_env)
    app.extensions["gateway.mcp_endpoint_settings"] = endpoint_settings
    # Each open stream (a 2026-07-28 listen) holds a gthread thread: keep half for the rest.
    _, threads = gunicorn_counts()
    max_streams = endpoint_settings.max_streams_per_worker or max(1, threads // 2)
    app.extensions["gateway.mcp_endpoint"] = Endpoint(
        app, max_request_bytes=settings.max_request_bytes, max_streams=max_streams
    )
    app.register_blueprint(servers.bp)
    app.register_blueprint(bp)


def start_endpoint(app: Flask) -> None:
    """Start this worker's MCP endpoint loop and catalog watcher (gunicorn post_worker_init)."""
    settings: EndpointSettings = app.extensions["gateway.mcp_endpoint_settings"]
    app.extensions["gateway.mcp_endpoint"].start(settings.catalog_poll_seconds)


def close_endpoint(app: Flask) -> None:
    """End open streams and stop the loop (gunicorn worker_exit)."""
    endpoint = app.extensions.get("gateway.mcp_endpoint")
    if endpoint is not None:
        endpoint.close()


def end_streams_when(app: Flask, stopping: Callable[[], bool], poll: float = 1.0) -> None:
    """Watch ``stopping`` (gunicorn: ``not worker.alive``) and then end long-lived streams."""
    import threading
    import time

    def watch() -> None:
        while not stopping():
            time.sleep(poll)
        app.extensions["gateway.mcp_endpoint"].bridge.end_long_lived()

    threading.Thread(target=watch, name="mcp-endpoint-stop", daemon=True).start()
