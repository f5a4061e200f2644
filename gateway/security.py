"""Browser-facing defences on every response: security headers, and CORS closed unless allowed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app, request

from gateway.services import get_services

if TYPE_CHECKING:
    from flask import Flask, Response

# The API serves JSON and SSE, never pages: nothing may be framed, sniffed or loaded from it.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
CORS_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID, X-Conversation-Id"
CORS_EXPOSED = "X-Request-ID, X-Conversation-Id, Retry-After"
# Tokens and keys must never sit in a browser or proxy cache.
NO_STORE_PREFIXES = ("/auth/",)


def init_app(app: Flask) -> None:
    app.before_request(_answer_preflight)
    app.after_request(_add_headers)


def _allowed_origin() -> str | None:
    origin = request.headers.get("Origin")
    allowed = get_services().settings.http.cors_origins
    return origin if origin and origin in allowed else None


def _answer_preflight() -> Response | None:
    """A CORS preflight from an allowed origin gets 204; any other OPTIONS goes on as usual."""
    if request.method != "OPTIONS" or not request.headers.get("Access-Control-Request-Method"):
        return None
    if _allowed_origin() is None:
        return None
    response = current_app.response_class(status=204)
    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def _add_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    settings = get_services().settings.http
    if settings.hsts_seconds:
        response.headers["Strict-Transport-Security"] = (
            f"max-age={settings.hsts_seconds}; includeSubDomains"
        )
    if request.path.startswith(NO_STORE_PREFIXES):
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    origin = _allowed_origin()
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
    if settings.cors_origins:
        response.vary.add("Origin")
    return response
