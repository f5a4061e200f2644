"""The chat API: turns, conversations, streaming, idempotency."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    from gateway.chat.views import bp

    app.register_blueprint(bp)
