"""Letting a turn in: idempotency key, rate and concurrency limits, released however it ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import request

from gateway import limits
from gateway.chat import idempotency
from gateway.chat.disconnect import client_gone
from gateway.chat.service import complete_chat, turn_events

if TYPE_CHECKING:
    from gateway.chat.recorder import Turn
    from gateway.models import User


@dataclass
class Admitted:
    """A turn whose user message is stored, holding a concurrency slot (and maybe a key)."""

    turn: Turn
    slot: limits.TurnSlot
    key: str | None = None

    def answer(self) -> dict[str, Any]:
        """Run the turn to its end; the key keeps the answer, or is given back on failure.

        A client that leaves stops the turn between rounds, stored as incomplete.
        """
        try:
            result = complete_chat(self.turn, cancelled=client_gone(request.environ))
        except Exception:
            self._give_back_key()
            raise
        finally:
            self.slot.release()
        if self.key is not None:
            idempotency.complete(self.turn.user_id, self.key, result)
        return result

    def events(self, cancelled: Callable[[], bool]) -> Iterator[tuple[str, dict[str, Any]]]:
        """The turn as a stream of events (see chat.sse); the slot is freed when it ends."""
        try:
            for name, data in turn_events(self.turn, stream=True, cancelled=cancelled):
                if name == "done" and self.key is not None:
                    idempotency.complete(self.turn.user_id, self.key, data)
                yield name, data
        except Exception:
            self._give_back_key()
            raise
        finally:
            self.slot.release()

    def _give_back_key(self) -> None:
        if self.key is not None:
            idempotency.release(self.turn.user_id, self.key)


def admit(
    user: User,
    start: Callable[[], Turn],
    *,
    key: str | None = None,
    request_body: dict[str, Any] | None = None,
) -> Admitted | dict[str, Any]:
    """The stored answer of an earlier request with the same key, or the admitted new turn.

    ``start`` stores the user's message (``begin_turn`` or an unstored variant) once the
    limits let the turn in; rate and concurrency refusals are 429s and store nothing.
    """
    if key is not None:
        stored = idempotency.claim(user.id, key, idempotency.request_hash(request_body or {}))
        if stored is not None:
            return stored
    slot = None
    try:
        slot = limits.admit_turn(user.id)
        return Admitted(start(), slot, key)
    except Exception:
        if slot is not None:
            slot.release()
        if key is not None:
            idempotency.release(user.id, key)
        raise
