"""Server-Sent Events: the turn runs on its own thread, the response thread relays and pings."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, current_app, g

from gateway.errors import event_error
from gateway.services import get_services

log = logging.getLogger(__name__)

_END = object()

Event = tuple[str, dict[str, Any]]
EventSource = Callable[[Callable[[], bool]], Iterator[Event]]
# Renders events as SSE text; ``None`` in the input stands for "nothing happened for a while".
Renderer = Callable[[Iterator[Event | None]], Iterator[str]]


def format_event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def named_events(events: Iterator[Event | None]) -> Iterator[str]:
    """The gateway's own SSE format: ``event: <name>`` and a JSON ``data:`` line."""
    for event in events:
        yield ": keepalive\n\n" if event is None else format_event(*event)


def sse_response(source: EventSource, render: Renderer = named_events) -> Response:
    """Stream ``source(cancelled)``'s events; a client that goes away cancels the turn.

    A disconnect is noticed at the next write (an event or a heartbeat comment): the relay
    stops, the cancel flag is set, and the turn saves its partial answer and ends.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    heartbeat = get_services(app).settings.http.sse_heartbeat_seconds
    cancel = threading.Event()
    events: queue.Queue[Any] = queue.Queue()

    request_id = g.get("request_id")

    def produce() -> None:
        with app.app_context():
            g.request_id = request_id  # the turn's log lines carry the request's id
            try:
                for item in source(cancel.is_set):
                    events.put(item)
            except Exception as exc:  # the stream has started: the failure is its last event
                events.put(("error", event_error(exc)))
            finally:
                events.put(_END)

    threading.Thread(target=produce, name="sse-turn", daemon=True).start()

    def relay() -> Iterator[Event | None]:
        while True:
            try:
                item = events.get(timeout=heartbeat)
            except queue.Empty:
                yield None
                continue
            if item is _END:
                return
            yield item

    def body() -> Iterator[str]:
        try:
            yield from render(relay())
        finally:
            cancel.set()

    return Response(
        body(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
