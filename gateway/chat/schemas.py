"""The chat API's boundary: request bodies (typed, capped, no unknown fields), queries, answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    StringConstraints,
)

from gateway.chat.idempotency import MAX_KEY_LENGTH

# Absolute ceiling; MAX_MESSAGE_CHARS (default 32,000) is checked by the service.
MESSAGE_CEILING = 200_000
ServerName = Annotated[StrictStr, StringConstraints(min_length=1, max_length=128)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _some_text(value: str) -> str:
    """Anthropic refuses a whitespace-only text block, and ``/v1`` such a message (400)."""
    if not value.strip():
        raise ValueError("needs some text, not only whitespace")
    return value


class ChatBody(Body):
    message: Annotated[
        StrictStr,
        StringConstraints(min_length=1, max_length=MESSAGE_CEILING),
        AfterValidator(_some_text),
        # The same rule for the document (JSON Schema's pattern is an unanchored search).
        Field(json_schema_extra={"pattern": r"\S"}),
    ]
    conversation_id: uuid.UUID | None = None
    provider: Annotated[StrictStr, StringConstraints(max_length=32)] | None = None
    model: Annotated[StrictStr, StringConstraints(max_length=128)] | None = None
    servers: Annotated[list[ServerName], Field(max_length=20)] | None = None
    stream: StrictBool = False


class ConversationPatch(Body):
    title: Annotated[
        StrictStr,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
        Field(json_schema_extra={"pattern": r"\S"}),  # stripped, then at least 1 character
    ]


class ChatHeaders(BaseModel):
    idempotency_key: str | None = Field(
        default=None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        # Printable ASCII, no space at either end (HTTP strips those).
        pattern=r"^[!-~]([ -~]*[!-~])?$",
        description="Retrying with the same key and body replays the first answer (24 h).",
    )


class PageQuery(BaseModel):
    limit: int | None = Field(default=None, ge=1, description="Page size (capped by the server).")
    cursor: str | None = Field(
        default=None, description="A `next_cursor` this server returned; any other is a 400."
    )


class ExportQuery(BaseModel):
    format: Literal["json", "markdown"] = "json"


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class AnswerMessage(BaseModel):
    id: uuid.UUID | None
    role: Literal["assistant"]
    content: str
    status: Literal["complete", "incomplete"]
    created_at: datetime | None = None


class ChatResult(BaseModel):
    """The answer of ``POST /chat``; also the data of its stream's ``done`` event."""

    conversation_id: uuid.UUID | None
    user_message_id: uuid.UUID | None = None
    message: AnswerMessage
    tool_calls: list[dict[str, Any]]
    routing: dict[str, Any] | None
    usage: Usage
    provider: str
    model: str | None = None
    stop_reason: str | None = None


class ChatStreamEvent(BaseModel):
    """One Server-Sent Event of ``POST /chat`` streamed: ``done`` carries a ``ChatResult``."""

    event: Literal["routing", "tool_call", "tool_result", "delta", "done", "error"]
    data: str = Field(
        description="A JSON object: `delta` has `text`; `error` has `type` and `message`.",
        json_schema_extra={"contentMediaType": "application/json"},
    )


class ProviderModels(BaseModel):
    models: list[dict[str, Any]] = Field(
        description="Configured providers' models: provider, model, default, price_per_mtok."
    )


class Conversation(BaseModel):
    id: uuid.UUID
    title: str
    created_at: datetime
    updated_at: datetime


class ConversationPage(BaseModel):
    conversations: list[Conversation]
    next_cursor: str | None


class StoredMessage(BaseModel):
    id: uuid.UUID
    role: Literal["user", "assistant", "tool"]
    content: list[dict[str, Any]]
    status: Literal["pending", "complete", "failed", "incomplete"]
    created_at: datetime


class ConversationMessages(Conversation):
    messages: list[StoredMessage]
    next_cursor: str | None = None
