"""``Idempotency-Key`` on POST /chat: a repeat gets the stored answer, never a second LLM call."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from gateway.database import unit_of_work
from gateway.errors import GatewayError
from gateway.extensions import db
from gateway.models import IdempotencyRecord, utcnow

MAX_KEY_LENGTH = 200
KEEP = timedelta(hours=24)
# A repeat while the first request is still running waits this long for its answer.
WAIT_SECONDS = 120.0
POLL_SECONDS = 0.25


class IdempotencyKeyReused(GatewayError):
    code = 422
    error_type = "idempotency_key_reused"
    description = "This Idempotency-Key was used with a different request body."


class IdempotencyInProgress(GatewayError):
    code = 409
    error_type = "idempotency_in_progress"
    description = "A request with this Idempotency-Key is still running; retry shortly."


class BadIdempotencyKey(GatewayError):
    code = 400
    error_type = "bad_idempotency_key"
    description = f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters."


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def claim(user_id: uuid.UUID, key: str, body_hash: str) -> dict[str, Any] | None:
    """Take the key for this request (None), or return the answer of its earlier run."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BadIdempotencyKey()
    try:
        with unit_of_work():
            db.session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - KEEP)
            )
            db.session.add(IdempotencyRecord(user_id=user_id, key=key, request_hash=body_hash))
        return None
    except IntegrityError:
        pass  # taken by an earlier request: wait for its answer
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with unit_of_work():
            record = db.session.get(IdempotencyRecord, (user_id, key))
            seen = (record.request_hash, record.state, record.response) if record else None
        if seen is None:  # the first run failed and gave the key back: this one runs
            return claim(user_id, key, body_hash)
        if seen[0] != body_hash:
            raise IdempotencyKeyReused()
        if seen[1] == "done":
            return seen[2]
        if time.monotonic() > deadline:
            raise IdempotencyInProgress(headers={"Retry-After": "5"})
        time.sleep(POLL_SECONDS)


@unit_of_work()
def complete(user_id: uuid.UUID, key: str, response: dict[str, Any]) -> None:
    record = db.session.get(IdempotencyRecord, (user_id, key))
    if record is not None:
        record.state, record.response = "done", response


def release(user_id: uuid.UUID, key: str) -> None:
    """The run failed: give the key back so that the client can retry with it."""
    with unit_of_work():
        db.session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
            )
        )
