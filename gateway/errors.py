"""Exceptions as data, and the one JSON error envelope every response uses."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flask import current_app, jsonify
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

if TYPE_CHECKING:
    from flask import Flask, Response


class GatewayError(HTTPException):
    """Our own failures: a status ``code``, a ``description`` and a stable ``error_type``."""

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


class InvalidParameter(GatewayError):
    """A request field the gateway cannot honour: 400, naming the field (OpenAI's ``param``)."""

    code = 400
    error_type = "invalid_request_error"
    description = "A request parameter is not supported."

    def __init__(self, description: str, *, param: str, openai_code: str | None = None) -> None:
        super().__init__(description)
        self.param = param
        # OpenAI's ``code`` under /v1 when it is not "unsupported_parameter" (e.g. "invalid_value").
        self.openai_code = openai_code


class ModelNotFound(GatewayError):
    """A model id no configured provider lists (OpenAI's ``model_not_found``)."""

    code = 404
    error_type = "model_not_found"
    description = "The model does not exist or you do not have access to it."


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


class UpstreamRateLimited(UpstreamError):
    """The provider answered 429: passed on as a 429 with its ``Retry-After``, so clients wait."""

    code = 429
    error_type = "rate_limit_exceeded"
    description = "The language model provider is rate limiting requests."


class UpstreamTimeout(GatewayError):
    code = 504
    error_type = "upstream_timeout"
    description = "The language model provider did not answer in time."


class ToolUnavailable(Exception):
    """An MCP server or tool is unusable now; the model gets an error tool result, not HTTP."""


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


def register_error_handlers(app: Flask) -> None:
    """One handler for HTTP errors, one for validation, one for a lost database."""
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(PydanticValidationError, _handle_validation_error)
    app.register_error_handler(OperationalError, _handle_database_unavailable)
    app.register_error_handler(SQLAlchemyTimeoutError, _handle_database_unavailable)


def _handle_http_exception(exc: HTTPException) -> Response:
    code = exc.code or 500
    if code >= 500 and not isinstance(exc, GatewayError):
        # Never a traceback or an internal message: the log has the details.
        message = "The server could not complete the request."
    else:
        message = exc.description or exc.name
    details = getattr(exc, "details", None)
    response = jsonify(envelope(error_type_for(exc), message, details))
    response.status_code = code
    for name, value in getattr(exc, "extra_headers", {}).items():
        response.headers[name] = value
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _handle_validation_error(exc: PydanticValidationError) -> Response:
    details = [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return _handle_http_exception(ValidationFailed(details=details))


def _handle_database_unavailable(exc: Exception) -> Response:
    current_app.logger.warning("database unavailable: %s", type(exc).__name__)
    return _handle_http_exception(ServiceUnavailable("The database is unavailable; retry shortly."))
