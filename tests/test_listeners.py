"""A starting gateway refuses connections until a worker is warm (gateway/listeners.py).

Behind nginx, a replica that the engine restarts must not take connections it will answer only
after its warm-up: nginx would wait its read timeout (minutes) instead of trying another
replica, as the stack drill's killed replica showed (two requests held for 15 s).
"""

from __future__ import annotations

import json
import socket
import sys
import time

import pytest
import requests

from tests.chat_setup import MCP_SERVER
from tests.conftest import TEST_SECRET
from tests.live_server import gunicorn, wait_until_healthy

pytestmark = pytest.mark.slow

SLOW_START_SECONDS = 6


def test_connections_are_refused_while_the_first_worker_warms_then_served(make_database, tmp_path):
    # An MCP server that takes a while to start, as Python servers do on a crowded machine:
    # warm-up waits for it.
    config = tmp_path / "mcp_servers.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "slow": {
                        "command": "sh",
                        "args": [
                            "-c",
                            f'sleep {SLOW_START_SECONDS}; exec "$0" "$1"',
                            sys.executable,
                            str(MCP_SERVER),
                        ],
                    }
                }
            }
        )
    )
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": make_database(),
        "JWT_SECRET_KEY": TEST_SECRET,
        "MCP_CONFIG": str(config),
    }
    with gunicorn(env, workers=1, wait_healthy=False) as server:
        port = int(server.url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while "refusing connections until a worker is warm" not in server.log():
            assert server.process.poll() is None and time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        refused = 0
        while "worker warm in" not in server.log():
            with socket.socket() as probe:
                probe.settimeout(2)
                try:
                    probe.connect(("127.0.0.1", port))
                except ConnectionRefusedError:
                    refused += 1
                else:
                    # Accepted while no worker is warm: only the moment the worker resumes.
                    assert "worker warm in" in server.log(), "a connection was taken while warming"
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        assert refused >= 3, refused  # the probes did run inside the warm-up window
        wait_until_healthy(server, 30)
        ready = requests.get(server.url + "/health/ready", timeout=5).json()
        assert ready["mcp"] == {"slow": "ready"}, ready
