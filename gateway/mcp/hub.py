"""The per-process MCP hub: a private event-loop thread owning one session per server.

Request threads use the synchronous facade (``list_tools``, ``call_tool``, ``statuses``);
every SDK object lives on the hub's loop. The loop thread is created lazily on first use and
again in a forked child, so a hub built before gunicorn forks never shares a loop with a worker.

Error contract of ``call_tool``:

- raises ``ToolUnavailable`` when the server is unknown, disabled, not ready within its
  connect timeout, unreachable after one reconnect, or the hub is closed;
- returns ``ToolResult`` with ``is_error=True`` when the tool ran and failed, the arguments or
  tool name were rejected (either error style), the call timed out, the tool is filtered out
  by the server's config, or the connection dropped mid-call on a tool that is not safe to
  retry (outcome unknown).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from mcp import Client

from gateway.mcp.config import ServerConfig
from gateway.mcp.errors import ToolUnavailable
from gateway.mcp.process import is_alive
from gateway.mcp.session import (
    DISABLED,
    READY,
    UNAVAILABLE,
    ServerSession,
    SessionOptions,
)
from gateway.tools import Tool, ToolResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerStatus:
    """What health checks and the admin API show about one server; no secrets."""

    name: str
    transport: str
    state: str
    tool_count: int
    last_error: str | None
    pid: int | None
    protocol_version: str | None


@dataclass
class _Runtime:
    """The loop thread and sessions of one process; replaced wholesale after a fork."""

    pid: int
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    started: float
    sessions: dict[str, ServerSession] = field(default_factory=dict)


class MCPHub:
    """Per-process MCP sessions behind a thread-safe synchronous facade."""

    def __init__(
        self,
        configs: Iterable[ServerConfig] = (),
        *,
        max_result_bytes: int = 100_000,
        first_use_wait: float = 3.0,
        page_cap: int = 50,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self._configs = {c.name: c for c in configs}
        self._options = SessionOptions(
            max_result_bytes=max_result_bytes,
            page_cap=page_cap,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )
        self._first_use_wait = first_use_wait
        self._lock = threading.Lock()
        self._runtime_: _Runtime | None = None
        self._closed = False
        # Loops, threads and SDK objects inherited through fork are dead weight in the child;
        # keep them referenced so their finalizers never run there.
        self._inherited: list[_Runtime] = []
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reset_after_fork(ref))

    @property
    def configs(self) -> list[ServerConfig]:
        """The server configs in use."""
        return list(self._configs.values())

    def start(self) -> None:
        """Connect every server in the background, e.g. from gunicorn's post_worker_init."""
        if not self._closed:
            self._runtime()

    def list_tools(self) -> list[Tool]:
        """Tools of the servers that are ready now; waits briefly only on first use."""
        if self._closed:
            return []
        rt = self._runtime()
        deadline = rt.started + self._first_use_wait
        tools: list[Tool] = []
        for session in rt.sessions.values():
            remaining = deadline - time.monotonic()
            if remaining > 0:
                session.settled.wait(remaining)
            if session.state == READY:
                tools.extend(session.tools)
        return tools

    def call_tool(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> ToolResult:
        """Call one tool; see the module docstring for what raises and what is an error result."""
        if self._closed:
            raise ToolUnavailable("the MCP hub is closed")
        rt = self._runtime()
        session = rt.sessions.get(server)
        if session is None:
            raise ToolUnavailable(f"unknown MCP server {server!r}")
        if session.state == DISABLED:
            raise ToolUnavailable(f"MCP server {server!r} is disabled")
        call_timeout = timeout if timeout is not None else session.config.timeout
        return self._submit(
            rt,
            session.call(tool, arguments or {}, call_timeout),
            call_timeout + session.config.connect_timeout + 2.0,
            on_timeout=ToolResult.error(f"Tool {tool!r} timed out after {call_timeout:g}s."),
        )

    def request(
        self,
        server: str,
        action: Callable[[Client], Awaitable[Any]],
        *,
        timeout: float | None = None,
    ) -> Any:
        """Run ``action(client)`` on the server's live SDK client, on the hub loop.

        For requests other than tool calls (resources, prompts) made by the gateway's own MCP
        endpoint. Raises ToolUnavailable like ``call_tool``, TimeoutError past ``timeout``, and
        whatever ``action`` raises (``MCPError`` from the server).
        """
        if self._closed:
            raise ToolUnavailable("the MCP hub is closed")
        rt = self._runtime()
        session = rt.sessions.get(server)
        if session is None or session.state == DISABLED:
            raise ToolUnavailable(f"MCP server {server!r} is not available")
        limit = timeout if timeout is not None else session.config.timeout

        async def run() -> Any:
            client = await session._ready_client(rt.loop.time() + session.config.connect_timeout)
            async with asyncio.timeout(limit):
                return await action(client)

        return self._submit(
            rt, run(), limit + session.config.connect_timeout + 2.0, on_timeout=None
        )

    def capabilities(self, server: str) -> Any:
        """The server's declared capabilities (SDK ``ServerCapabilities``), or None if not ready."""
        rt = self._runtime_
        session = rt.sessions.get(server) if rt is not None and self._live(rt) else None
        client = session._client if session is not None else None
        return client.server_capabilities if client is not None else None

    def statuses(self) -> list[ServerStatus]:
        """One status per configured server; starts connecting if nothing has yet."""
        sessions = {} if self._closed else self._runtime().sessions
        out = []
        for name, config in self._configs.items():
            session = sessions.get(name)
            state = session.state if session else (DISABLED if not config.enabled else UNAVAILABLE)
            out.append(
                ServerStatus(
                    name=name,
                    transport=config.transport,
                    state=state,
                    tool_count=len(session.tools) if session and state == READY else 0,
                    last_error=session.last_error if session else None,
                    pid=session.pid if session else None,
                    protocol_version=session.protocol_version if session else None,
                )
            )
        return out

    def process_count(self) -> int:
        """How many stdio server processes this worker has running now."""
        rt = self._runtime_
        if rt is None or rt.pid != os.getpid():
            return 0
        return sum(1 for s in rt.sessions.values() if s.pid is not None and is_alive(s.pid))

    def reload(self, configs: Iterable[ServerConfig], *, timeout: float = 30.0) -> None:
        """Apply new configs without a restart: start new servers, stop removed, restart changed."""
        new = {c.name: c for c in configs}
        with self._lock:
            old, self._configs = self._configs, new
            rt = self._runtime_ if self._live(self._runtime_) else None
        if rt is None or self._closed:
            return
        self._submit(rt, self._apply(rt, old, new), timeout, on_timeout=None)

    def close(self, *, timeout: float = 10.0) -> None:
        """Stop every session (stdio: stdin close, SIGTERM, SIGKILL), then the loop thread."""
        with self._lock:
            self._closed = True
            rt, self._runtime_ = self._runtime_, None
        if rt is None or not self._live(rt):
            return
        if threading.get_ident() == rt.thread.ident:
            raise RuntimeError("MCPHub.close() called from the hub's own loop thread")
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(rt, timeout), rt.loop)
        try:
            fut.result(timeout + 5.0)
        except TimeoutError:
            logger.warning("mcp hub: shutdown overran %.0fs", timeout)
        finally:
            rt.loop.call_soon_threadsafe(rt.loop.stop)
            rt.thread.join(timeout)
            if not rt.thread.is_alive():
                rt.loop.close()

    def _runtime(self) -> _Runtime:
        """This process's loop thread and sessions, created on first use (and after fork)."""
        rt = self._runtime_
        if self._live(rt):
            assert rt is not None
            return rt
        with self._lock:
            rt = self._runtime_
            if self._live(rt):
                assert rt is not None
                return rt
            if rt is not None:
                self._inherited.append(rt)
            rt = self._runtime_ = self._start_runtime()
            return rt

    @staticmethod
    def _live(rt: _Runtime | None) -> bool:
        return rt is not None and rt.pid == os.getpid() and rt.thread.is_alive()

    def _start_runtime(self) -> _Runtime:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="mcp-hub", daemon=True)
        rt = _Runtime(pid=os.getpid(), loop=loop, thread=thread, started=time.monotonic())
        rt.sessions = {
            name: ServerSession(cfg, loop, self._options) for name, cfg in self._configs.items()
        }
        thread.start()
        ready.wait()
        for session in rt.sessions.values():
            loop.call_soon_threadsafe(session.start)
        ref = weakref.ref(self)
        atexit.register(_close_at_exit, ref)
        logger.info("mcp hub started in pid %d with %d servers", rt.pid, len(rt.sessions))
        return rt

    def _submit(
        self, rt: _Runtime, coro: Any, wait: float, *, on_timeout: ToolResult | None
    ) -> Any:
        """Run a coroutine on the hub loop and wait for it from this (request) thread."""
        if threading.get_ident() == rt.thread.ident:
            coro.close()
            raise RuntimeError("the MCP hub's synchronous API was called from its own loop")
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, rt.loop)
        try:
            return fut.result(wait)
        except TimeoutError:
            # Cancelling the loop task makes the SDK send notifications/cancelled.
            fut.cancel()
            if on_timeout is None:
                raise
            return on_timeout

    async def _apply(
        self, rt: _Runtime, old: dict[str, ServerConfig], new: dict[str, ServerConfig]
    ) -> None:
        stale = [n for n in rt.sessions if n not in new or new[n] != old.get(n)]
        await asyncio.gather(*(rt.sessions[n].stop() for n in stale))
        sessions = {n: s for n, s in rt.sessions.items() if n not in stale}
        for name, cfg in new.items():
            if name not in sessions:
                sessions[name] = ServerSession(cfg, rt.loop, self._options)
                sessions[name].start()
        # Request threads iterate the dict without a lock: publish a new one, never mutate.
        rt.sessions = {n: sessions[n] for n in new}
        logger.info("mcp hub reloaded: %d servers, %d restarted or removed", len(new), len(stale))

    async def _shutdown(self, rt: _Runtime, timeout: float) -> None:
        sessions = list(rt.sessions.values())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(s.stop() for s in sessions))
        except TimeoutError:
            for s in sessions:
                s.kill_task()
        await rt.loop.shutdown_asyncgens()
        await rt.loop.shutdown_default_executor()

    def _forget_inherited(self) -> None:
        """In a forked child: the parent's loop thread does not exist here; start afresh."""
        self._lock = threading.Lock()
        if self._runtime_ is not None:
            self._inherited.append(self._runtime_)
            self._runtime_ = None


def _reset_after_fork(ref: weakref.ReferenceType[MCPHub]) -> None:
    hub = ref()
    if hub is not None:
        hub._forget_inherited()


def _close_at_exit(ref: weakref.ReferenceType[MCPHub]) -> None:
    hub = ref()
    if hub is not None and hub._runtime_ is not None and MCPHub._live(hub._runtime_):
        hub.close()
