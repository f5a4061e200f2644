"""A test-only WSGI app: a short server-sent event stream, to show nginx does not hold it back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

EVENTS = 5
INTERVAL = 0.3


def app(environ: dict, start_response: Callable) -> Iterator[bytes]:
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            # What a streaming endpoint of the gateway sends: nginx then passes each write on.
            ("X-Accel-Buffering", "no"),
        ],
    )
    return _events()


def _events() -> Iterator[bytes]:
    for number in range(EVENTS):
        if number:
            time.sleep(INTERVAL)
        yield f"data: {number}\n\n".encode()
