"""The SDK's stdio transport with a bounded line reader (see ``gateway.mcp.wire``).

Same process handling as ``mcp.client.stdio.stdio_client`` (its spawn, shutdown and drain
helpers are reused as they are; mcp is pinned), but stdout is split into lines as bytes, and
while a ``tools/call`` is pending a line longer than ``call_cap`` is not kept: its first
bytes and last bytes are, and it becomes a ``RESULT_TOO_LARGE`` error for that call. Other
lines are capped at ``OTHER_CAP`` the same way (an error for the request if its id is found,
else dropped), so no message can grow the worker without bound.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, TextIO

import anyio
import anyio.lowlevel
from mcp.client.stdio import (
    _WRITER_FLUSH_TIMEOUT,
    StdioServerParameters,
    _aclose_all,
    _create_platform_compatible_process,
    _drain_stdout,
    _get_executable_command,
    _parse_line,
    _stop_server_process,
    get_default_environment,
)
from mcp.shared.message import SessionMessage

from gateway.mcp.wire import (
    NOT_SENT,
    CappedMessage,
    call_cap,
    gateway_error,
    message_id,
    too_large_error,
)

logger = logging.getLogger(__name__)

# Any other message (tools/list, notifications) larger than this is refused, not parsed.
OTHER_CAP = 16 * 1024 * 1024
RESPONSE_TOO_LARGE = -32093


class _Lines:
    """Newline-delimited messages from byte chunks, each held only up to its cap."""

    def __init__(self, cap_for_next: Callable[[], int]) -> None:
        self._cap_for_next = cap_for_next
        self._line: CappedMessage | None = None

    def feed(self, chunk: bytes) -> list[CappedMessage]:
        done = []
        pos = 0
        while pos < len(chunk):
            if self._line is None:
                self._line = CappedMessage(self._cap_for_next())
            newline = chunk.find(b"\n", pos)
            end = len(chunk) if newline < 0 else newline
            self._line.add(chunk[pos:end])
            pos = end + 1
            if newline >= 0:
                if self._line.total:
                    done.append(self._line)
                self._line = None
        return done


class _Requests:
    """Our requests still waiting for an answer, and what an answer line becomes."""

    def __init__(self, server: StdioServerParameters, max_result_bytes: int) -> None:
        self._server = server
        self._max = max_result_bytes
        self._call_cap = call_cap(max_result_bytes)
        self._pending: dict[Any, str] = {}  # request id -> method

    def sent(self, message: Any) -> None:
        method, request_id = getattr(message, "method", None), getattr(message, "id", None)
        if method is not None and request_id is not None:
            self._pending[request_id] = method

    def cap(self) -> int:
        """The cap for the next line: tight while a tools/call waits for its answer."""
        return self._call_cap if "tools/call" in self._pending.values() else OTHER_CAP

    def finish(self, line: CappedMessage) -> SessionMessage | Exception | None:
        """The message a complete line stands for; None to drop it."""
        if not line.over:
            server = self._server
            text = bytes(line.buffer).decode(server.encoding, server.encoding_error_handler)
            parsed = _parse_line(text)
            if isinstance(parsed, SessionMessage) and not hasattr(parsed.message, "method"):
                self._pending.pop(getattr(parsed.message, "id", None), None)
            return parsed
        head = bytes(line.buffer)
        request_id = message_id(head, bytes(line.tail))
        method = self._pending.pop(request_id, None)
        logger.warning(
            "mcp stdio: a %d-byte message (%s) was not read past %d bytes",
            line.total,
            method or "unknown request",
            line.cap,
        )
        if method == "tools/call":
            body = too_large_error(request_id, head, line.total, self._max)
        elif method is not None:
            reason = f"the server's {line.total}-byte answer to {method} is too large"
            body = gateway_error(request_id, RESPONSE_TOO_LARGE, "response_too_large", reason)
        else:
            return None
        return _parse_line(body.decode())


async def _report_not_sent(read_stream_writer: Any, message: Any) -> None:
    request_id = getattr(message, "id", None)
    if getattr(message, "method", None) is None or request_id is None:
        return
    reason = "the MCP server's stdin is closed; the request was not sent"
    with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
        body = gateway_error(request_id, NOT_SENT, "not_sent", reason)
        await read_stream_writer.send(_parse_line(body.decode()))


async def _shutdown(process: Any, writer_done: anyio.Event, streams: tuple[Any, ...]) -> None:
    """The SDK's shutdown: stop traffic, flush briefly, stop the server, release the streams."""
    read_stream, write_stream = streams[0], streams[1]
    read_stream.close()
    write_stream.close()
    with anyio.move_on_after(_WRITER_FLUSH_TIMEOUT) as flush_scope:
        await writer_done.wait()
    if flush_scope.cancelled_caught:
        await anyio.lowlevel.cancel_shielded_checkpoint()
    await _stop_server_process(process)
    await _aclose_all(*streams)
    await anyio.lowlevel.checkpoint()


@asynccontextmanager
async def bounded_stdio_client(
    server: StdioServerParameters, *, max_result_bytes: int, errlog: TextIO = sys.stderr
) -> AsyncGenerator[tuple[Any, Any], None]:
    """``stdio_client`` whose reader never holds more than a cap of one message."""
    command = await _get_executable_command(server.command)
    process = await _create_platform_compatible_process(
        command=command,
        args=server.args,
        env=get_default_environment() | (server.env or {}),
        errlog=errlog,
        cwd=server.cwd,
    )
    read_stream_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](
        0
    )
    write_stream, write_stream_reader = anyio.create_memory_object_stream[SessionMessage](0)
    shutting_down = False
    writer_done = anyio.Event()
    requests = _Requests(server, max_result_bytes)

    async def stdout_reader() -> None:
        assert process.stdout, "Opened process is missing stdout"
        try:
            async with read_stream_writer:
                try:
                    lines = _Lines(requests.cap)
                    async for chunk in process.stdout:
                        for line in lines.feed(chunk):
                            message = requests.finish(line)
                            if message is None:
                                continue
                            try:
                                await read_stream_writer.send(message)
                            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                                return
                finally:
                    await _drain_stdout(process)
        except anyio.ClosedResourceError:
            pass
        except (anyio.BrokenResourceError, ConnectionError):
            if not shutting_down:
                logger.exception("Reading from the MCP server's stdout failed mid-session")

    async def stdin_writer() -> None:
        assert process.stdin, "Opened process is missing stdin"
        writing: Any = None
        try:
            async with write_stream_reader:
                async for session_message in write_stream_reader:
                    writing = message = session_message.message
                    requests.sent(message)
                    json = message.model_dump_json(by_alias=True, exclude_unset=True)
                    data = (json + "\n").encode(
                        encoding=server.encoding, errors=server.encoding_error_handler
                    )
                    await process.stdin.send(data)
                    writing = None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            # A request whose write failed never reached the server (EPIPE: it is gone).
            await _report_not_sent(read_stream_writer, writing)
            await read_stream_writer.aclose()
        finally:
            writer_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stdout_reader)
        tg.start_soon(stdin_writer)
        try:
            yield read_stream, write_stream
        finally:
            shutting_down = True
            with anyio.CancelScope(shield=True):
                await _shutdown(
                    process,
                    writer_done,
                    (read_stream, write_stream, read_stream_writer, write_stream_reader),
                )
            tg.cancel_scope.cancel()
    await anyio.lowlevel.cancel_shielded_checkpoint()
