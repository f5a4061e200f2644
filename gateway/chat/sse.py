"""Server-Sent Events: the turn runs on its own thread, the response thread relays and pings."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, current_app

from gateway.errors import GatewayError

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
_END = object()

EventSource = Callable[[Callable[[], bool]], Iterator[tuple[str, dict[str, Any]]]]


def format_event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def sse_response(source: EventSource, *, heartbeat: float = HEARTBEAT_SECONDS) -> Response:
    """Stream ``source(cancelled)``'s events; a client that goes away cancels the turn.

    A disconnect is noticed at the next write (an event or a heartbeat comment): the relay
    stops, the cancel flag is set, and the turn saves its partial answer and ends.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cancel = threading.Event()
    events: queue.Queue[Any] = queue.Queue()

    def produce() -> None:
        with app.app_context():
            try:
                for item in source(cancel.is_set):
                    events.put(item)
            except GatewayError as exc:
                events.put(("error", {"type": exc.error_type, "message": exc.description}))
            except Exception:
                log.exception("streamed turn failed")
                message = "The server could not complete the request."
                events.put(("error", {"type": "internal_error", "message": message}))
            finally:
                events.put(_END)

    threading.Thread(target=produce, name="sse-turn", daemon=True).start()

    def relay() -> Iterator[str]:
        try:
            while True:
                try:
                    item = events.get(timeout=heartbeat)
                except queue.Empty:
                    yield ": keepalive\n\n"
                    continue
                if item is _END:
                    return
                yield format_event(*item)
        finally:
            cancel.set()

    return Response(
        relay(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
