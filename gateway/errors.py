"""Exceptions as data, and the one path that turns any exception into an error response.

Every error the service emits is ``{"error": {"type", "message", "details"?}}`` with a stable
snake_case ``type``. Under ``/v1`` the same path writes OpenAI's variant of it,
``{"error": {"message", "type", "param", "code"}}`` with OpenAI's types
(``invalid_request_error``, ``rate_limit_error``, ``server_error``...) and codes
(``invalid_api_key``, ``model_not_found``...), so OpenAI's SDKs raise the right class.

The layers below the web raise their own exceptions (``gateway.llm.errors``,
``gateway.mcp.errors``); ``DOMAIN_ERRORS`` gives each its status here.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from flask import jsonify, request
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed, NotFound

from gateway.llm.errors import (
    ProviderError,
    ProviderNotConfigured,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from gateway.mcp.errors import ToolUnavailable

if TYPE_CHECKING:
    from flask import Flask, Response

log = logging.getLogger(__name__)

OPENAI_PREFIX = "/v1"
INTERNAL_MESSAGE = "The server could not complete the request."


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


class AuthenticationRequired(GatewayError):
    """No credentials, or unusable ones (every JWT failure included): 401 with a challenge."""

    code = 401
    error_type = "unauthorized"
    description = "Authentication is required."

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description, headers={"WWW-Authenticate": "Bearer"})


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


class DomainFailure(GatewayError):
    """A failure of a layer below the web (LLM, MCP), with the status ``DOMAIN_ERRORS`` gives it."""

    def __init__(self, exc: Exception, code: int, error_type: str) -> None:
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        super().__init__(str(exc) or None, headers=headers)
        self.code = code
        self.error_type = error_type


# The status and type each domain failure is answered with; the first match wins.
DOMAIN_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    # A provider's 429 stays a 429 with its Retry-After (RFC 9110 10.2.3): clients back off.
    (UpstreamRateLimited, 429, "rate_limit_exceeded"),
    (UpstreamError, 502, "upstream_error"),
    (UpstreamTimeout, 504, "upstream_timeout"),
    (ProviderNotConfigured, 422, "validation_error"),
    (ProviderError, 502, "upstream_error"),
    (ToolUnavailable, 503, "tool_unavailable"),
)

# Failures with a documented answer: a turn that raises one of these has failed cleanly.
EXPECTED_FAILURES: tuple[type[Exception], ...] = (
    HTTPException,
    ProviderError,
    ToolUnavailable,
    OperationalError,
    SQLAlchemyTimeoutError,
)

# Our error types whose OpenAI code has another name.
OPENAI_CODES = {
    "unauthorized": "invalid_api_key",
    "rate_limited": "rate_limit_exceeded",
    "invalid_request_error": "unsupported_parameter",
}


def as_http(exc: BaseException) -> HTTPException:
    """The HTTP error an exception is answered with; anything unexpected is a 500."""
    if isinstance(exc, HTTPException):
        return exc
    for kind, code, error_type in DOMAIN_ERRORS:
        if isinstance(exc, kind):
            return DomainFailure(exc, code, error_type)
    if isinstance(exc, OperationalError | SQLAlchemyTimeoutError):
        return ServiceUnavailable("The database is unavailable; retry shortly.")
    return InternalServerError(original_exception=exc)


def error_type_for(exc: HTTPException) -> str:
    """Stable snake_case type for any HTTPException, ours or werkzeug's."""
    if isinstance(exc, GatewayError):
        return exc.error_type
    name = exc.name or type(exc).__name__
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _message(exc: HTTPException) -> str:
    if (exc.code or 500) >= 500 and not isinstance(exc, GatewayError):
        # Never a traceback or an internal message: the log has the details.
        return INTERNAL_MESSAGE
    return exc.description or exc.name


def envelope(error_type: str, message: str, details: Any = None) -> dict[str, Any]:
    """The body of every error response outside ``/v1``."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def openai_type(status: int) -> str:
    """OpenAI's error ``type`` for a status."""
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_envelope(
    status: int, message: str, *, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """The body of every error response under ``/v1``."""
    return {
        "error": {"message": message, "type": openai_type(status), "param": param, "code": code}
    }


def event_error(exc: BaseException) -> dict[str, str]:
    """A failure after a stream has started, as the data of its ``error`` event."""
    if isinstance(exc, OperationalError | SQLAlchemyTimeoutError):
        # The same answer as a non-streamed request gets: 503, retry shortly.
        log.warning("streamed turn lost the database", exc_info=exc)
    elif not isinstance(exc, EXPECTED_FAILURES):
        log.error("streamed turn failed", exc_info=exc)
        return {"type": "internal_error", "message": INTERNAL_MESSAGE}
    http = as_http(exc)
    return {"type": error_type_for(http), "message": _message(http)}


def openai_event_error(error: dict[str, str]) -> dict[str, Any]:
    """An ``error`` event as the ``error`` of a final ``data:`` line of a /v1 stream."""
    code = OPENAI_CODES.get(error["type"], error["type"])
    kind = "rate_limit_error" if code == "rate_limit_exceeded" else "server_error"
    return {"message": error["message"], "type": kind, "param": None, "code": code}


def _on_openai_surface() -> bool:
    return request.path == OPENAI_PREFIX or request.path.startswith(OPENAI_PREFIX + "/")


def _openai_body(exc: HTTPException, status: int) -> dict[str, Any]:
    if isinstance(exc, NotFound) and not isinstance(exc, GatewayError):
        return openai_envelope(
            status, f"Invalid URL ({request.method} {request.path})", code="unknown_url"
        )
    if isinstance(exc, MethodNotAllowed):
        message = f"Invalid method for URL ({request.method} {request.path})"
        return openai_envelope(status, message, code="method_not_allowed")
    kind = error_type_for(exc)
    code = getattr(exc, "openai_code", None) or OPENAI_CODES.get(kind, kind)
    return openai_envelope(status, _message(exc), code=code, param=getattr(exc, "param", None))


def error_response(exc: BaseException) -> Response:
    """The one place an exception becomes an error response: status, body and headers."""
    http = as_http(exc)
    status = http.code or 500
    if _on_openai_surface():
        body = _openai_body(http, status)
    else:
        body = envelope(error_type_for(http), _message(http), getattr(http, "details", None))
    response = jsonify(body)
    response.status_code = status
    for name, value in getattr(http, "extra_headers", {}).items():
        response.headers[name] = value
    if isinstance(http, MethodNotAllowed) and http.valid_methods:
        response.headers["Allow"] = ", ".join(http.valid_methods)
    return response


def _sent_location(loc: tuple[Any, ...], body: Any, *, missing: bool) -> tuple[Any, ...]:
    """The part of a pydantic location that names something the client sent.

    A union adds the member it tried (``content`` → ``content.str``), which is no field of the
    request: once the location has entered the JSON body, it is cut where the body has nothing
    more, unless the field is missing. A location outside the body (a query parameter, a
    header) is kept whole.
    """
    value = body
    for index, part in enumerate(loc):
        if isinstance(part, int) and isinstance(value, list) and 0 <= part < len(value):
            value = value[part]
        elif isinstance(part, str) and isinstance(value, dict) and part in value:
            value = value[part]
        elif index == 0:
            return loc
        else:
            return loc[: index + 1] if missing else loc[:index]
    return loc


def _openai_param(loc: tuple[Any, ...]) -> str:
    """A location as OpenAI writes a param: ``messages[0].content``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# The body itself is of the wrong type: pydantic would name the model class.
NOT_AN_OBJECT = "The request body must be a JSON object."


def _validation_error(exc: PydanticValidationError) -> Response:
    """422 with every field's problem; under ``/v1`` OpenAI's 400 naming the first one."""
    problems = exc.errors(include_url=False, include_input=False)
    body = request.get_json(silent=True)
    for problem in problems:
        problem["loc"] = _sent_location(
            tuple(problem["loc"]), body, missing=problem["type"] == "missing"
        )
        if not problem["loc"] and not isinstance(body, dict):
            problem["msg"] = NOT_AN_OBJECT
    if _on_openai_surface():
        field = _openai_param(problems[0]["loc"])
        message = f"{field}: {problems[0]['msg']}" if field else problems[0]["msg"]
        response = jsonify(openai_envelope(400, message, code=None, param=field or None))
        response.status_code = 400
        return response
    details = [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in problems
    ]
    return error_response(ValidationFailed(details=details))


def _database_unavailable(exc: Exception) -> Response:
    log.warning("database unavailable: %s", type(exc).__name__)
    return error_response(exc)


def register_error_handlers(app: Flask) -> None:
    """HTTP errors, validation, domain failures and a lost database: all through one path."""
    app.register_error_handler(HTTPException, error_response)
    app.register_error_handler(PydanticValidationError, _validation_error)
    app.register_error_handler(ProviderError, error_response)
    app.register_error_handler(ToolUnavailable, error_response)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(SQLAlchemyTimeoutError, _database_unavailable)
