"""No MCP server process outlives the gunicorn worker that started it."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.chat_setup import write_mcp_config
from tests.conftest import TEST_SECRET
from tests.live_server import gunicorn

pytestmark = pytest.mark.slow


def tagged_processes(tag: str) -> set[int]:
    """Pids whose environment carries ``tag``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"GATEWAY_TEST_TAG={tag}".encode() in environ.split(b"\0"):
            found.add(int(entry.name))
    return found


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def worker_pids(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def test_worker_exit_and_kill_leave_no_mcp_processes(make_database, tmp_path):
    tag = uuid.uuid4().hex
    config_path = write_mcp_config(tmp_path)
    config = json.loads(config_path.read_text())
    config["mcpServers"]["calc"]["env"] = {"GATEWAY_TEST_TAG": tag}
    config_path.write_text(json.dumps(config))
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": make_database(),
        "JWT_SECRET_KEY": TEST_SECRET,
        "MCP_CONFIG": str(config_path),
    }
    assert tagged_processes(tag) == set()
    with gunicorn(env, workers=2) as server:
        # Each worker warms up: one calc server per worker.
        assert wait_for(lambda: len(tagged_processes(tag)) == 2), tagged_processes(tag)
        workers = worker_pids(server.process.pid)
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        # The killed worker's server sees stdin close and exits; the master boots a new worker
        # whose warm-up starts a new server: still exactly one per worker.
        assert wait_for(
            lambda: (
                victim not in worker_pids(server.process.pid)
                and len(worker_pids(server.process.pid)) == 2
            )
        )
        assert wait_for(lambda: len(tagged_processes(tag)) == 2), tagged_processes(tag)
        assert requests.get(server.url + "/health", timeout=5).status_code == 200
        # HUP: new workers replace the old ones, which close their sessions on the way out.
        before = tagged_processes(tag)
        old_workers = worker_pids(server.process.pid)
        os.kill(server.process.pid, signal.SIGHUP)
        assert wait_for(lambda: not (worker_pids(server.process.pid) & old_workers))
        assert wait_for(
            lambda: len(tagged_processes(tag)) == 2 and not (tagged_processes(tag) & before)
        )
    # Graceful stop: worker_exit closes every session.
    assert wait_for(lambda: tagged_processes(tag) == set(), timeout=15), tagged_processes(tag)
