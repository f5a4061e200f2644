"""Holding a streamed completion's status until the upstream has answered.

OpenAI sends a stream's headers once the model has started: a failure before that (a 429 with
its ``Retry-After``, a 502) is an HTTP error the SDKs raise as such, not an error chunk in a
200. ``HeldStream`` gives the gateway the same behaviour for as long as a heartbeat interval;
past that the stream starts and a later failure is an error chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.exceptions import HTTPException

from gateway.llm.errors import ProviderError

Event = tuple[str, dict[str, Any]]

# Events that say nothing about the upstream yet.
_BEFORE_ANSWER = frozenset({"routing"})


class HeldStream:
    """Wraps a turn's event source; remembers a failure raised before any answer event."""

    def __init__(self, source: Callable[[Callable[[], bool]], Iterator[Event]]) -> None:
        self._source = source
        self._answered = threading.Event()
        self._failure: HTTPException | ProviderError | None = None

    def __call__(self, cancelled: Callable[[], bool]) -> Iterator[Event]:
        try:
            for name, data in self._source(cancelled):
                if name not in _BEFORE_ANSWER:
                    self._answered.set()
                yield name, data
        except (HTTPException, ProviderError) as exc:
            if self._answered.is_set():
                raise
            self._failure = exc
        finally:
            self._answered.set()

    def raise_early_failure(self, wait_seconds: float) -> None:
        """Wait up to ``wait_seconds`` for the first answer event; raise a failure before it."""
        self._answered.wait(wait_seconds)
        if self._failure is not None:
            raise self._failure
