"""Stored messages to and from the providers' neutral form, and trimming to a token budget."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from gateway.extensions import db
from gateway.llm import Message, ToolCall
from gateway.models import ConversationMessage
from gateway.tools import ToolResult

# Earlier user prompts given to the router as context for follow-ups ("and in Tokyo?").
ROUTING_CONTEXT_TURNS = 3


def text_blocks(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}] if text else []


def assistant_blocks(text: str, calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return text_blocks(text) + [
        {
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "server": call.server,
            "tool": call.tool,
            "input": dict(call.arguments),
        }
        for call in calls
    ]


def result_json(result: ToolResult) -> dict[str, Any]:
    return {
        "content": list(result.content),
        "structured_content": result.structured_content,
        "is_error": result.is_error,
        "truncated": result.truncated,
    }


def tool_result_blocks(call: ToolCall, result: ToolResult) -> list[dict[str, Any]]:
    return [
        {"type": "tool_result", "tool_use_id": call.id, "server": call.server, "tool": call.tool}
        | result_json(result)
    ]


def to_llm(message: ConversationMessage) -> list[Message]:
    """One stored message as provider-neutral messages (a tool row holds one result)."""
    blocks = message.content or []
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    if message.role == "user":
        return [Message.user(text)]
    if message.role == "assistant":
        calls = tuple(
            ToolCall(
                id=b["id"],
                name=b["name"],
                arguments=b.get("input") or {},
                server=b.get("server"),
                tool=b.get("tool"),
            )
            for b in blocks
            if b.get("type") == "tool_use"
        )
        return [Message.assistant(text, calls)] if text or calls else []
    results = []
    for b in blocks:
        if b.get("type") == "tool_result":
            result = ToolResult(
                content=tuple(b.get("content") or ()),
                structured_content=b.get("structured_content"),
                is_error=bool(b.get("is_error")),
                truncated=bool(b.get("truncated")),
            )
            results.append(Message.tool(b["tool_use_id"], result))
    return results


def _tokens(message: ConversationMessage) -> int:
    # About four characters a token: close enough to keep requests inside a context window.
    return len(json.dumps(message.content, ensure_ascii=False)) // 4 + 4


def replay(conversation_id: uuid.UUID, *, budget_tokens: int) -> tuple[list[Message], list[str]]:
    """Earlier turns for the model, oldest dropped first to fit the budget, and recent prompts.

    Whole turns are dropped, so a tool call is never separated from its result; turns whose
    user message failed or is still in flight are left out.
    """
    rows = db.session.scalars(
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id == conversation_id)
        .order_by(ConversationMessage.created_at, ConversationMessage.id)
    ).all()
    turns: list[list[ConversationMessage]] = []
    for row in rows:
        if row.role == "user":
            turns.append([row])
        elif turns:
            turns[-1].append(row)
    turns = [t for t in turns if t[0].status == "complete"]
    sizes = [sum(_tokens(m) for m in turn) for turn in turns]
    while turns and sum(sizes) > budget_tokens:
        turns.pop(0)
        sizes.pop(0)
    messages = [llm for turn in turns for row in turn for llm in to_llm(row)]
    prompts = [to_llm(t[0])[0].content for t in turns][-ROUTING_CONTEXT_TURNS:]
    return messages, prompts
