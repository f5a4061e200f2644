"""``/v1``: the OpenAI Chat Completions surface, so OpenAI clients work unchanged."""

from __future__ import annotations

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from gateway.auth.guard import current_user, login_required
from gateway.chat.admission import Admitted, admit
from gateway.chat.sse import sse_response
from gateway.compat.completions import (
    CONVERSATION_HEADER,
    CompletionRequest,
    completion_chunks,
    completion_json,
    model_json,
    model_list,
    start_completion,
)
from gateway.compat.schemas import (
    ChatCompletion,
    CompletionChunkEvent,
    OpenAIModel,
    OpenAIModelList,
)
from gateway.compat.streaming import HeldStream
from gateway.openapi import Reply, operation
from gateway.services import get_services

bp = Blueprint("openai_compat", __name__, url_prefix="/v1")


@bp.get("/models")
@operation("OpenAI-compatible model list", responses={200: OpenAIModelList})
@login_required
def list_models() -> ResponseReturnValue:
    return model_list()


@bp.get("/models/<path:model_id>")
@operation(
    "One model of the OpenAI-compatible list (404 model_not_found)",
    responses={200: OpenAIModel},
    errors=(404,),
)
@login_required
def retrieve_model(model_id: str) -> ResponseReturnValue:
    return model_json(model_id)


@bp.post("/chat/completions")
@operation(
    "OpenAI-compatible chat completion: MCP tools run server-side, client tools come back "
    "as tool_calls (docs/openai-compatibility.md)",
    body=CompletionRequest,
    responses={200: Reply(ChatCompletion, stream=CompletionChunkEvent)},
    errors=(400, 404, 429, 502, 503, 504),
)
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
    usage = bool(body.stream_options and body.stream_options.include_usage)
    source = HeldStream(admitted.events)
    response = sse_response(
        source, lambda events: completion_chunks(events, body.model, include_usage=usage)
    )
    source.raise_early_failure(get_services().settings.http.sse_heartbeat_seconds)
    response.headers.update(headers)
    return response
