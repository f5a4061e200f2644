"""Helpers for the MCP hub tests: configs for the fake server, HTTP server processes, child pids."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.mcp import ServerConfig, parse_mcp_config

FAKES = Path(__file__).resolve().parent
SERVER_SCRIPT = FAKES / "mcp_server.py"
REPO = FAKES.parent.parent


def server_config(name: str = "test", **entry: Any) -> ServerConfig:
    """One validated config entry; a stdio fake server unless ``entry`` says otherwise."""
    if "url" not in entry:
        entry.setdefault("command", "python")
        entry.setdefault("args", [str(SERVER_SCRIPT)])
    entry.setdefault("timeout", 5)
    entry.setdefault("connect_timeout", 10)
    return parse_mcp_config({"mcpServers": {name: entry}}, os.environ)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def http_server(
    port: int, argv: list[str] | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run an MCP server on 127.0.0.1:port until the block ends."""
    argv = argv or [sys.executable, str(SERVER_SCRIPT), "--http", str(port)]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        wait_port(port)
        yield proc
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def child_pids() -> set[int]:
    """Live (non-zombie) direct children of this process, from /proc."""
    me = str(os.getpid())
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[1].decode() == me and fields[0] != b"Z":
            pids.add(int(entry))
    return pids


def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
