"""Per-request bookkeeping: the request id, one access-log line, the HTTP metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from flask import g, request

from gateway.metrics import observe_request

if TYPE_CHECKING:
    from flask import Flask, Response

log = logging.getLogger("gateway.access")
# An incoming X-Request-ID is honoured only when short and plain: it cannot forge log lines.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def init_app(app: Flask) -> None:
    app.before_request(_start_request)
    app.after_request(_finish_request)


def _start_request() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _finish_request(response: Response) -> Response:
    started = getattr(g, "started", None)
    if started is None:  # a failure before before_request ran
        _start_request()
        started = g.started
    seconds = time.perf_counter() - started
    response.headers["X-Request-ID"] = g.request_id
    route = request.url_rule.rule if request.url_rule else "<unmatched>"
    observe_request(request.method, route, response.status_code, seconds)
    duration_ms = round(seconds * 1000, 1)
    log.info(
        "%s %s %s %.1fms",
        request.method,
        request.path,
        response.status_code,
        duration_ms,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": duration_ms,
        },
    )
    return response
