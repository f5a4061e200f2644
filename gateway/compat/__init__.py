"""The OpenAI-compatible surface: ``/v1/chat/completions`` and ``/v1/models``.

Its errors are OpenAI's variant of the envelope, written by ``gateway.errors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    from gateway.compat.views import bp

    app.register_blueprint(bp)
