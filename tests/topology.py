"""The compose topology without containers: production settings, instances started together,
and an instance that crashes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

from tests.live_server import LiveServer


def production_env(database_url: str, secrets: Path) -> dict[str, str]:
    """What compose gives the gateway container: production, file secrets, one proxy."""
    secrets.mkdir()
    (secrets / "database_url").write_text(database_url + "\n")
    (secrets / "jwt_secret_key").write_text(os.urandom(48).hex() + "\n")
    return {
        "ENVIRONMENT": "production",
        "DATABASE_URL": "",
        "DATABASE_URL_FILE": str(secrets / "database_url"),
        "JWT_SECRET_KEY": "",
        "JWT_SECRET_KEY_FILE": str(secrets / "jwt_secret_key"),
        "TRUSTED_PROXIES": "1",
        "DB_CONNECT_DEADLINE": "15",
    }


@contextmanager
def started_together(managers: Sequence[AbstractContextManager]) -> Iterator[list]:
    """Enter the context managers at the same time (threads); exit all of them afterwards."""
    with ExitStack() as stack:
        with ThreadPoolExecutor(len(managers)) as pool:
            futures = [pool.submit(manager.__enter__) for manager in managers]
        values, errors = [], []
        for manager, future in zip(managers, futures, strict=True):
            try:
                values.append(future.result())
                stack.push(manager)
            except Exception as exc:  # the other one must still be stopped
                errors.append(exc)
        if errors:
            raise errors[0]
        yield values


def children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
        if parent == pid:
            children.append(int(stat.parent.name))
    return children


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").partition("=")[::2] for item in raw if b"=" in item)


def kill_instance(server: LiveServer) -> None:
    """SIGKILL a gunicorn master and its workers at once: a crashed instance.

    Returns once its port refuses connections. Until then a connection can still be accepted
    and then reset (a killed multi-threaded worker releases its sockets only when its last
    thread has exited), and nginx rightly does not resend a POST it has already sent.
    """
    workers = children(server.process.pid)
    metrics_dir = environ_of(server.process.pid).get("PROMETHEUS_MULTIPROC_DIR")
    for pid in [server.process.pid, *workers]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.process.wait(timeout=10)
    # A killed master cannot remove its metrics directory (gunicorn.conf.py's on_exit): do it,
    # and only that one: other gunicorns (other tests, other runs) may be using theirs.
    if metrics_dir and Path(metrics_dir).name.startswith("gateway-metrics-"):
        shutil.rmtree(metrics_dir, ignore_errors=True)
    host, port = server.url.removeprefix("http://").split(":")
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except ConnectionRefusedError:
            return
        assert time.monotonic() < deadline, "the killed instance still accepts connections"
        time.sleep(0.01)
