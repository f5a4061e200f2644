"""The OpenAI-compatible surface: ``/v1/chat/completions`` and ``/v1/models``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    from werkzeug.exceptions import MethodNotAllowed, NotFound

    from gateway.compat.errors import routing_error
    from gateway.compat.views import bp

    app.register_blueprint(bp)
    # Routing fails before a blueprint is chosen: these decide the shape by the path.
    app.register_error_handler(NotFound, routing_error)
    app.register_error_handler(MethodNotAllowed, routing_error)
