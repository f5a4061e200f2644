"""stdio server processes: their stderr into our log, and their pids (the SDK exposes neither)."""

from __future__ import annotations

import asyncio
import logging
import os
import time

logger = logging.getLogger(__name__)

_MAX_LINE = 2000


class StderrPump:
    """Read a child's stderr pipe on the hub loop and log it line by line, rate-limited.

    The write end goes to the child; the read end is watched with ``loop.add_reader``, so no
    extra thread is needed and a chatty server cannot block on a full pipe.
    """

    def __init__(
        self,
        server: str,
        loop: asyncio.AbstractEventLoop,
        *,
        rate: float = 20.0,
        burst: int = 100,
    ) -> None:
        self.server = server
        self._loop = loop
        self._rfd, wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        self.writer = os.fdopen(wfd, "w", encoding="utf-8")
        self.inode = os.fstat(wfd).st_ino
        self._buffer = b""
        self._rate = rate
        self._burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._dropped = 0
        self._open = True
        loop.add_reader(self._rfd, self._on_readable)

    def close_writer(self) -> None:
        """Drop our copy of the write end once the child holds its own, so its exit gives EOF."""
        if not self.writer.closed:
            self.writer.close()

    def close(self) -> None:
        """Flush what is buffered and stop watching the pipe."""
        self.close_writer()
        if not self._open:
            return
        self._open = False
        self._loop.remove_reader(self._rfd)
        self._drain()
        os.close(self._rfd)
        if self._buffer:
            self._emit(self._buffer)
            self._buffer = b""
        self._report_dropped()

    def _drain(self) -> bool:
        """Read everything available now; True at EOF."""
        while True:
            try:
                chunk = os.read(self._rfd, 65536)
            except BlockingIOError:
                return False
            except OSError:
                return True
            if not chunk:
                return True
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                self._emit(line)
            if len(self._buffer) > _MAX_LINE:
                self._emit(self._buffer)
                self._buffer = b""

    def _on_readable(self) -> None:
        if self._drain():
            self.close()

    def _emit(self, raw: bytes) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            self._dropped += 1
            return
        self._tokens -= 1
        self._report_dropped()
        line = raw.decode("utf-8", errors="replace").rstrip()[:_MAX_LINE]
        if line:
            logger.info("mcp server %s: %s", self.server, line)

    def _report_dropped(self) -> None:
        if self._dropped:
            logger.warning(
                "mcp server %s: %d stderr lines dropped (rate limit)", self.server, self._dropped
            )
            self._dropped = 0


def find_child_pid(stderr_inode: int) -> int | None:
    """The pid of our child whose stderr is the pipe with this inode; None off Linux or if gone."""
    me = os.getpid()
    target = f"pipe:[{stderr_inode}]"
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            # The command name may hold spaces and parentheses; fields after the last ')' are safe.
            ppid = int(stat.rsplit(b")", 1)[1].split()[1])
            if ppid == me and os.readlink(f"/proc/{entry}/fd/2") == target:
                return int(entry)
        except (OSError, ValueError, IndexError):
            continue
    return None


def is_alive(pid: int) -> bool:
    """Whether a child pid still runs (and is not a zombie awaiting reaping)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
