"""Tool-definition pinning: a tool whose description or schema changes is withheld until approved.

The first definition seen is recorded in PostgreSQL, shared by every worker and replica. A later
definition with another fingerprint is recorded as pending and the tool is not offered, until an
admin approves the change. This is the defense against "rug pull" servers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.database import unit_of_work
from gateway.extensions import db
from gateway.mcp import tool_fingerprint
from gateway.models import ToolPin, utcnow
from gateway.tools import Tool

log = logging.getLogger(__name__)

# Approvals made through another worker are seen within this many seconds.
CACHE_SECONDS = 5.0


class PinCache:
    """This process's copy of the pins table, refreshed every few seconds."""

    def __init__(self) -> None:
        self._pins: dict[tuple[str, str], tuple[str, str | None]] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        self._loaded_at = 0.0

    def _current(self) -> dict[tuple[str, str], tuple[str, str | None]]:
        if time.monotonic() - self._loaded_at > CACHE_SECONDS:
            with self._lock, unit_of_work():
                rows = db.session.execute(
                    select(
                        ToolPin.server,
                        ToolPin.tool,
                        ToolPin.fingerprint,
                        ToolPin.pending_fingerprint,
                    )
                ).all()
                self._pins = {
                    (r.server, r.tool): (r.fingerprint, r.pending_fingerprint) for r in rows
                }
                self._loaded_at = time.monotonic()
        return self._pins

    def approved(self, tools: Sequence[Tool]) -> list[Tool]:
        """The tools whose definition matches the pinned one; records new and changed ones."""
        pins = self._current()
        allowed: list[Tool] = []
        new: list[tuple[Tool, str]] = []
        changed: list[tuple[Tool, str]] = []
        for tool in tools:
            fingerprint = tool_fingerprint(tool)
            pinned = pins.get((tool.server, tool.name))
            if pinned is None:
                new.append((tool, fingerprint))
                allowed.append(tool)
            elif pinned[0] == fingerprint:
                allowed.append(tool)
            elif pinned[1] != fingerprint:
                changed.append((tool, fingerprint))
        if new or changed:
            _record(new, changed)
            self.invalidate()
        return allowed


def _record(new: Iterable[tuple[Tool, str]], changed: Iterable[tuple[Tool, str]]) -> None:
    for tool, fingerprint in new:
        try:
            with unit_of_work():
                db.session.add(ToolPin(server=tool.server, tool=tool.name, fingerprint=fingerprint))
        except IntegrityError:  # another worker pinned it first; the next refresh shows it
            pass
    for tool, fingerprint in changed:
        with unit_of_work():
            pin = db.session.get(ToolPin, (tool.server, tool.name))
            if pin is None or pin.fingerprint == fingerprint:
                continue
            pin.pending_fingerprint = fingerprint
            pin.changed_at = utcnow()
        log.warning(
            "🔒 MCP tool %s/%s changed its definition; withheld until an admin approves it "
            "(POST /mcp/servers/%s/approve)",
            tool.server,
            tool.name,
            tool.server,
        )


def pending_changes(server: str) -> list[str]:
    """Names of the server's tools whose new definition awaits approval."""
    query = select(ToolPin.tool).where(
        ToolPin.server == server, ToolPin.pending_fingerprint.is_not(None)
    )
    return list(db.session.scalars(query.order_by(ToolPin.tool)))


def approve_changes(server: str) -> list[str]:
    """Accept every pending definition of the server's tools; returns the tools approved."""
    pins = db.session.scalars(
        select(ToolPin).where(ToolPin.server == server, ToolPin.pending_fingerprint.is_not(None))
    ).all()
    approved = []
    for pin in pins:
        pin.fingerprint, pin.pending_fingerprint = pin.pending_fingerprint, None  # type: ignore[assignment]
        approved.append(pin.tool)
    db.session.commit()
    if approved:
        log.info("MCP tool definitions approved for %s: %s", server, ", ".join(approved))
    return approved
