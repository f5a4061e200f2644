"""Run the real gateway under gunicorn for end-to-end tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def gunicorn(
    env: Mapping[str, str],
    *,
    workers: int = 2,
    threads: int = 4,
    port: int | None = None,
    stop_timeout: float = 30,
    start_timeout: float = 120,
    wait_healthy: bool = True,
) -> Iterator[LiveServer]:
    """Start gunicorn with gunicorn.conf.py, wait for /health (unless ``wait_healthy`` is
    false), stop it (SIGTERM) afterwards."""
    port = port or free_port()
    full_env = {
        **os.environ,
        "BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        # No MCP servers and no embedding model unless a test asks for them: faster workers.
        "MCP_CONFIG": str(ROOT / "tests" / "fixtures" / "mcp_none.json"),
        "ROUTING_SEMANTIC": "false",
        **env,
    }
    with tempfile.TemporaryDirectory() as tmp:
        # Our own metrics directory, inside the run's temporary one: a shared /tmp may be swept
        # of gateway-metrics-* directories by other jobs on the machine while the server runs.
        full_env["PROMETHEUS_MULTIPROC_DIR"] = str(Path(tmp) / "metrics")
        os.mkdir(full_env["PROMETHEUS_MULTIPROC_DIR"])
        log_path = Path(tmp) / "gunicorn.log"
        with open(log_path, "w") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=ROOT,
                env=full_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
        try:
            if wait_healthy:
                wait_until_healthy(server, start_timeout)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def gunicorn_start_up(
    env: Mapping[str, str], *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run gunicorn in the foreground, for start-ups that must fail; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def served_by(server: LiveServer, method: str, path: str, status: int) -> set[str]:
    """Pids of the workers whose access log shows this request line."""
    pattern = rf"\[(\d+)\] gateway\.access: {method} {re.escape(path)} {status} "
    return set(re.findall(pattern, server.log()))


def wait_all_workers_serving(server: LiveServer, workers: int, timeout: float = 30) -> None:
    """Send parallel /health requests until every worker has answered one."""
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(8) as pool:
        while len(served_by(server, "GET", "/health", 200)) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every worker answered:\n{server.log()}")
            list(pool.map(lambda _: requests.get(server.url + "/health", timeout=5), range(16)))


def wait_until_healthy(server: LiveServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited early:\n{server.log()}")
        try:
            if requests.get(server.url + "/health", timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or refusing while its first worker warms up
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not become healthy:\n{server.log()}")


def bearer_headers(server: LiveServer, email: str) -> dict[str, str]:
    """Register ``email`` over HTTP and log in: the ``Authorization`` header of its token."""
    body = {"email": email, "password": "a long enough password"}
    requests.post(server.url + "/auth/register", json=body, timeout=10)
    token = requests.post(server.url + "/auth/login", json=body, timeout=10).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def api_key_with_ready_tools(server: LiveServer, email: str) -> str:
    """Register ``email``, make a personal API key over HTTP, and wait until an MCP server of
    the gateway is ready (they start in the background), so its tools are offered."""
    body = {"email": email, "password": "a long enough password"}
    requests.post(server.url + "/auth/register", json=body, timeout=10)
    token = requests.post(server.url + "/auth/login", json=body, timeout=10).json()["access_token"]
    key = requests.post(
        server.url + "/auth/keys",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": email},
        timeout=10,
    ).json()["key"]
    auth = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        servers = requests.get(server.url + "/mcp/servers", headers=auth, timeout=10).json()
        if any(s["state"] == "ready" for s in servers["servers"]):
            break
        time.sleep(0.5)
    return key
