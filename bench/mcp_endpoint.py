# ruff: noqa: E501  (a benchmark driver: long table rows)
"""mcp-endpoint: what ``/mcp`` adds to a tool call over calling the MCP server directly.

Run from the repo root: ``.venv/bin/python -m bench.mcp_endpoint [--calls 300] [--rounds 3]``.
Starts the gateway under gunicorn (production settings, a throwaway PostgreSQL database, a real
API key, mcp-server-time over stdio), then calls ``get_current_time`` three ways, each on its own
warm SDK session: directly over stdio, and through ``/mcp`` as ``time__get_current_time`` with the
2026-07-28 and the handshake-era (2025-11-25) protocol. Blocks alternate within a round; the
added latency is the median over rounds of the difference of the medians (and of the p99s).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import psycopg2
import requests
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["-m", "mcp_server_time", "--local-timezone", "UTC"]
ARGUMENTS = {"timezone": "Asia/Tokyo"}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Session:
    """An SDK client owned by one task on its own loop thread; calls are timed in the loop."""

    def __init__(self, connect: Any, tool: str) -> None:
        self.tool = tool
        self._connect = connect
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.done = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)
        self.calls(1)

    async def _serve(self) -> None:
        async with self._connect() as client:
            await client.list_tools()
            while True:
                n, reply = await self.queue.get()
                if n is None:
                    return
                samples = []
                try:
                    for _ in range(n):
                        start = time.perf_counter()
                        result = await client.call_tool(self.tool, ARGUMENTS)
                        samples.append(time.perf_counter() - start)
                        if result.is_error:
                            raise RuntimeError(result.content[0].text)
                except Exception as exc:
                    reply.set_exception(exc)
                    continue
                reply.set_result(samples)

    def calls(self, n: int | None) -> list[float]:
        reply: concurrent.futures.Future = concurrent.futures.Future()
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (n, reply))
        if n is None:
            self.done.result(30)
            return []
        return reply.result(120)

    def close(self) -> None:
        try:
            self.calls(None)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def direct_client() -> Client:
    return Client(StdioServerParameters(command=sys.executable, args=ARGS), cache=None)


def gateway_client(url: str, key: str, mode: str) -> Any:
    def connect() -> Any:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
        return _Owned(
            http, Client(streamable_http_client(url, http_client=http), mode=mode, cache=None)
        )

    return connect


class _Owned:
    """``async with`` over the HTTP client and the MCP client together."""

    def __init__(self, http: httpx2.AsyncClient, client: Client) -> None:
        self.http, self.client = http, client

    async def __aenter__(self) -> Client:
        await self.http.__aenter__()
        return await self.client.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.client.__aexit__(*exc)
        finally:
            await self.http.__aexit__(*exc)


def stats(samples: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), ms[max(0, int(len(ms) * 0.99) - 1)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gateway(pg: str, tmp: Path) -> tuple[subprocess.Popen, str, str, str]:
    """The gateway on a free port: its process, URL, an admin API key, and the database name."""
    name = f"bench_mcp_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(pg)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    config = tmp / "mcp_servers.json"
    config.write_text(json.dumps({"mcpServers": {"time": {"command": "python", "args": ARGS}}}))
    password = secrets.token_urlsafe(16)
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "DATABASE_URL": pg.rpartition("/")[0] + "/" + name,
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "ADMIN_EMAIL": "bench@example.com",
        "ADMIN_PASSWORD": password,
        "MCP_CONFIG": str(config),
        "MCP_ENDPOINT_RATE_LIMIT": "0",
        # /mcp calls no model; production refuses to start without a provider unless told so.
        "LLM_ALLOW_OFFLINE": "true",
        "BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "16",
        "LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp),
    }
    log = open(tmp / "gunicorn.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(url + "/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError((tmp / "gunicorn.log").read_text()[-3000:])
            time.sleep(0.2)
        login = {"email": "bench@example.com", "password": password}
        token = requests.post(url + "/auth/login", json=login, timeout=30).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        key = requests.post(url + "/auth/keys", json={"name": "bench"}, headers=auth, timeout=30)
    except BaseException:
        stop(proc)
        drop_database(pg, name)
        raise
    return proc, url, key.json()["key"], name


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def drop_database(pg: str, name: str) -> None:
    admin = psycopg2.connect(pg)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        proc, url, key, database = start_gateway(args.pg, Path(tmp))
        sessions: dict[str, Session] = {}
        rows = []
        try:
            sessions["direct"] = Session(direct_client, "get_current_time")
            for mode in ("2026-07-28", "legacy"):
                deadline = time.monotonic() + 60
                while True:  # the workers connect mcp-server-time in the background
                    try:
                        sessions[mode] = Session(
                            gateway_client(url + "/mcp", key, mode), "time__get_current_time"
                        )
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(1)
            for session in sessions.values():
                session.calls(50)
            say(
                f"{'round':>5} {'direct p50':>10} {'modern p50':>10} {'legacy p50':>10} {'direct p99':>10} {'modern p99':>10} {'legacy p99':>10}   ms"
            )
            for rnd in range(1, args.rounds + 1):
                samples: dict[str, list[float]] = {name: [] for name in sessions}
                for _ in range(10):  # alternate blocks within the round
                    for name, session in sessions.items():
                        samples[name] += session.calls(args.calls // 10)
                figures = {name: stats(s) for name, s in samples.items()}
                d, m, lg = figures["direct"], figures["2026-07-28"], figures["legacy"]
                rows.append(
                    {
                        "round": rnd,
                        "direct_p50_ms": d[0],
                        "direct_p99_ms": d[1],
                        "modern_p50_ms": m[0],
                        "modern_p99_ms": m[1],
                        "legacy_p50_ms": lg[0],
                        "legacy_p99_ms": lg[1],
                        "added_ms": m[0] - d[0],
                        "added_p99_ms": m[1] - d[1],
                        "added_legacy_ms": lg[0] - d[0],
                        "added_legacy_p99_ms": lg[1] - d[1],
                    }
                )
                say(
                    f"{rnd:>5} {d[0]:10.3f} {m[0]:10.3f} {lg[0]:10.3f} {d[1]:10.3f} {m[1]:10.3f} {lg[1]:10.3f}"
                )
        finally:
            for session in sessions.values():
                session.close()
            stop(proc)
            drop_database(args.pg, database)
    result = {key: statistics.median(r[key] for r in rows) for key in rows[0] if key != "round"}
    say(
        f"median over rounds: /mcp (2026-07-28) adds p50 {result['added_ms']:+.3f} ms, p99 {result['added_p99_ms']:+.3f} ms; "
        f"handshake era adds p50 {result['added_legacy_ms']:+.3f} ms, p99 {result['added_legacy_p99_ms']:+.3f} ms"
    )
    say("BENCH_JSON " + json.dumps({**result, "rounds": rows}))


if __name__ == "__main__":
    main()
