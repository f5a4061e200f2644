"""Logging to stdout as text or JSON lines, every record tagged with the request id."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from flask import g, has_app_context

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s [%(request_id)s]"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record ("-" outside a request).

    Read from ``g``, which lives on the app context: a request's, or the one a streamed turn's
    producer thread pushes with the request's id (``gateway.chat.sse``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = getattr(g, "request_id", None) if has_app_context() else None
        record.request_id = request_id or getattr(record, "request_id", "-")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key in ("method", "path", "status", "duration_ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class EscapingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes every record.

    Log lines carry what clients and models sent (prompts in the routing line): a lone
    surrogate (``"\\ud800"`` is valid JSON, not valid Unicode) cannot be encoded as UTF-8,
    and the whole line was lost to "--- Logging error ---". Such characters are written as
    backslash escapes (``\\ud800``), which also keeps a JSON line valid JSON.
    """

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).encode("utf-8", "backslashreplace").decode("utf-8")


def configure_logging(level: str, fmt: str) -> None:
    """Route the root logger to stdout once per process; later calls only adjust."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_gateway", False)), None)
    if handler is None:
        handler = EscapingStreamHandler(sys.stdout)
        handler._gateway = True  # type: ignore[attr-defined]
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.setLevel(level)
    # The SDKs' HTTP clients log every request at INFO: our access and routing lines say more.
    for noisy in ("httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.NOTSET if level == "DEBUG" else logging.WARNING)
