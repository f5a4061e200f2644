"""The compose topology with real processes: nginx (deploy/nginx.conf) over two gunicorns.

Both gateways run in production mode against one fresh PostgreSQL database, with their
secrets in files, exactly as compose starts them; only the container engine is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests

from tests import stream_app
from tests.live_server import ROOT, LiveServer, free_port, gunicorn
from tests.nginx import Nginx, nginx
from tests.topology import kill_instance, production_env, started_together

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


@dataclass
class Stack:
    proxy: Nginx
    gateways: list[LiveServer]

    def gateway_logs(self) -> list[str]:
        return [gateway.log() for gateway in self.gateways]


def eventually(condition: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture(scope="module")
def stack(make_database, tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("deploy")
    # Production refuses to start without a provider that can answer: the offline one here.
    env = {**production_env(make_database(), tmp / "secrets"), "LLM_ALLOW_OFFLINE": "true"}
    with started_together([gunicorn(env, workers=2, threads=4) for _ in range(2)]) as gateways:
        upstreams = [gateway.url.removeprefix("http://") for gateway in gateways]
        with nginx(upstreams, tmp / "nginx") as proxy:
            yield Stack(proxy, gateways)


def test_health_answers_through_nginx_without_naming_the_servers(stack):
    response = requests.get(stack.proxy.url + "/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["Server"] == "nginx"  # server_tokens off; gunicorn's is hidden
    assert "gunicorn" not in str(response.headers).lower()


def test_the_schema_is_created_once_by_two_instances_starting_together(stack):
    logs = "".join(stack.gateway_logs())
    assert logs.count("Database tables created successfully") == 1, logs
    assert logs.count("Database tables up to date") == 1, logs


def test_requests_are_spread_over_both_instances(stack):
    ids = [f"spread-{n}" for n in range(20)]
    for request_id in ids:
        response = requests.get(
            stack.proxy.url + "/health", headers={"X-Request-ID": request_id}, timeout=5
        )
        assert response.status_code == 200
    logs = stack.gateway_logs()
    served = [{i for i in ids if f"[{i}]" in log} for log in logs]
    assert all(served), f"one instance got nothing: {[len(s) for s in served]}"
    assert served[0] | served[1] == set(ids)
    assert not served[0] & served[1]  # each request served once


def test_the_callers_request_id_reaches_the_gateway_and_comes_back(stack):
    response = requests.get(
        stack.proxy.url + "/health", headers={"X-Request-ID": "client-id-42"}, timeout=5
    )
    assert response.headers["X-Request-ID"] == "client-id-42"
    assert any("[client-id-42]" in log for log in stack.gateway_logs())


def test_nginx_gives_a_request_id_when_the_caller_sends_none(stack):
    response = requests.get(stack.proxy.url + "/health/ready", timeout=5)
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    # nginx logged the id it generated (just after answering), and the gateway the same one.
    assert eventually(lambda: f"request_id={request_id}" in stack.proxy.log())
    assert sum(f"[{request_id}]" in log for log in stack.gateway_logs()) == 1


def test_a_body_over_the_limit_gets_413_in_the_envelope_from_nginx(stack):
    response = requests.post(
        stack.proxy.url + "/auth/register",
        data=b"x" * (2 * MIB),
        headers={"Content-Type": "application/json", "X-Request-ID": "too-big-1"},
        timeout=10,
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["type"] == "request_entity_too_large"
    assert set(response.json()["error"]) == {"type", "message"}
    assert response.headers["X-Request-ID"] == "too-big-1"
    assert not any("too-big-1" in log for log in stack.gateway_logs())  # stopped at nginx


def test_a_body_at_the_limit_reaches_the_gateway(stack):
    # nginx's client_max_body_size and the gateway's MAX_REQUEST_BYTES agree: 1 MiB passes both.
    response = requests.post(
        stack.proxy.url + "/auth/login",
        data=b"x" * MIB,
        headers={"Content-Type": "application/json", "X-Request-ID": "at-limit-1"},
        timeout=10,
    )
    assert response.status_code == 400  # not JSON: the gateway read it and said so
    assert response.json()["error"]["type"] == "bad_request"
    assert any("[at-limit-1]" in log for log in stack.gateway_logs())


def test_metrics_are_not_served_through_nginx(stack):
    for path in ("/metrics", "/%6Detrics", "//metrics"):
        response = requests.get(stack.proxy.url + path, timeout=5)
        assert response.status_code == 404, path
        assert response.json()["error"]["type"] == "not_found"
    assert requests.get(stack.gateways[0].url + "/metrics", timeout=5).status_code == 200


def test_gateway_errors_pass_through_untouched(stack):
    response = requests.get(stack.proxy.url + "/no-such-page", timeout=5)
    assert response.status_code == 404
    assert "requested URL was not found" in response.json()["error"]["message"]  # werkzeug's
    assert "," not in response.headers["X-Request-ID"]  # one id, not nginx's and the gateway's


# These two run last in this module: they kill the instances.
def test_requests_keep_succeeding_when_one_instance_dies(stack):
    dead, alive = stack.gateways
    kill_instance(dead)
    for n in range(10):
        response = requests.get(
            stack.proxy.url + "/health", headers={"X-Request-ID": f"after-kill-{n}"}, timeout=5
        )
        assert response.status_code == 200
        email = f"survivor{n}@example.com"
        response = requests.post(
            stack.proxy.url + "/auth/register",
            json={"email": email, "password": "a long passphrase"},
            timeout=5,
        )
        assert response.status_code == 201, response.text
    assert all(f"[after-kill-{n}]" in alive.log() for n in range(10))


def test_nginx_answers_502_in_the_envelope_when_no_instance_is_left(stack):
    for gateway in stack.gateways:
        if gateway.process.poll() is None:
            kill_instance(gateway)
    response = requests.get(stack.proxy.url + "/health", timeout=10)
    assert response.status_code == 502
    assert response.json() == {
        "error": {
            "type": "bad_gateway",
            "message": "The gateway is not reachable; retry shortly.",
        }
    }
    assert response.headers["X-Request-ID"]


@contextmanager
def stream_server() -> Iterator[str]:
    """tests/stream_app.py under gunicorn (gthread, as the gateway runs)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", "2"]
        + ["-b", f"127.0.0.1:{port}", "tests.stream_app:app"],
        # Not the checkout: gunicorn would load its gunicorn.conf.py (the gateway's hooks).
        cwd=ROOT / "tests",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.head(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the stream app did not start") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_an_event_stream_is_passed_on_as_it_is_written(tmp_path):
    with stream_server() as upstream, nginx([upstream], tmp_path / "nginx") as proxy:
        started = time.monotonic()
        arrivals = []
        with requests.get(proxy.url + "/events", stream=True, timeout=10) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            for chunk in response.iter_content(chunk_size=None):
                arrivals += [time.monotonic() - started] * chunk.count(b"data: ")
    assert len(arrivals) == stream_app.EVENTS
    span = stream_app.INTERVAL * (stream_app.EVENTS - 1)
    # Buffered, every event would arrive together, after the last one was written.
    assert arrivals[-1] - arrivals[0] > span * 0.8, arrivals
