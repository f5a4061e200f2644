"""Rounds that called both gateway tools and a client's own tools, kept until the client returns.

The client sees only the calls to its own tools; the gateway's calls and their results stay
server-side (``PendingToolRound``) so a client can neither lose nor rewrite them. When the
client's next request carries the assistant message with those call ids, ``restore`` puts
the whole round back: the model sees every call of its response and every result.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from gateway.chat.history import assistant_blocks, to_llm, tool_result_blocks
from gateway.database import unit_of_work
from gateway.extensions import db
from gateway.llm import ChatResponse, Message
from gateway.models import ConversationMessage, PendingToolRound, utcnow

# A client that has not come back with its tool results after this long has gone.
KEEP = timedelta(hours=24)


@unit_of_work()
def keep_round(user_id: uuid.UUID, response: ChatResponse) -> None:
    """Store the last round of ``response`` when it mixed gateway and client tool calls."""
    messages = list(response.messages)
    starts = [i for i, m in enumerate(messages) if m.role == "assistant" and m.tool_calls]
    if not starts or not response.client_calls:
        return
    assistant, after = messages[starts[-1]], messages[starts[-1] + 1 :]
    results = [m for m in after if m.role == "tool" and m.tool_result is not None]
    if not results:
        return  # only client calls: the client holds the whole round
    calls = {call.id: call for call in assistant.tool_calls}
    stored = {
        "assistant": assistant_blocks(assistant.content, assistant.tool_calls),
        "results": [
            tool_result_blocks(calls[m.tool_call_id or ""], m.tool_result)  # type: ignore[arg-type]
            for m in results
            if (m.tool_call_id or "") in calls
        ],
    }
    now = utcnow()
    db.session.execute(delete(PendingToolRound).where(PendingToolRound.created_at < now - KEEP))
    for call in response.client_calls:
        statement = insert(PendingToolRound).values(
            user_id=user_id, call_id=call.id, round=stored, created_at=now
        )
        db.session.execute(
            statement.on_conflict_do_update(
                index_elements=["user_id", "call_id"], set_={"round": stored, "created_at": now}
            )
        )


def restore(user_id: uuid.UUID, messages: Sequence[Message]) -> list[Message]:
    """``messages`` with each kept round put back in place of the client's view of it."""
    ids = [call.id for m in messages if m.role == "assistant" for call in m.tool_calls]
    if not ids:
        return list(messages)
    with unit_of_work():
        rows = db.session.scalars(
            select(PendingToolRound).where(
                PendingToolRound.user_id == user_id, PendingToolRound.call_id.in_(ids)
            )
        ).all()
        rounds = {row.call_id: row.round for row in rows}
    if not rounds:
        return list(messages)
    out: list[Message] = []
    for message in messages:
        kept = next((rounds[c.id] for c in message.tool_calls if c.id in rounds), None)
        if message.role != "assistant" or kept is None:
            out.append(message)
            continue
        out.extend(to_llm(ConversationMessage(role="assistant", content=kept["assistant"])))
        for blocks in kept["results"]:
            out.extend(to_llm(ConversationMessage(role="tool", content=blocks)))
    return out
