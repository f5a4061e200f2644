"""The gateway as one MCP server at ``/mcp``: every ready server's tools, resources and prompts.

Also ``/mcp/servers`` (``servers.py``): the upstream servers behind it, for users and admins.
Not named ``mcp``: a package of that name would shadow the SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.services import get_services

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Register ``/mcp``; nothing starts until the first request or ``start_endpoint``."""
    from gateway.mcp_server import servers
    from gateway.mcp_server.views import bp

    app.register_blueprint(servers.bp)
    app.register_blueprint(bp)


def start_endpoint(app: Flask) -> None:
    """Start this worker's MCP endpoint loop and catalog watcher (gunicorn post_worker_init)."""
    services = get_services(app)
    services.endpoint.start(services.settings.mcp.endpoint.catalog_poll_seconds)


def end_streams_when(app: Flask, stopping: Callable[[], bool], poll: float = 1.0) -> None:
    """Watch ``stopping`` (gunicorn: ``not worker.alive``) and then end long-lived streams."""
    import threading
    import time

    def watch() -> None:
        while not stopping():
            time.sleep(poll)
        get_services(app).endpoint.bridge.end_long_lived()

    threading.Thread(target=watch, name="mcp-endpoint-stop", daemon=True).start()
