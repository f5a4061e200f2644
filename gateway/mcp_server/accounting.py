"""Reading the ``/mcp`` call records for admins (writing them is in ``catalog.accounted``)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from gateway.database import unit_of_work
from gateway.errors import ValidationFailed
from gateway.extensions import db
from gateway.models import EndpointCall

MAX_LIMIT = 1000


@unit_of_work()
def recent_calls(
    *, user_id: str | None = None, server: str | None = None, limit: str = "100"
) -> dict[str, Any]:
    """The latest calls (newest first) and totals per user and server, optionally filtered.

    Raises ValidationFailed (422) for a malformed ``user_id`` or ``limit``.
    """
    try:
        count = int(limit)
        user = uuid.UUID(user_id) if user_id is not None else None
    except ValueError:
        raise ValidationFailed("user_id must be a UUID and limit an integer.") from None
    if not 1 <= count <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}.")
    filters = []
    if user is not None:
        filters.append(EndpointCall.user_id == user)
    if server:
        filters.append(EndpointCall.server == server)
    rows = db.session.scalars(
        select(EndpointCall).where(*filters).order_by(EndpointCall.id.desc()).limit(count)
    ).all()
    totals = db.session.execute(
        select(
            EndpointCall.user_id,
            EndpointCall.server,
            func.count().label("calls"),
            func.count().filter(EndpointCall.outcome != "ok").label("failed"),
            func.sum(EndpointCall.duration_ms).label("duration_ms"),
            func.sum(EndpointCall.response_bytes).label("response_bytes"),
        )
        .where(*filters)
        .group_by(EndpointCall.user_id, EndpointCall.server)
        .order_by(EndpointCall.server, EndpointCall.user_id)
    ).all()
    return {
        "calls": [
            {
                "id": r.id,
                "user_id": str(r.user_id),
                "method": r.method,
                "server": r.server,
                "name": r.name,
                "outcome": r.outcome,
                "duration_ms": r.duration_ms,
                "request_bytes": r.request_bytes,
                "response_bytes": r.response_bytes,
                "created_at": r.created_at.isoformat(),
            }
            for r in rows
        ],
        "totals": [
            {
                "user_id": str(t.user_id),
                "server": t.server,
                "calls": t.calls,
                "failed": t.failed,
                "duration_ms": int(t.duration_ms or 0),
                "response_bytes": int(t.response_bytes or 0),
            }
            for t in totals
        ],
    }
