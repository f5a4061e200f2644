"""MCP messages bounded while they are read, and transport failures told apart, per transport.

The SDK reads a whole message before anything can look at its size (stdio: one line, grown
by string concatenation; streamable HTTP: ``response.aread()`` or one SSE event), so a tool
that answers 20 MB costs the worker 20 MB or more and seconds of parsing before the gateway's
``MAX_TOOL_RESULT_BYTES`` cap applies. Here a ``tools/call`` response is read only up to
``call_cap`` bytes: past it the rest is discarded unparsed while counting, and the message
is replaced by a small JSON-RPC error carrying the first ``max_result_bytes`` of its text
(``RESULT_TOO_LARGE``; the session turns it back into a truncated result, so the SDK's
output-schema check never sees a half result).

The HTTP transport also replaces two failures the SDK reports alike ("Server returned an
error response", or a lost connection):

- ``NOT_SENT``: the connection to the server could not be opened, so nothing was delivered;
- ``SESSION_REJECTED``: the server answered a request carrying our ``Mcp-Session-Id`` with
  400 or 404 and no JSON-RPC error of its own (the spec says 404 for an unknown session,
  2025-06-18 "Session Management"; the Node reference server says 400): it forgot us,
  typically after a restart, and ran nothing.

The codes are in JSON-RPC's implementation-defined server-error range (-32000..-32099) and
their ``data`` carries ``{"gateway": <kind>}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx2

RESULT_TOO_LARGE = -32090
NOT_SENT = -32091
SESSION_REJECTED = -32092
TAIL_BYTES = 4096

_HEAD_ID = re.compile(rb'^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d+|"[^"\\]*")')
_TAIL_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"[^"\\]*")\s*\}\s*$')
_TEXT_START = re.compile(rb'"text"\s*:\s*"')


def call_cap(max_result_bytes: int) -> int:
    """Bytes of one ``tools/call`` response read before the rest is discarded.

    The wire form holds the text twice when a tool also returns it as structured content,
    plus JSON escaping: twice the result cap and some room keeps every result the gateway
    would keep whole parseable, and the cap applied after parsing (``cap_result``) exact.
    """
    return 2 * max_result_bytes + 16_384


def message_id(head: bytes, tail: bytes) -> Any:
    """The JSON-RPC id of a message seen only by its first and last bytes, or None."""
    match = _HEAD_ID.match(head) or _TAIL_ID.search(tail)
    return json.loads(match.group(1)) if match else None


def text_prefix(head: bytes, budget: int) -> str:
    """The start of the first ``"text"`` string in a cut JSON message, at most ``budget`` bytes."""
    found = _TEXT_START.search(head)
    if found is None:
        return ""
    raw = head[found.end() :].decode("utf-8", errors="ignore")
    for cut in range(0, 7):  # a cut may fall inside an escape such as \u00e9
        try:
            text, _ = json.decoder.scanstring(raw[: len(raw) - cut] + '"', 0)
            break
        except ValueError:
            continue
    else:
        return ""
    return text.encode("utf-8")[:budget].decode("utf-8", errors="ignore")


def too_large_error(request_id: Any, head: bytes, total: int, max_result_bytes: int) -> bytes:
    """The stand-in for a tools/call response of ``total`` bytes read only as far as ``head``."""
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": RESULT_TOO_LARGE,
            "message": "tool result too large",
            "data": {
                "gateway": "result_too_large",
                "text": text_prefix(head, max_result_bytes),
                "total_bytes": total,
            },
        },
    }
    return json.dumps(body).encode()


def gateway_error(request_id: Any, code: int, kind: str, message: str) -> bytes:
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": code, "message": message, "data": {"gateway": kind}},
    }
    return json.dumps(body).encode()


class CappedMessage:
    """Collects one message's bytes: whole up to ``cap``, then only its head and its tail."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buffer = bytearray()
        self.tail = bytearray()
        self.total = 0

    @property
    def over(self) -> bool:
        return self.total > self.cap

    def add(self, data: bytes) -> None:
        self.total += len(data)
        if not self.over:
            self.buffer += data
            return
        room = self.cap - len(self.buffer)
        if room > 0:
            self.buffer += data[:room]
        self.tail += data[-TAIL_BYTES:]
        del self.tail[:-TAIL_BYTES]


# --- streamable HTTP ---------------------------------------------------------------------


class _Replaced(httpx2.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes], inner: Any) -> None:
        self._chunks = chunks
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class BoundedTransport(httpx2.AsyncBaseTransport):
    """An httpx transport for one MCP server: bounded tools/call responses, failures named."""

    def __init__(self, max_result_bytes: int, inner: httpx2.AsyncBaseTransport | None = None):
        self._max = max_result_bytes
        self._cap = call_cap(max_result_bytes)
        self._inner = inner or httpx2.AsyncHTTPTransport()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request_id, method = _request_id(request)
        try:
            response = await self._inner.handle_async_request(request)
        except (httpx2.ConnectError, httpx2.ConnectTimeout):
            if request_id is None:
                raise
            reason = "could not connect to the MCP server; the request was not sent"
            return _json_response(request, gateway_error(request_id, NOT_SENT, "not_sent", reason))
        if request_id is None:
            return response
        has_session = "mcp-session-id" in request.headers
        if response.status_code in (400, 404) and has_session and method != "initialize":
            return await self._maybe_rejected(request, response, request_id)
        if method == "tools/call" and response.status_code == 200:
            content_type = response.headers.get("content-type", "").lower()
            stream = response.stream
            assert isinstance(stream, httpx2.AsyncByteStream)
            if content_type.startswith("application/json"):
                chunks = self._bounded_json(stream, request_id)
            elif content_type.startswith("text/event-stream"):
                chunks = self._bounded_sse(stream, request_id)
            else:
                return response
            return httpx2.Response(
                200,
                headers=[
                    (k, v) for k, v in response.headers.multi_items() if k != "content-length"
                ],
                stream=_Replaced(chunks, stream),
                request=request,
                extensions=response.extensions,
            )
        return response

    async def _maybe_rejected(
        self, request: httpx2.Request, response: httpx2.Response, request_id: Any
    ) -> httpx2.Response:
        """The server's own JSON-RPC error for our request passes; anything else is a rejection."""
        body = CappedMessage(65_536)
        async for chunk in response.aiter_raw():
            body.add(chunk)
        await response.aclose()
        if not body.over:
            try:
                parsed = json.loads(bytes(body.buffer))
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and "error" in parsed and parsed.get("id") == request_id:
                return _json_response(request, bytes(body.buffer), status=response.status_code)
        reason = f"the MCP server rejected our session (HTTP {response.status_code}); nothing ran"
        return _json_response(
            request, gateway_error(request_id, SESSION_REJECTED, "session_rejected", reason)
        )

    async def _bounded_json(self, stream: httpx2.AsyncByteStream, request_id: Any):
        message = CappedMessage(self._cap)
        async for chunk in stream:
            message.add(chunk)
        if not message.over:
            yield bytes(message.buffer)
            return
        yield too_large_error(request_id, bytes(message.buffer), message.total, self._max)

    async def _bounded_sse(self, stream: httpx2.AsyncByteStream, request_id: Any):
        """SSE events passed through; an event whose data line is over the cap is replaced."""
        line = CappedMessage(self._cap)
        event: list[bytes] = []
        oversized: CappedMessage | None = None
        async for chunk in stream:
            pos = 0
            while pos < len(chunk):
                newline = chunk.find(b"\n", pos)
                end = len(chunk) if newline < 0 else newline + 1
                line.add(chunk[pos:end])
                pos = end
                if newline < 0:
                    break
                if line.over:
                    oversized = line
                elif bytes(line.buffer).strip():
                    event.append(bytes(line.buffer))
                else:  # a blank line ends the event
                    if oversized is not None:
                        body = too_large_error(
                            request_id, bytes(oversized.buffer), oversized.total, self._max
                        )
                        event = [e for e in event if not e.startswith(b"data:")]
                        event.append(b"data: " + body + b"\n")
                        oversized = None
                    yield b"".join(event) + bytes(line.buffer)
                    event = []
                line = CappedMessage(self._cap)
        if event or line.total:
            yield b"".join(event) + bytes(line.buffer)


def _request_id(request: httpx2.Request) -> tuple[Any, str | None]:
    """The JSON-RPC id and method of a POSTed request; (None, None) for anything else."""
    if request.method != "POST":
        return None, None
    try:
        body = json.loads(request.content)
    except (ValueError, httpx2.RequestNotRead):
        return None, None
    if not isinstance(body, dict) or "id" not in body or "method" not in body:
        return None, None
    return body["id"], body["method"]


def _json_response(request: httpx2.Request, body: bytes, *, status: int = 200) -> httpx2.Response:
    return httpx2.Response(
        status, headers={"content-type": "application/json"}, content=body, request=request
    )
