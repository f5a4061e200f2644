"""Exceptions as data, and the one JSON error envelope every response uses."""

from __future__ import annotations

import re
from typing import Any

from werkzeug.exceptions import HTTPException


class GatewayError(HTTPException):
    """Base for our own failures: a status ``code``, a ``description`` and a stable ``error_type``."""

    code = 500
    error_type = "internal_error"
    description = "The server could not complete the request."

    def __init__(
        self,
        description: str | None = None,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.details = details
        self.extra_headers = headers or {}


class ValidationFailed(GatewayError):
    code = 422
    error_type = "validation_error"
    description = "The request body is not valid."


class NotFoundError(GatewayError):
    code = 404
    error_type = "not_found"
    description = "Not found."


class ServiceUnavailable(GatewayError):
    code = 503
    error_type = "service_unavailable"
    description = "A dependency is unavailable; retry shortly."

    def __init__(self, description: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(description, headers={"Retry-After": str(retry_after)})


class UpstreamError(GatewayError):
    """The LLM provider failed; the vendor's text goes to the log, never to the client."""

    code = 502
    error_type = "upstream_error"
    description = "The language model provider returned an error."


class UpstreamTimeout(GatewayError):
    code = 504
    error_type = "upstream_timeout"
    description = "The language model provider did not answer in time."


class ToolUnavailable(Exception):
    """An MCP server or tool cannot be used right now; becomes an error tool result, not an HTTP error."""


def error_type_for(exc: HTTPException) -> str:
    """Stable snake_case type for any HTTPException, ours or werkzeug's."""
    if isinstance(exc, GatewayError):
        return exc.error_type
    name = exc.name or type(exc).__name__
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def envelope(error_type: str, message: str, details: Any = None) -> dict[str, Any]:
    """The body of every error response."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}
