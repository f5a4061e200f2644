"""``/v1``: the OpenAI Chat Completions surface, so OpenAI clients work unchanged."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from gateway import limits
from gateway.auth.guard import current_user, login_required
from gateway.chat.schemas import ChatBody
from gateway.chat.service import begin_turn, complete_chat, turn_events, unstored_turn
from gateway.chat.sse import sse_response
from gateway.compat.completions import (
    CompletionRequest,
    completion_chunks,
    completion_json,
    model_list,
    openai_error_body,
    resolve_model,
    split_messages,
)
from gateway.errors import NotFoundError, error_type_for

bp = Blueprint("openai_compat", __name__, url_prefix="/v1")
# Keeps the exchange as a conversation: "new", or the id of one of the caller's conversations.
CONVERSATION_HEADER = "X-Conversation-Id"


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
    prompt, system, history, prompts = split_messages(body)
    provider, model = resolve_model(body.model)
    user = current_user()
    keep = request.headers.get(CONVERSATION_HEADER)
    slot = limits.admit_turn(user.id)
    try:
        if keep:
            chat = ChatBody(
                message=prompt,
                conversation_id=_conversation_id(keep),
                provider=provider,
                model=model,
            )
            turn = begin_turn(user, chat, history=(history, prompts), system=system)
        else:
            turn = unstored_turn(
                user,
                prompt,
                history=(history, prompts),
                provider=provider,
                model=model,
                system=system,
            )
    except Exception:
        slot.release()
        raise
    headers = {CONVERSATION_HEADER: str(turn.conversation_id)} if turn.stored else {}
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        response = sse_response(
            slot.around(lambda cancelled: turn_events(turn, stream=True, cancelled=cancelled)),
            lambda events: completion_chunks(events, body.model, include_usage=include_usage),
        )
        response.headers.update(headers)
        return response
    try:
        return completion_json(complete_chat(turn), body.model), 200, headers
    finally:
        slot.release()


def _conversation_id(value: str) -> uuid.UUID | None:
    if value == "new":
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFoundError("Conversation not found.") from None
