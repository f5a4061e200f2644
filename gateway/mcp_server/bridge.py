"""An ASGI app on this worker's own event loop, served from WSGI request threads.

The MCP SDK's Streamable HTTP handler is ASGI; gunicorn's gthread workers are WSGI. One loop
thread per worker process (created lazily, after fork) runs the SDK's session manager for the
whole life of the worker; each HTTP request becomes one ASGI exchange on that loop, its
response messages flow back through a queue to the WSGI thread that streams them out.
Measured against a2wsgi and ``asyncio.run`` per request in ``docs/mcp-endpoint.md``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import queue
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

logger = logging.getLogger(__name__)

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
Lifespan = Callable[[], AbstractAsyncContextManager[None]]

# RFC 9110 section 7.6.1: connection-specific headers a WSGI app must not set.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade"}
)  # fmt: skip
# Response chunks the loop may queue ahead of a slow client before it waits.
CREDIT = 8
START_TIMEOUT = 60.0


class TooManyStreams(Exception):
    """Every slot for long-lived streams in this worker is taken (answer 503)."""


class BridgeClosed(Exception):
    """The bridge was closed (the worker is stopping)."""


class _Loop:
    """The loop thread of one process; an owner task enters and exits the app's lifespan."""

    def __init__(self, lifespan: Lifespan) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.exchanges: set[_Exchange] = set()
        self.long_lived = 0
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(
            target=self._run, args=(lifespan,), name="mcp-endpoint", daemon=True
        )
        self.thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the MCP endpoint's loop did not start within 30s")
        if self._failure is not None:
            raise RuntimeError(f"the MCP endpoint failed to start: {self._failure}")

    def _run(self, lifespan: Lifespan) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._owner(lifespan))
        finally:
            self.loop.close()

    async def _owner(self, lifespan: Lifespan) -> None:
        # The SDK's task group must be exited by the task that entered it.
        self._stop = asyncio.Event()
        try:
            async with lifespan():
                self._ready.set()
                await self._stop.wait()
                for exchange in list(self.exchanges):
                    exchange.abort()
        except Exception as exc:  # start-up failure: reported to the first request
            self._failure = exc
            logger.exception("MCP endpoint loop failed")
        finally:
            self._ready.set()
            current = asyncio.current_task()
            leftovers = [t for t in asyncio.all_tasks() if t is not current]
            for task in leftovers:
                task.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)

    def stop(self, timeout: float) -> None:
        if self._stop is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(timeout)

    def end_long_lived(self) -> None:
        """End open long-lived streams now; ordinary calls may finish."""
        for exchange in list(self.exchanges):
            if exchange.long_lived:
                exchange.abort()


class _Exchange:
    """One HTTP request on the loop side."""

    def __init__(self, scope: dict[str, Any], body: bytes, long_lived: bool) -> None:
        self.scope = scope
        self.body = body
        self.long_lived = long_lived
        self.out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.task: asyncio.Task[None] | None = None
        self.gone: asyncio.Event | None = None
        self.credit: asyncio.Semaphore | None = None

    async def run(self, app: ASGIApp, lp: _Loop) -> None:
        self.task = asyncio.current_task()
        self.gone = asyncio.Event()
        self.credit = asyncio.Semaphore(CREDIT)
        lp.exchanges.add(self)
        first = True

        async def receive() -> dict[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": self.body, "more_body": False}
            assert self.gone is not None
            await self.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            assert self.gone is not None and self.credit is not None
            if self.gone.is_set():
                raise OSError("the client is gone")
            if message["type"] == "http.response.body":
                await self.credit.acquire()  # back-pressure from a slow client
            self.out.put(message)

        try:
            await app(self.scope, receive, send)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            logger.exception("MCP endpoint: the request failed")
            self.out.put(exc)
        finally:
            lp.exchanges.discard(self)
            self.out.put(None)

    def abort(self) -> None:
        """Loop thread only: the client went away, or the worker is stopping."""
        if self.gone is not None:
            self.gone.set()
        if self.task is not None:
            self.task.cancel()


class _Body:
    """The WSGI response iterable; ``close()`` always runs, so a disconnect reaches the app."""

    def __init__(self, lp: _Loop, exchange: _Exchange, idle_timeout: float) -> None:
        self._lp = lp
        self._ex = exchange
        self._idle = idle_timeout
        self._done = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        while not self._done:
            try:
                message = self._ex.out.get(timeout=self._idle)
            except queue.Empty:
                logger.warning("MCP endpoint: no data for %.0fs; closing the stream", self._idle)
                break
            if not isinstance(message, dict):
                break
            if self._ex.credit is not None:
                self._lp.loop.call_soon_threadsafe(self._ex.credit.release)
            self._done = not message.get("more_body", False)
            if message.get("body"):
                return bytes(message["body"])
        self.close()
        raise StopIteration

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ex.long_lived:
            self._lp.long_lived -= 1
        if self._lp.thread.is_alive():
            action = self._ex.abort if not self._done else self._mark_gone
            self._lp.loop.call_soon_threadsafe(action)

    def _mark_gone(self) -> None:
        if self._ex.gone is not None:
            self._ex.gone.set()


class Bridge:
    """Serves ``app`` from WSGI threads; the loop starts on first use in each process."""

    def __init__(
        self,
        app: ASGIApp,
        lifespan: Lifespan,
        *,
        max_long_lived: int,
        idle_timeout: float = 120.0,
    ) -> None:
        self._app = app
        self._lifespan = lifespan
        self._max_long_lived = max_long_lived
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._loop: _Loop | None = None
        self._closed = False
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget(ref))

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._current().loop

    def start(self) -> None:
        """Start the loop now (gunicorn post_worker_init) rather than on the first request."""
        self._current()

    def _current(self) -> _Loop:
        lp = self._loop
        if lp is not None and lp.pid == os.getpid() and lp.thread.is_alive():
            return lp
        with self._lock:
            if self._closed:
                raise BridgeClosed("the MCP endpoint is stopping")
            lp = self._loop
            if lp is None or lp.pid != os.getpid() or not lp.thread.is_alive():
                lp = self._loop = _Loop(self._lifespan)
            return lp

    def handle(
        self,
        scope: dict[str, Any],
        body: bytes,
        context: Mapping[contextvars.ContextVar[Any], Any],
        *,
        long_lived: bool = False,
    ) -> tuple[int, list[tuple[str, str]], _Body]:
        """Run one request; returns the status, headers and a streaming body.

        Raises TooManyStreams when ``long_lived`` and the worker's cap is reached.
        """
        lp = self._current()
        if long_lived:
            with self._lock:
                if lp.long_lived >= self._max_long_lived:
                    raise TooManyStreams()
                lp.long_lived += 1
        exchange = _Exchange(scope, body, long_lived)
        ctx = contextvars.copy_context()
        for var, value in context.items():
            ctx.run(var.set, value)

        def spawn() -> None:
            lp.loop.create_task(exchange.run(self._app, lp), context=ctx)

        lp.loop.call_soon_threadsafe(spawn)
        body_iter = _Body(lp, exchange, self._idle_timeout)
        try:
            start = exchange.out.get(timeout=START_TIMEOUT)
        except queue.Empty:
            body_iter.close()
            raise TimeoutError("the MCP endpoint did not answer in time") from None
        if not isinstance(start, dict) or start.get("type") != "http.response.start":
            body_iter.close()
            if isinstance(start, BaseException):
                raise RuntimeError("the MCP endpoint failed") from start
            raise RuntimeError("the MCP endpoint closed the request without a response")
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in start.get("headers", [])
            if k.decode("latin-1").lower() not in HOP_BY_HOP
        ]
        return int(start["status"]), headers, body_iter

    def end_long_lived(self) -> None:
        """End this worker's long-lived streams (the worker is stopping)."""
        lp = self._loop
        if lp is not None and lp.pid == os.getpid() and lp.thread.is_alive():
            lp.loop.call_soon_threadsafe(lp.end_long_lived)

    def close(self, timeout: float = 10.0) -> None:
        """Exit the SDK lifespan and stop the loop (gunicorn worker_exit)."""
        with self._lock:
            self._closed = True
            lp, self._loop = self._loop, None
        if lp is not None and lp.pid == os.getpid():
            lp.stop(timeout)

    def _forget_inherited(self) -> None:
        self._lock = threading.Lock()
        self._loop = None


def _forget(ref: weakref.ReferenceType[Bridge]) -> None:
    bridge = ref()
    if bridge is not None:
        bridge._forget_inherited()
