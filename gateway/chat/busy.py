"""One turn at a time per conversation, across threads, workers and replicas.

A turn's user message stays ``pending`` until the turn ends (complete, failed or incomplete),
so a pending message younger than the turn lease *is* the running turn. Starting a turn,
or deleting the conversation, first locks the conversation's row (``SELECT ... FOR UPDATE``,
held only for that short transaction) and then looks for one; if there is, the request is
refused at once with 409 ``conversation_busy`` and ``Retry-After``.

Why a refusal and not a PostgreSQL advisory lock held for the turn: a waiting lock would park
a gunicorn thread and a pooled connection for as long as the other turn runs (minutes with
slow tools), and a queue of waiters never tells the client anything. A 409 costs nothing,
and the official OpenAI SDKs already retry 409 honouring ``Retry-After``. A worker that dies
mid-turn leaves its message pending: after ``CHAT_LEASE_SECONDS`` it no longer counts, and
that turn, never complete, is left out of the history sent to the model.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from gateway.errors import GatewayError
from gateway.extensions import db
from gateway.models import Conversation, ConversationMessage, utcnow

RETRY_AFTER_SECONDS = 2


class ConversationBusy(GatewayError):
    code = 409
    error_type = "conversation_busy"
    description = "A turn of this conversation is still running; retry when it has ended."

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def lock_idle(conversation_id: uuid.UUID, *, lease_seconds: int) -> None:
    """Lock the conversation's row for this transaction; 409 if one of its turns is running.

    Call it inside a ``unit_of_work``: the lock lasts until that ends.
    """
    db.session.execute(
        select(Conversation.id).where(Conversation.id == conversation_id).with_for_update()
    )
    running = db.session.scalar(
        select(ConversationMessage.id)
        .where(
            ConversationMessage.conversation_id == conversation_id,
            ConversationMessage.role == "user",
            ConversationMessage.status == "pending",
            ConversationMessage.created_at > utcnow() - timedelta(seconds=lease_seconds),
        )
        .limit(1)
    )
    if running is not None:
        raise ConversationBusy()  # the caller's unit of work rolls back, releasing the lock
