"""Errors under ``/v1`` in OpenAI's shape, so its SDKs raise the right class and read the code.

``{"error": {"message", "type", "param", "code"}}`` with OpenAI's types
(``invalid_request_error``, ``rate_limit_error``, ``server_error``...) and codes
(``invalid_api_key``, ``model_not_found``, ``rate_limit_exceeded``...), for every status,
the framework's 404 and 405 included.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from gateway.errors import GatewayError, _handle_http_exception, error_type_for

PREFIX = "/v1"

# Our error types whose OpenAI code has another name.
CODES = {
    "unauthorized": "invalid_api_key",
    "rate_limited": "rate_limit_exceeded",
    "invalid_request_error": "unsupported_parameter",
}


def _openai_type(status: int) -> str:
    if status == 401:
        return "invalid_request_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(
    status: int, message: str, *, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": _openai_type(status), "param": param, "code": code}
    }


def http_error(exc: HTTPException) -> Response:
    """Any HTTPException on this surface; 5xx messages are ours only, never an internal one."""
    status = exc.code or 500
    if isinstance(exc, NotFound) and not isinstance(exc, GatewayError):
        message, code = f"Invalid URL ({request.method} {request.path})", "unknown_url"
    elif isinstance(exc, MethodNotAllowed):
        message = f"Invalid method for URL ({request.method} {request.path})"
        code = "method_not_allowed"
    else:
        kind = error_type_for(exc)
        internal = status >= 500 and not isinstance(exc, GatewayError)
        message = "The server could not complete the request." if internal else exc.description
        code = getattr(exc, "openai_code", None) or CODES.get(kind, kind)
    response = jsonify(
        error_body(status, message or "", code=code, param=getattr(exc, "param", None))
    )
    response.status_code = status
    for name, value in getattr(exc, "extra_headers", {}).items():
        response.headers[name] = value
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def validation_error(exc: ValidationError) -> Response:
    first = exc.errors(include_url=False, include_input=False)[0]
    field = _param(first["loc"])
    response = jsonify(error_body(400, f"{field}: {first['msg']}", code=None, param=field))
    response.status_code = 400
    return response


def _param(loc: tuple[Any, ...]) -> str:
    """A pydantic location as OpenAI writes a param: ``messages[0].content``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def routing_error(exc: HTTPException) -> Response:
    """404/405 before any view ran: OpenAI's shape under /v1, the gateway's elsewhere."""
    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        return http_error(exc)
    return _handle_http_exception(exc)
