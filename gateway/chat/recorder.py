"""Persisting a turn as it happens: each tool call and the answer committed when they complete."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from gateway.catalog.search import SEARCH_SERVER
from gateway.chat.history import assistant_blocks, result_json, text_blocks, tool_result_blocks
from gateway.chat.rows import insert_row, update_by_id
from gateway.chat.store import touch
from gateway.database import unit_of_work
from gateway.extensions import db
from gateway.llm import ChatEvent, ChatResponse, Message, ToolCall
from gateway.models import Conversation, ConversationMessage, RoutingExample, ToolCallRecord, utcnow

log = logging.getLogger(__name__)

# Only the start of a long prompt is kept as a routing example (the encoder reads 48 tokens).
MAX_EXAMPLE_CHARS = 1000


@dataclass(frozen=True)
class Turn:
    """One chat turn: plain values, no ORM objects; ids are None for a turn not stored."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID | None
    user_message_id: uuid.UUID | None
    prompt: str
    history: tuple[Message, ...]
    context_prompts: tuple[str, ...]
    provider: str | None
    model: str | None
    servers: tuple[str, ...]
    system: str | None = None
    # ChatRequest fields set by the caller (the /v1 surface: the client's messages as sent,
    # its options and tools); they replace what the turn would build from ``history``.
    request_fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stored(self) -> bool:
        return self.conversation_id is not None


def answer_json(
    turn: Turn,
    response: ChatResponse,
    *,
    text: str,
    message_id: uuid.UUID | None,
    status: str,
    tool_calls: list[dict[str, Any]],
    routing: dict[str, Any] | None,
) -> dict[str, Any]:
    """The chat response body (and the SSE ``done`` event)."""
    return {
        "conversation_id": str(turn.conversation_id) if turn.conversation_id else None,
        "user_message_id": str(turn.user_message_id) if turn.user_message_id else None,
        "message": {
            "id": str(message_id) if message_id else None,
            "role": "assistant",
            "content": text,
            "status": status,
            "created_at": utcnow().isoformat(),
        },
        "tool_calls": tool_calls,
        "routing": routing,
        **{k: v for k, v in response.as_dict().items() if k != "text"},
    }


def summary_json(event: ChatEvent) -> dict[str, Any]:
    """A finished tool call as the API reports it."""
    call, result = event.tool_call, event.result
    assert call is not None and result is not None
    return {
        "id": call.id,
        "server": call.server,
        "tool": call.tool or call.name,
        "arguments": dict(call.arguments),
        "is_error": result.is_error,
        "summary": event.summary,
        "duration_ms": round(event.duration_ms or 0.0),
    }


def final_status(response: ChatResponse) -> str:
    return "incomplete" if response.stop_reason == "cancelled" else "complete"


@dataclass
class UnstoredRecorder:
    """For turns nobody asked to keep (the OpenAI-compatible endpoint without a conversation)."""

    turn: Turn
    routing: dict[str, Any] | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, event: ChatEvent) -> None:
        if event.type == "tool_call_finished":
            self.tool_calls.append(summary_json(event))

    def finish(self, response: ChatResponse) -> dict[str, Any]:
        return answer_json(
            self.turn,
            response,
            text=response.text,
            message_id=None,
            status=final_status(response),
            tool_calls=self.tool_calls,
            routing=self.routing,
        )

    def fail(self, reason: str) -> None:
        pass


@dataclass
class TurnRecorder:
    """Stores the turn's messages in order; never holds a transaction across a network wait."""

    turn: Turn
    routing: dict[str, Any] | None
    # Keep the prompt of every successful tool call as a routing example (learning from use).
    learn: bool = False
    stored: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    _round_text: list[str] = field(default_factory=list)
    _round_calls: list[ToolCall] = field(default_factory=list)
    _round_message_id: uuid.UUID | None = None
    _round_finished: int = 0

    def handle(self, event: ChatEvent) -> None:
        if event.type == "text_delta":
            self._round_text.append(event.text)
        elif event.type == "tool_call_started" and event.tool_call is not None:
            self._round_calls.append(event.tool_call)
        elif event.type == "tool_call_finished":
            self._tool_finished(event)

    def _tool_finished(self, event: ChatEvent) -> None:
        call, result = event.tool_call, event.result
        assert call is not None and result is not None
        # Every call of a round has started before the first one finishes.
        new_round = self._round_message_id is None
        round_message_id = self._round_message_id = self._round_message_id or uuid.uuid4()
        tool_call_id = uuid.uuid4()
        learn = self.learn and not result.is_error and call.server not in ("", None, SEARCH_SERVER)

        def write() -> None:
            if new_round:
                self._add(
                    "assistant",
                    assistant_blocks("".join(self._round_text), self._round_calls),
                    message_id=round_message_id,
                )
            insert_row(
                ToolCallRecord,
                {
                    "id": tool_call_id,
                    "message_id": round_message_id,
                    "user_id": self.turn.user_id,
                    "server": call.server or "",
                    "tool": call.tool or call.name,
                    "arguments": dict(call.arguments),
                    "result": result_json(result),
                    "is_error": result.is_error,
                    "duration_ms": round(event.duration_ms or 0.0),
                },
            )
            if learn:  # after the tool call row it refers to
                insert_row(
                    RoutingExample,
                    {
                        "tool_call_id": tool_call_id,
                        "server": call.server,
                        "tool": call.tool or call.name,
                        "prompt": self.turn.prompt[:MAX_EXAMPLE_CHARS],
                    },
                )
            self._add("tool", tool_result_blocks(call, result))

        self._store(write)
        self.tool_calls.append(summary_json(event))
        self._round_finished += 1
        if self._round_finished == len(self._round_calls):
            self._round_text, self._round_calls = [], []
            self._round_message_id, self._round_finished = None, 0

    def _add(
        self,
        role: str,
        content: list[dict[str, Any]],
        *,
        message_id: uuid.UUID | None = None,
        **fields: Any,
    ) -> uuid.UUID:
        message_id = message_id or uuid.uuid4()
        insert_row(
            ConversationMessage,
            {
                "id": message_id,
                "conversation_id": self.turn.conversation_id,
                "user_id": self.turn.user_id,
                "role": role,
                "content": content,
                "created_at": utcnow(),
                **fields,
            },
        )
        self.stored += 1
        return message_id

    def finish(self, response: ChatResponse) -> dict[str, Any]:
        """Store what the turn added beyond the tool rounds, and the answer with its accounting."""
        remaining = list(response.messages[self.stored :])
        final_text = response.text
        if remaining and remaining[-1].role == "assistant" and not remaining[-1].tool_calls:
            final_text = remaining.pop().content
        status = final_status(response)
        message_id = uuid.uuid4()

        def write() -> None:
            for message in remaining:
                if message.role == "assistant":
                    self._add("assistant", assistant_blocks(message.content, message.tool_calls))
                elif message.tool_result is not None:
                    call = ToolCall(id=message.tool_call_id or "", name="")
                    self._add("tool", tool_result_blocks(call, message.tool_result))
            self._add(
                "assistant",
                text_blocks(final_text),
                message_id=message_id,
                status=status,
                provider=response.provider,
                model=response.model,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                latency_ms=round(response.latency_ms),
                rounds=response.rounds,
                stop_reason=response.stop_reason,
                cost_usd=response.cost_usd,
                fallback_from=response.fallback_from,
                routing=self.routing,
            )
            self._set_user_message("complete")

        self._store(write)
        return answer_json(
            self.turn,
            response,
            text=final_text,
            message_id=message_id,
            status=status,
            tool_calls=self.tool_calls,
            routing=self.routing,
        )

    def fail(self, reason: str) -> None:
        """The turn could not be answered: the user's message stays, marked failed."""
        self._store(lambda: self._set_user_message("failed", error=reason))

    def _set_user_message(self, status: str, *, error: str | None = None) -> None:
        # Two UPDATEs by id: neither row is read first.
        user_message_id, conversation_id = self.turn.user_message_id, self.turn.conversation_id
        assert user_message_id is not None and conversation_id is not None
        update_by_id(ConversationMessage, user_message_id, {"status": status, "error": error})
        touch(conversation_id)

    def _store(self, write: Callable[[], None]) -> None:
        """``write``'s statements as one transaction, committed before the turn goes on.

        A conversation deleted under a turn that outlived its lease refuses them (a foreign
        key): the rest of the turn has nowhere to go, it still answers, nothing is stored.
        """
        with unit_of_work():
            try:
                write()
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
                if db.session.get(Conversation, self.turn.conversation_id) is not None:
                    raise
                log.warning(
                    "conversation %s was deleted during its turn", self.turn.conversation_id
                )
