"""``/v1``: the OpenAI Chat Completions surface, so OpenAI clients work unchanged."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from gateway.auth.guard import current_user, login_required
from gateway.chat.admission import Admitted, admit
from gateway.chat.sse import sse_response
from gateway.compat.completions import (
    CONVERSATION_HEADER,
    CompletionRequest,
    completion_chunks,
    completion_json,
    model_list,
    openai_error_body,
    start_completion,
)
from gateway.errors import error_type_for

bp = Blueprint("openai_compat", __name__, url_prefix="/v1")


@bp.errorhandler(HTTPException)
def _openai_error(exc: HTTPException) -> Response:
    """Errors in OpenAI's shape on this surface, so its SDK raises the right exception."""
    code = exc.code or 500
    message = exc.description if code < 500 or hasattr(exc, "error_type") else "Internal error."
    body = {"error": openai_error_body({"type": error_type_for(exc), "message": message})}
    response = jsonify(body)
    response.status_code = code
    for name, value in getattr(exc, "extra_headers", {}).items():
        response.headers[name] = value
    return response


@bp.errorhandler(ValidationError)
def _openai_validation_error(exc: ValidationError) -> Response:
    first = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(p) for p in first["loc"])
    response = jsonify(
        {
            "error": {
                "message": f"{field}: {first['msg']}",
                "type": "invalid_request_error",
                "param": field,
                "code": None,
            }
        }
    )
    response.status_code = 400
    return response


@bp.get("/models")
@login_required
def list_models() -> ResponseReturnValue:
    return model_list()


@bp.post("/chat/completions")
@login_required
def chat_completions() -> ResponseReturnValue:
    body = CompletionRequest.model_validate(request.get_json())
    admitted = admit(current_user(), lambda: start_completion(body, request.headers))
    assert isinstance(admitted, Admitted)  # no idempotency key on this surface
    headers = (
        {CONVERSATION_HEADER: str(admitted.turn.conversation_id)} if admitted.turn.stored else {}
    )
    if not body.stream:
        return completion_json(admitted.answer(), body.model), 200, headers
    usage = bool((body.stream_options or {}).get("include_usage"))
    response = sse_response(
        admitted.events, lambda events: completion_chunks(events, body.model, include_usage=usage)
    )
    response.headers.update(headers)
    return response
