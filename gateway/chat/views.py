"""The chat API: post a message (JSON or SSE), and manage conversations."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from gateway.auth.guard import current_user, login_required
from gateway.chat import export, store
from gateway.chat.admission import admit
from gateway.chat.schemas import (
    ChatBody,
    ChatHeaders,
    ChatResult,
    ChatStreamEvent,
    Conversation,
    ConversationMessages,
    ConversationPage,
    ConversationPatch,
    ExportQuery,
    PageQuery,
    ProviderModels,
)
from gateway.chat.service import begin_turn
from gateway.chat.sse import format_event, sse_response
from gateway.openapi import NO_CONTENT, Reply, operation
from gateway.services import get_services

bp = Blueprint("chat", __name__)


def _wants_stream(body: ChatBody) -> bool:
    return body.stream or request.accept_mimetypes.best == "text/event-stream"


@bp.post("/chat")
@operation(
    "Post a message: a JSON answer, or Server-Sent Events with stream=true",
    body=ChatBody,
    headers=ChatHeaders,
    responses={200: Reply(ChatResult, stream=ChatStreamEvent)},
    errors=(404, 409, 429, 502, 503, 504),
)
@login_required
def post_chat() -> ResponseReturnValue:
    raw: dict[str, Any] = request.get_json()
    body = ChatBody.model_validate(raw)
    user = current_user()
    key = request.headers.get("Idempotency-Key")
    outcome = admit(user, lambda: begin_turn(user, body), key=key, request_body=raw)
    if isinstance(outcome, dict):
        return _replay(outcome) if _wants_stream(body) else outcome
    return sse_response(outcome.events) if _wants_stream(body) else outcome.answer()


def _replay(stored: dict[str, Any]) -> ResponseReturnValue:
    """A finished turn replayed as a stream: its text and its final event."""
    text = format_event("delta", {"text": stored["message"]["content"]})
    return (
        text + format_event("done", stored),
        200,
        {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
    )


@bp.get("/models")
@operation("Configured providers and models", responses={200: ProviderModels})
@login_required
def list_models() -> ResponseReturnValue:
    return {"models": get_services().llm.list_models()}


@bp.get("/conversations")
@operation(
    "Conversations, newest first",
    query=PageQuery,
    responses={200: ConversationPage},
    errors=(400,),
)
@login_required
def list_conversations() -> ResponseReturnValue:
    return store.list_conversations(
        current_user(),
        limit=store.page_size(request.args.get("limit")),
        cursor=request.args.get("cursor"),
    )


@bp.get("/conversations/<uuid:conversation_id>")
@operation(
    "A conversation with a page of its messages",
    query=PageQuery,
    responses={200: ConversationMessages},
    errors=(400, 404),
)
@login_required
def get_conversation(conversation_id: uuid.UUID) -> ResponseReturnValue:
    return store.conversation_with_messages(
        current_user(),
        conversation_id,
        limit=store.page_size(request.args.get("limit")),
        cursor=request.args.get("cursor"),
    )


@bp.patch("/conversations/<uuid:conversation_id>")
@operation("Rename", body=ConversationPatch, responses={200: Conversation}, errors=(404,))
@login_required
def rename_conversation(conversation_id: uuid.UUID) -> ResponseReturnValue:
    body = ConversationPatch.model_validate(request.get_json())
    return store.rename_conversation(current_user(), conversation_id, body.title)


@bp.delete("/conversations/<uuid:conversation_id>")
@operation(
    "Delete (409 conversation_busy while one of its turns runs)",
    responses={204: NO_CONTENT},
    errors=(404, 409),
)
@login_required
def delete_conversation(conversation_id: uuid.UUID) -> ResponseReturnValue:
    settings = get_services().settings.limits
    store.delete_conversation(
        current_user(), conversation_id, lease_seconds=settings.chat_lease_seconds
    )
    return "", 204


@bp.get("/conversations/<uuid:conversation_id>/export")
@operation(
    "Download as JSON or Markdown",
    query=ExportQuery,
    responses={
        200: Reply(ConversationMessages, media={"text/markdown": {"schema": {"type": "string"}}})
    },
    errors=(400, 404),
)
@login_required
def export_conversation(conversation_id: uuid.UUID) -> ResponseReturnValue:
    return export.export(current_user(), conversation_id, request.args.get("format", "json"))
