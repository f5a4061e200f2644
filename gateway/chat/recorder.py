"""Persisting a turn as it happens: each tool call and the answer committed when they complete."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from gateway.chat.history import assistant_blocks, result_json, text_blocks, tool_result_blocks
from gateway.chat.store import touch
from gateway.extensions import db
from gateway.llm import ChatEvent, ChatResponse
from gateway.llm import Message as LLMMessage
from gateway.llm import ToolCall as LLMToolCall
from gateway.models import Message, ToolCall, utcnow


@dataclass(frozen=True)
class Turn:
    """One chat turn after its user message is stored: plain values, no ORM objects."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    prompt: str
    history: tuple[LLMMessage, ...]
    context_prompts: tuple[str, ...]
    provider: str | None
    model: str | None
    servers: tuple[str, ...]


@dataclass
class TurnRecorder:
    """Stores the turn's messages in order; never holds a transaction across a network wait."""

    turn: Turn
    routing: dict[str, Any] | None
    stored: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    _round_text: list[str] = field(default_factory=list)
    _round_calls: list[LLMToolCall] = field(default_factory=list)
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
        # Every call of a round has started before the first one finishes.
        if self._round_message_id is None:
            self._round_message_id = self._add(
                "assistant", assistant_blocks("".join(self._round_text), self._round_calls)
            )
        call, result = event.tool_call, event.result
        assert call is not None and result is not None
        duration_ms = round(event.duration_ms or 0.0)
        db.session.add(
            ToolCall(
                message_id=self._round_message_id,
                user_id=self.turn.user_id,
                server=call.server or "",
                tool=call.tool or call.name,
                arguments=dict(call.arguments),
                result=result_json(result),
                is_error=result.is_error,
                duration_ms=duration_ms,
            )
        )
        self._add("tool", tool_result_blocks(call, result))
        self.tool_calls.append(
            {
                "id": call.id,
                "server": call.server,
                "tool": call.tool or call.name,
                "arguments": dict(call.arguments),
                "is_error": result.is_error,
                "summary": event.summary,
                "duration_ms": duration_ms,
            }
        )
        self._commit()
        self._round_finished += 1
        if self._round_finished == len(self._round_calls):
            self._round_text, self._round_calls = [], []
            self._round_message_id, self._round_finished = None, 0

    def _add(self, role: str, content: list[dict[str, Any]], **fields: Any) -> uuid.UUID:
        message_id = uuid.uuid4()
        db.session.add(
            Message(
                id=message_id,
                conversation_id=self.turn.conversation_id,
                user_id=self.turn.user_id,
                role=role,
                content=content,
                created_at=utcnow(),
                **fields,
            )
        )
        self.stored += 1
        return message_id

    def finish(self, response: ChatResponse) -> dict[str, Any]:
        """Store what the turn added beyond the tool rounds, and the answer with its accounting."""
        remaining = list(response.messages[self.stored :])
        final_text = response.text
        if remaining and remaining[-1].role == "assistant" and not remaining[-1].tool_calls:
            final_text = remaining.pop().content
        for message in remaining:
            if message.role == "assistant":
                self._add("assistant", assistant_blocks(message.content, message.tool_calls))
            elif message.tool_result is not None:
                call = LLMToolCall(id=message.tool_call_id or "", name="")
                self._add("tool", tool_result_blocks(call, message.tool_result))
        status = "incomplete" if response.stop_reason == "cancelled" else "complete"
        created_at = utcnow()
        message_id = self._add(
            "assistant",
            text_blocks(final_text),
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
        self._commit()
        return {
            "conversation_id": str(self.turn.conversation_id),
            "user_message_id": str(self.turn.user_message_id),
            "message": {
                "id": str(message_id),
                "role": "assistant",
                "content": final_text,
                "status": status,
                "created_at": created_at.isoformat(),
            },
            "tool_calls": self.tool_calls,
            "routing": self.routing,
            **{k: v for k, v in response.as_dict().items() if k != "text"},
        }

    def fail(self, reason: str) -> None:
        """The turn could not be answered: the user's message stays, marked failed."""
        db.session.rollback()
        self._set_user_message("failed", error=reason)
        self._commit()

    def _set_user_message(self, status: str, *, error: str | None = None) -> None:
        message = db.session.get(Message, self.turn.user_message_id)
        if message is not None:
            message.status = status
            message.error = error
        touch(self.turn.conversation_id)

    @staticmethod
    def _commit() -> None:
        db.session.commit()
        # Release the connection now: the next step waits on the network.
        db.session.close()
