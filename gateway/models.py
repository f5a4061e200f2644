"""Typed models: users, conversations, messages, tool calls, API keys, tokens and limits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import DateTime

from gateway.extensions import db
from gateway.storable import sanitize_on_flush

# JSON columns are JSONB: indexable and compact.
JSONType = JSONB


def utcnow() -> datetime:
    return datetime.now(UTC)


def _timestamp(**kwargs: Any) -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, **kwargs)


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = _timestamp()

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Conversation(db.Model):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200), default="New conversation")
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp(onupdate=utcnow)

    messages: Mapped[list[ConversationMessage]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ConversationMessage.created_at",
    )


class ConversationMessage(db.Model):
    """One turn's message; assistant messages carry the routing decision and usage."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_created", "conversation_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    # Content blocks in a neutral shape: [{"type": "text", "text": ...}, {"type": "tool_use", ...}]
    content: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # complete | pending | failed | incomplete
    status: Mapped[str] = mapped_column(String(16), default="complete")
    provider: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(128))
    input_tokens: Mapped[int | None]
    output_tokens: Mapped[int | None]
    latency_ms: Mapped[int | None]
    rounds: Mapped[int | None]
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    cost_usd: Mapped[float | None]
    fallback_from: Mapped[str | None] = mapped_column(String(32))
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _timestamp()

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    tool_calls: Mapped[list[ToolCallRecord]] = relationship(
        back_populates="message",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ToolCallRecord.created_at",
    )


class ToolCallRecord(db.Model):
    __tablename__ = "tool_calls"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    server: Mapped[str] = mapped_column(String(128))
    tool: Mapped[str] = mapped_column(String(128))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    is_error: Mapped[bool] = mapped_column(default=False)
    duration_ms: Mapped[int | None]
    created_at: Mapped[datetime] = _timestamp()

    message: Mapped[ConversationMessage] = relationship(back_populates="tool_calls")


class RoutingExample(db.Model):
    """A prompt whose turn called a tool successfully: routing mixes the latest ones into the
    tool's vector. Deleted with the tool call, hence with its conversation or user."""

    __tablename__ = "routing_examples"

    id: Mapped[int] = mapped_column(primary_key=True)
    tool_call_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tool_calls.id", ondelete="CASCADE"), index=True
    )
    server: Mapped[str] = mapped_column(String(128))
    tool: Mapped[str] = mapped_column(String(128))
    prompt: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _timestamp()

    __table_args__ = (Index("ix_routing_examples_server_tool_id", "server", "tool", "id"),)


class RevokedToken(db.Model):
    """A JWT revoked before its expiry; rows past ``expires_at`` are purged."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_type: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime] = _timestamp()


class ApiKey(db.Model):
    """A personal key for programs; only its SHA-256 is stored, the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _timestamp()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class LoginFailure(db.Model):
    """Failed logins per account or client address in the current window, shared by all workers."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ToolPin(db.Model):
    """The approved definition of one MCP tool (rug-pull defense), shared by every worker."""

    __tablename__ = "tool_pins"

    server: Mapped[str] = mapped_column(String(128), primary_key=True)
    tool: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    # Set when the server now describes the tool differently; the tool is withheld meanwhile.
    pending_fingerprint: Mapped[str | None] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = _timestamp()
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RuntimeState(db.Model):
    """Small shared counters, e.g. the MCP config generation that tells workers to reload."""

    __tablename__ = "runtime_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class IdempotencyRecord(db.Model):
    """One ``Idempotency-Key`` of one user: the request it named and, once done, its answer."""

    __tablename__ = "idempotency_records"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # in_progress | done
    state: Mapped[str] = mapped_column(String(16), default="in_progress")
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = _timestamp(index=True)


class RateWindow(db.Model):
    """Requests counted against one limit (e.g. one user's chats) in its current fixed window."""

    __tablename__ = "rate_windows"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TurnLease(db.Model):
    """A chat turn in progress; counts against its user's concurrency cap until released.

    A worker killed mid-turn cannot release its lease: ``expires_at`` frees the slot anyway.
    """

    __tablename__ = "turn_leases"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _timestamp()


class PendingToolRound(db.Model):
    """A model round that called both gateway (MCP) tools and a client's own tools.

    The client gets only its calls back and sends only their results; the gateway's calls
    and results wait here, under each client call id, to be put back into the history of
    the client's next request (docs/openai-compatibility.md, "Client tools").
    """

    __tablename__ = "pending_tool_rounds"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    call_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # {"assistant": [tool_use blocks of every call], "results": [stored tool rows' content]}
    round: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = _timestamp(index=True)


class EndpointCall(db.Model):
    """One call through the gateway's MCP endpoint (``/mcp``): who, what, how long, outcome.

    Sizes only: the arguments and the result are never stored (they may hold secrets).
    """

    __tablename__ = "mcp_endpoint_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(32))
    server: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(512))
    outcome: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[int]
    request_bytes: Mapped[int]
    response_bytes: Mapped[int]
    created_at: Mapped[datetime] = _timestamp()

    __table_args__ = (
        Index("ix_mcp_endpoint_calls_user_id_id", "user_id", "id"),
        Index("ix_mcp_endpoint_calls_server_id", "server", "id"),
    )


# Every text and JSON column is made storable (NUL, lone surrogates, length) at flush.
sanitize_on_flush(db.Model)
