"""Conversations and messages in the database, always scoped to their owner."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, tuple_

from gateway.chat.busy import lock_idle
from gateway.chat.rows import update_by_id
from gateway.database import unit_of_work
from gateway.errors import GatewayError, NotFoundError
from gateway.extensions import db
from gateway.models import Conversation, ConversationMessage, ToolCallRecord, User, utcnow

MAX_PAGE = 100
DEFAULT_PAGE = 20


class BadCursor(GatewayError):
    code = 400
    error_type = "bad_cursor"
    description = "The pagination cursor is not valid."


def page_size(raw: str | None) -> int:
    """The requested page size, capped; a bad value is a 400."""
    if raw is None:
        return DEFAULT_PAGE
    try:
        size = int(raw)
    except ValueError:
        raise BadCursor("limit must be a whole number.") from None
    if size < 1:
        raise BadCursor("limit must be at least 1.")
    return min(size, MAX_PAGE)


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, _, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(at), uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError):
        raise BadCursor() from None


def title_from(message: str) -> str:
    first_line = message.strip().splitlines()[0] if message.strip() else "New conversation"
    return first_line if len(first_line) <= 80 else first_line[:79] + "…"


def get_conversation(user_id: uuid.UUID, conversation_id: uuid.UUID) -> Conversation:
    """The caller's conversation; another user's answers 404 like a missing one."""
    conversation = db.session.scalar(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.user_id == user_id
        )
    )
    if conversation is None:
        raise NotFoundError("Conversation not found.")
    return conversation


def _keyset_page(
    query: Select[Any], at: Any, row_id: Any, *, limit: int, cursor: str | None, newest_first: bool
) -> tuple[list[Any], str | None]:
    """One page ordered by (``at``, ``row_id``), and the cursor of the next one if any."""
    key = tuple_(at, row_id)
    if cursor:
        position = decode_cursor(cursor)
        query = query.where(key < position if newest_first else key > position)
    order = (at.desc(), row_id.desc()) if newest_first else (at, row_id)
    rows = list(db.session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(getattr(last, at.key), last.id)


def list_conversations(user: User, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """Newest activity first, keyset-paginated."""
    rows, next_cursor = _keyset_page(
        select(Conversation).where(Conversation.user_id == user.id),
        Conversation.updated_at,
        Conversation.id,
        limit=limit,
        cursor=cursor,
        newest_first=True,
    )
    return {"conversations": [conversation_json(c) for c in rows], "next_cursor": next_cursor}


def conversation_with_messages(
    user: User, conversation_id: uuid.UUID, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """The conversation and a page of its messages, oldest first."""
    conversation = get_conversation(user.id, conversation_id)
    rows, next_cursor = _keyset_page(
        select(ConversationMessage).where(ConversationMessage.conversation_id == conversation.id),
        ConversationMessage.created_at,
        ConversationMessage.id,
        limit=limit,
        cursor=cursor,
        newest_first=False,
    )
    return {
        **conversation_json(conversation),
        "messages": [message_json(m) for m in rows],
        "next_cursor": next_cursor,
    }


def rename_conversation(user: User, conversation_id: uuid.UUID, title: str) -> dict[str, Any]:
    conversation = get_conversation(user.id, conversation_id)
    conversation.title = title
    db.session.commit()
    return conversation_json(conversation)


def delete_conversation(user: User, conversation_id: uuid.UUID, *, lease_seconds: int) -> None:
    """Delete it with its messages; 409 ``conversation_busy`` while one of its turns runs."""
    with unit_of_work():
        conversation = get_conversation(user.id, conversation_id)
        lock_idle(conversation.id, lease_seconds=lease_seconds)
        db.session.delete(conversation)


def all_messages(conversation: Conversation) -> list[ConversationMessage]:
    query = select(ConversationMessage).where(
        ConversationMessage.conversation_id == conversation.id
    )
    return list(
        db.session.scalars(query.order_by(ConversationMessage.created_at, ConversationMessage.id))
    )


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }


def tool_call_json(call: ToolCallRecord) -> dict[str, Any]:
    return {
        "id": str(call.id),
        "server": call.server,
        "tool": call.tool,
        "arguments": call.arguments,
        "is_error": call.is_error,
        "result": call.result,
        "duration_ms": call.duration_ms,
    }


def message_json(message: ConversationMessage) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(message.id),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created_at": message.created_at.isoformat(),
    }
    if message.role == "assistant":
        data.update(
            provider=message.provider,
            model=message.model,
            usage={"input_tokens": message.input_tokens, "output_tokens": message.output_tokens},
            latency_ms=message.latency_ms,
            stop_reason=message.stop_reason,
            routing=message.routing,
            tool_calls=[tool_call_json(c) for c in message.tool_calls],
        )
    if message.error:
        data["error"] = message.error
    return data


def touch(conversation_id: uuid.UUID) -> None:
    """Move the conversation to the top of the list: one UPDATE, the row is not read first."""
    update_by_id(Conversation, conversation_id, {"updated_at": utcnow()})
