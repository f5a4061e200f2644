"""One MCP server's connection on the hub loop: connect, supervise, list tools, call tools."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from gateway.mcp.config import ServerConfig
from gateway.mcp.errors import ToolUnavailable
from gateway.mcp.process import StderrPump, find_child_pid, is_alive
from gateway.mcp.results import to_result, to_tool
from gateway.mcp.stdio import bounded_stdio_client
from gateway.mcp.wire import NOT_SENT, RESULT_TOO_LARGE, SESSION_REJECTED, BoundedTransport
from gateway.tools import Tool, ToolResult

logger = logging.getLogger(__name__)

READY = "ready"
STARTING = "starting"
UNAVAILABLE = "unavailable"
DISABLED = "disabled"


@dataclass(frozen=True)
class SessionOptions:
    """Hub-wide knobs shared by every server session."""

    max_result_bytes: int = 100_000
    page_cap: int = 50
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


class _WatchedStream:
    """A transport read stream that reports its end, so a dead server is noticed while idle."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    async def __aenter__(self) -> _WatchedStream:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self._inner.__aexit__(*exc)
        finally:
            self._on_end()

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._inner.__anext__()
        except (StopAsyncIteration, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def describe_error(exc: BaseException) -> str:
    """One line naming the leaf exceptions, for logs and statuses; never the request data."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_error(e) for e in exc.exceptions)
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.message}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _from_gateway(exc: MCPError, kind: str) -> bool:
    """An error our own transport made (``gateway.mcp.wire``), not one the server sent."""
    return isinstance(exc.data, dict) and exc.data.get("gateway") == kind


def _session_forgotten(exc: MCPError) -> bool:
    """The HTTP server no longer knows our session (restarted), whatever status it used."""
    if exc.code == SESSION_REJECTED and _from_gateway(exc, "session_rejected"):
        return True
    message = exc.message.lower()
    return exc.code == types.INVALID_REQUEST and (
        "session not found" in message or "session terminated" in message
    )


def _session_lost(exc: MCPError) -> bool:
    """The connection is gone: closed, never reached, or the server forgot our session."""
    if exc.code == types.CONNECTION_CLOSED:
        return True
    return _session_forgotten(exc) or _never_sent(exc)


def _never_sent(exc: MCPError) -> bool:
    return exc.code == NOT_SENT and _from_gateway(exc, "not_sent")


def _never_executed(exc: MCPError) -> bool:
    """Nothing ran: the request never left us, or the server refused the session first."""
    return _never_sent(exc) or _session_forgotten(exc)


class ServerSession:
    """The long-lived connection to one server, owned by one supervisor task on the hub loop.

    Request threads read ``state``, ``tools``, ``pid`` and ``last_error`` directly; every other
    attribute belongs to the loop thread.
    """

    def __init__(
        self, config: ServerConfig, loop: asyncio.AbstractEventLoop, options: SessionOptions
    ) -> None:
        self.config = config
        self.name = config.name
        self.state = STARTING if config.enabled else DISABLED
        self.tools: tuple[Tool, ...] = ()
        self.pid: int | None = None
        self.last_error: str | None = None
        self.protocol_version: str | None = None
        # Set once the first connect attempt has finished either way, for the first-use wait.
        self.settled = threading.Event()
        self._loop = loop
        self._options = options
        self._listed: dict[str, Tool] = {}
        self._exposed: frozenset[str] = frozenset()
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._end_session = asyncio.Event()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._attempts = 0
        self._refresh_task: asyncio.Task[None] | None = None
        self._refresh_again = False
        if not config.enabled:
            self.settled.set()

    def start(self) -> None:
        """Begin connecting in the background (on the loop thread)."""
        if self.config.enabled and self._task is None:
            self._task = self._loop.create_task(self._supervise(), name=f"mcp:{self.name}")

    async def stop(self) -> None:
        """End the session and its supervisor; the SDK stops a stdio child (stdin, TERM, KILL)."""
        self._stopping = True
        self._end_session.set()
        self._wake.set()
        if self._task is not None:
            if self._client is None:
                # Still connecting: cancelling is safe (the SDK shields the child's shutdown).
                self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self.tools = ()
        self.pid = None

    def kill_task(self) -> None:
        """Last resort when ``stop`` overran its deadline."""
        if self._task is not None:
            self._task.cancel()

    def _set_state(self, state: str) -> None:
        self.state = state
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            self._end_session = asyncio.Event()
            self._set_state(STARTING)
            was_ready = await self._run_once()
            self._attempts += 1
            self.settled.set()
            if self._stopping:
                break
            # A session that was up reconnects at once; repeated failures back off, capped.
            failures = 0 if was_ready else failures + 1
            if failures:
                self._set_state(UNAVAILABLE)
                delay = min(
                    self._options.backoff_max,
                    self._options.backoff_initial * 2 ** (failures - 1),
                )
                logger.warning(
                    "mcp server %s unavailable (%s); retrying in %.1fs",
                    self.name,
                    self.last_error,
                    delay,
                )
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        self._set_state(UNAVAILABLE if self.config.enabled else DISABLED)

    async def _run_once(self) -> bool:
        """Connect, list, then hold the session until it dies or we stop; True if it got ready."""
        ready = False
        listener: asyncio.Task[None] | None = None
        try:
            async with AsyncExitStack() as stack:
                async with asyncio.timeout(self.config.connect_timeout):
                    client = Client(
                        self._transport(),
                        mode=self.config.protocol,
                        read_timeout_seconds=self.config.timeout,
                        message_handler=self._on_message,
                        cache=None,
                    )
                    await stack.enter_async_context(client)
                    await self._refresh_tools(client)
                self.protocol_version = client.protocol_version
                self._client = client
                self.last_error = None
                ready = True
                self._set_state(READY)
                self.settled.set()
                logger.info(
                    "mcp server %s ready: %d tools, protocol %s, pid %s",
                    self.name,
                    len(self.tools),
                    self.protocol_version,
                    self.pid,
                )
                if self.protocol_version >= "2026" and self._announces_changes(client):
                    listener = asyncio.create_task(self._listen(client))
                await self._end_session.wait()
                self._client = None
                if not self._stopping:
                    self.last_error = "connection lost"
                    logger.warning("mcp server %s: connection lost; reconnecting", self.name)
                await self._cancel(listener, self._refresh_task)
        except Exception as exc:
            # Connect failures and transport crashes (ExceptionGroups included) all mean "down".
            self.last_error = describe_error(exc)
            if ready:
                logger.warning("mcp server %s session ended: %s", self.name, self.last_error)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            self._client = None
            await self._cancel(listener, self._refresh_task)
        return ready

    @staticmethod
    async def _cancel(*tasks: asyncio.Task[None] | None) -> None:
        for task in tasks:
            if task is not None and not task.done():
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task

    @staticmethod
    def _announces_changes(client: Client) -> bool:
        caps = client.server_capabilities.tools
        return bool(caps and caps.list_changed)

    def _mark_dead(self, client: Client | None = None) -> None:
        """Tear the session down now; the supervisor reconnects."""
        if client is not None and client is not self._client:
            return
        self._client = None
        self._end_session.set()

    @asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        """The SDK transport for this server, with its read stream watched for the end."""
        cfg = self.config
        if cfg.transport == "stdio":
            pump = StderrPump(self.name, self._loop)
            params = StdioServerParameters(
                command=cfg.resolved_command(),
                args=list(cfg.args),
                env=cfg.secret_env() or None,
                cwd=cfg.cwd,
            )
            try:
                async with bounded_stdio_client(
                    params, max_result_bytes=self._options.max_result_bytes, errlog=pump.writer
                ) as (read, write):
                    pump.close_writer()
                    self.pid = find_child_pid(pump.inode)
                    yield _WatchedStream(read, self._mark_dead), write
            finally:
                self.pid = None
                pump.close()
            return
        assert cfg.url is not None
        if cfg.transport == "sse":
            async with sse_client(
                cfg.url, headers=cfg.secret_headers(), timeout=cfg.connect_timeout
            ) as (read, write):
                yield _WatchedStream(read, self._mark_dead), write
            return
        timeout = httpx2.Timeout(cfg.connect_timeout, read=max(300.0, cfg.timeout))
        transport = BoundedTransport(self._options.max_result_bytes)
        async with httpx2.AsyncClient(
            headers=cfg.secret_headers(), timeout=timeout, transport=transport
        ) as http:
            async with streamable_http_client(cfg.url, http_client=http) as (read, write):
                yield _WatchedStream(read, self._mark_dead), write

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._schedule_refresh()
        elif isinstance(message, Exception):
            logger.debug("mcp server %s transport: %s", self.name, describe_error(message))

    async def _listen(self, client: Client) -> None:
        """Follow tools/list_changed on 2026-07-28 sessions, which send it only to subscribers."""
        try:
            async with client.listen(tools_list_changed=True) as sub:
                # A change between the first listing and this subscription sent its
                # notification to nobody: list once more now that we are subscribed.
                self._schedule_refresh()
                async for _event in sub:
                    self._schedule_refresh()
        except Exception as exc:
            logger.debug(
                "mcp server %s: no change subscription: %s", self.name, describe_error(exc)
            )

    def _schedule_refresh(self) -> None:
        """Re-list tools soon; bursts of notifications collapse into one more listing."""
        if self._refresh_task is not None and not self._refresh_task.done():
            self._refresh_again = True
            return
        self._refresh_task = asyncio.create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while True:
            self._refresh_again = False
            client = self._client
            if client is None:
                return
            try:
                await self._refresh_tools(client)
                logger.info("mcp server %s tools changed: %d tools", self.name, len(self.tools))
            except Exception as exc:
                logger.warning(
                    "mcp server %s: re-listing tools failed: %s", self.name, describe_error(exc)
                )
            if not self._refresh_again:
                return

    async def _refresh_tools(self, client: Client) -> None:
        """Follow tools/list pages to the end (capped), then apply the server's tool filter."""
        listed: list[types.Tool] = []
        cursor: str | None = None
        for _page in range(self._options.page_cap):
            page = await client.list_tools(cursor=cursor)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        else:
            logger.warning(
                "mcp server %s: stopped listing tools after %d pages",
                self.name,
                self._options.page_cap,
            )
        tools = [to_tool(self.name, t, tuple(self.config.args)) for t in listed]
        allowed = [t for t in tools if self.config.allows(t.name)]
        self._listed = {t.name: t for t in tools}
        self._exposed = frozenset(t.name for t in allowed)
        self.tools = tuple(allowed)

    async def _ready_client(self, deadline: float) -> Client:
        """The live client, waiting out a (re)connect until ``deadline``; else ToolUnavailable."""
        kicked_at: int | None = None
        while True:
            if self.state == DISABLED or self._stopping:
                raise ToolUnavailable(f"MCP server {self.name!r} is not running")
            client = self._client
            if self.state == READY and client is not None:
                return client
            if self.state == UNAVAILABLE:
                if kicked_at is not None and self._attempts > kicked_at:
                    raise ToolUnavailable(
                        f"MCP server {self.name!r} is unavailable: {self.last_error}"
                    )
                # Skip the rest of the backoff: a caller is waiting.
                kicked_at = self._attempts
                self._wake.set()
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                raise ToolUnavailable(f"MCP server {self.name!r} is still starting")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> ToolResult:
        """Run one tool call; tool failures come back as error results, a dead server raises."""
        if tool in self._listed and tool not in self._exposed:
            return ToolResult.error(f"Tool {tool!r} is not available on MCP server {self.name!r}.")
        for attempt in (1, 2):
            client = await self._ready_client(self._loop.time() + self.config.connect_timeout)
            if self.pid is not None and not is_alive(self.pid):
                # The child died before we sent anything: reconnect first, nothing is lost.
                self._mark_dead(client)
                client = await self._ready_client(self._loop.time() + self.config.connect_timeout)
            outcome = await self._call_once(client, tool, arguments, timeout)
            if isinstance(outcome, ToolResult):
                return outcome
            self._mark_dead(client)
            never_ran = isinstance(outcome, MCPError) and _never_executed(outcome)
            if never_ran and attempt == 1:
                # Not delivered, or refused before it ran: reconnect and send it once more.
                logger.info(
                    "mcp server %s: %s not run (%s); reconnecting and sending it again",
                    self.name,
                    tool,
                    describe_error(outcome),
                )
                continue
            if never_ran:
                raise ToolUnavailable(
                    f"MCP server {self.name!r} is unreachable ({describe_error(outcome)}); "
                    "the call was not sent"
                )
            # Delivery unknown: it may have run, so it is reported, never silently repeated.
            return self._lost_result(tool, outcome)
        raise AssertionError("unreachable")

    async def _call_once(
        self, client: Client, tool: str, arguments: dict[str, Any], timeout: float
    ) -> ToolResult | Exception:
        """One attempt: a result (maybe an error result), or the exception that lost the session."""
        try:
            # The SDK's own timeout fires first; this outer one catches anything that ignores it.
            async with asyncio.timeout(timeout + 1.0):
                result = await client.call_tool(tool, arguments, read_timeout_seconds=timeout)
        except MCPError as exc:
            if exc.code == RESULT_TOO_LARGE and _from_gateway(exc, "result_too_large"):
                return self._too_large_result(tool, exc)
            return exc if _session_lost(exc) else self._error_result(tool, exc, timeout)
        except TimeoutError:
            return ToolResult.error(f"Tool {tool!r} timed out after {timeout:g}s.")
        except RuntimeError as exc:
            # The SDK checks structured content against the tool's output schema (P13).
            logger.warning("mcp server %s: invalid result from %s: %s", self.name, tool, exc)
            return ToolResult.error(
                f"Tool {tool!r} returned a result that does not match its schema."
            )
        except Exception as exc:
            return exc
        return to_result(result, max_bytes=self._options.max_result_bytes)

    def _too_large_result(self, tool: str, exc: MCPError) -> ToolResult:
        """The start of a result the transport stopped reading (see ``gateway.mcp.wire``)."""
        total, cap = exc.data.get("total_bytes"), self._options.max_result_bytes
        logger.warning("mcp server %s: %s returned %s bytes; read %d", self.name, tool, total, cap)
        marker = (
            f"[truncated: the tool returned {total} bytes; the gateway read at most {cap} "
            "and discarded the rest]"
        )
        blocks = [
            {"type": "text", "text": exc.data.get("text") or ""},
            {"type": "text", "text": marker},
        ]
        return ToolResult(content=tuple(blocks), is_error=False, truncated=True)

    def _lost_result(self, tool: str, exc: BaseException) -> ToolResult:
        logger.warning(
            "mcp server %s: connection lost during %s: %s", self.name, tool, describe_error(exc)
        )
        return ToolResult.error(
            f"The connection to MCP server {self.name!r} was lost while {tool!r} ran; "
            "its outcome is unknown."
        )

    def _error_result(self, tool: str, exc: MCPError, timeout: float) -> ToolResult:
        if exc.code == types.REQUEST_TIMEOUT:
            return ToolResult.error(f"Tool {tool!r} timed out after {timeout:g}s.")
        if exc.code in (types.INVALID_PARAMS, types.METHOD_NOT_FOUND):
            return ToolResult.error(f"Tool {tool!r} rejected the call: {exc.message}")
        logger.warning("mcp server %s: %s failed: %s", self.name, tool, describe_error(exc))
        return ToolResult.error(f"Tool {tool!r} failed: MCP error {exc.code}: {exc.message}")
