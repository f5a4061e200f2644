"""The real compose stack, driven through the Makefile as an operator drives it: `make test-stack`.

Not part of `make test` (its name is not test_*.py): it builds the image and runs containers
with whichever engine deploy/compose.py finds. In order: `make up` (built), health through
nginx, register, log in, a chat turn with a real MCP tool call (JSON and SSE, the offline
provider), `make status`, `make logs`, `make scale N=3` with nginx spreading requests over the
three, `make restart` reaching every replica, one at a time, under a paced load (0 failed
requests), one replica killed under the same load (0 failed requests), no route out of the
internal network, `make down` and `make up` again with the account still there, fresh secrets
next to the old volume refused before anything is
written, and `make down-volumes` leaving nothing.

The stack is a separate compose project (mcp-gateway-drill) on a free port, so that an
operator's own `make up` on the same machine is left alone. Figures (build and start times,
failures and slow requests under load, memory per replica) are printed: run with -s.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from tests.live_server import ROOT, free_port

pytestmark = pytest.mark.timeout(900)

PROJECT = "mcp-gateway-drill"
PASSWORD = "a long passphrase"
EMAIL = f"drill-{uuid.uuid4().hex[:8]}@example.com"


def _compose_module():
    sys.path.insert(0, str(ROOT / "deploy"))
    os.environ["COMPOSE_PROJECT_NAME"] = PROJECT
    spec = importlib.util.spec_from_file_location("compose", ROOT / "deploy" / "compose.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


compose = _compose_module()


@dataclass
class Stack:
    env: dict[str, str]
    url: str
    engine: str
    figures: dict[str, object] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def make(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        started = time.monotonic()
        result = subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = result.stdout + result.stderr
        print(f"\n$ make {' '.join(args)}  ({time.monotonic() - started:.1f} s)\n{output[-3000:]}")  # noqa: T201
        if check:
            assert result.returncode == 0, output[-3000:]
        return output

    def engine_output(self, *args: str) -> str:
        result = subprocess.run(
            [self.engine, *args], capture_output=True, text=True, timeout=120, check=True
        )
        return result.stdout

    def replicas(self) -> list[str]:
        return compose.containers(compose.detect(self.env), "gateway", running=True)

    def nginx(self) -> str:
        return compose.containers(compose.detect(self.env), "nginx")[0]

    def log_lines(self, container: str, *options: str) -> list[str]:
        """The container's output (stdout and stderr) as the engine keeps it."""
        logs = subprocess.run(
            [self.engine, "logs", *options, container],
            capture_output=True,
            text=True,
            timeout=180,
        )
        return (logs.stdout + logs.stderr).splitlines()


def _note(stack: Stack, name: str, value: object) -> None:
    stack.figures[name] = value
    print(f"[figure] {name}: {value}")  # noqa: T201


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "COMPOSE_FILE": os.pathsep.join(["compose.yaml", "tests/stack_compose.yaml"]),
        "GATEWAY_PORT": str(free_port()),
    }
    try:
        engine = compose.detect(env).engine
    except compose.EngineError as exc:
        pytest.fail(f"no container engine for the stack drill: {exc}", pytrace=False)
    drill = Stack(env, f"http://127.0.0.1:{env['GATEWAY_PORT']}", engine)
    try:
        yield drill
    finally:
        drill.make("down-volumes", check=False)
        print("\n".join(f"[figure] {k}: {v}" for k, v in drill.figures.items()))  # noqa: T201


def test_make_up_builds_and_serves_health_through_nginx(stack):
    started = time.monotonic()
    stack.make("up")
    _note(stack, "make up, first in this run (build included) s", round(time.monotonic() - started))
    response = requests.get(stack.url + "/health", timeout=5)
    assert response.status_code == 200
    assert response.headers["Server"] == "nginx"


def test_the_default_mcp_servers_start_inside_the_image(stack):
    # config/mcp_servers.json as shipped: time, and git reading the image's own repository.
    # Each worker of each replica runs its own; nginx spreads these probes over them. The
    # wait is long because on a crowded machine a Python MCP server takes its time to start.
    deadline, streak, last = time.monotonic() + 420, 0, None
    while streak < 8:
        last = requests.get(stack.url + "/health/ready", timeout=10).json()
        streak = streak + 1 if last["mcp"] == {"time": "ready", "git": "ready"} else 0
        assert time.monotonic() < deadline, f"MCP servers not ready: {last}"
        time.sleep(0.5 if streak else 3)


def test_register_log_in_and_chat_with_a_tool_call_as_json_and_sse(stack):
    registered = requests.post(
        stack.url + "/auth/register", json={"email": EMAIL, "password": PASSWORD}, timeout=10
    )
    assert registered.status_code == 201, registered.text
    stack.headers.update(_login(stack))

    answer = requests.post(
        stack.url + "/chat",
        headers=stack.headers,
        json={"message": "what time is it in timezone=Asia/Tokyo"},
        timeout=180,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["provider"] == "offline", body
    [call] = body["tool_calls"]
    assert (call["server"], call["tool"]) == ("time", "get_current_time"), call
    assert "Asia/Tokyo" in call["summary"], call

    with requests.post(
        stack.url + "/chat",
        headers=stack.headers,
        json={"message": "what time is it in timezone=Europe/Paris", "stream": True},
        stream=True,
        timeout=180,
    ) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = [
            line.split(b": ", 1)[1].decode()
            for line in stream.iter_lines()
            if line.startswith(b"event: ")
        ]
    assert events[0] == "routing" and events[-1] == "done", events
    assert "tool_call" in events and "tool_result" in events and "delta" in events, events


def _login(stack: Stack) -> dict[str, str]:
    tokens = requests.post(
        stack.url + "/auth/login", json={"email": EMAIL, "password": PASSWORD}, timeout=10
    )
    assert tokens.status_code == 200, tokens.text
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def test_status_and_logs_show_every_service(stack):
    status = stack.make("status")
    for service in ("postgres", "gateway", "nginx"):
        assert f"{PROJECT}_{service}_1" in status or f"{PROJECT}-{service}-1" in status, status
    assert status.count("(healthy)") + status.count("healthy") >= 3, status
    stack.env["FOLLOW"] = "0"
    logs = stack.make("logs")
    assert "Listening at" in logs or "Booting worker" in logs, logs[-2000:]
    assert "GET /health" in logs  # nginx's access log
    del stack.env["FOLLOW"]


def test_scale_to_three_and_nginx_spreads_requests_over_them(stack):
    started = time.monotonic()
    stack.make("scale", "N=3")
    _wait_healthy(stack, 3)
    _note(stack, "make scale N=3 until 3 healthy replicas s", round(time.monotonic() - started))
    # nginx learns of the new replicas when its DNS answer expires (resolver valid=).
    deadline = time.monotonic() + 60
    while len(_served_by(stack, 30, settling=True)) < 3:
        assert time.monotonic() < deadline, "nginx does not reach the three replicas"
    served = _served_by(stack, 60)
    assert len(served) == 3 and min(served.values()) >= 10, served
    _note(stack, "memory per replica", _memory(stack))


def _served_by(stack: Stack, count: int, *, settling: bool = False) -> dict[str, int]:
    """How many of ``count`` requests each replica answered (nginx's upstream address).

    ``settling``: the stack was just restarted, so a failed answer means "not yet" (an empty
    answer) rather than a failure; podman 4.3's DNS server pauses while containers restart.
    """
    marker = uuid.uuid4().hex[:8]
    for n in range(count):
        response = requests.get(
            stack.url + "/health", headers={"X-Request-ID": f"spread-{marker}-{n}"}, timeout=10
        )
        if settling and response.status_code != 200:
            time.sleep(1)
            return {}
        assert response.status_code == 200
    served: dict[str, int] = {}
    for line in stack.log_lines(stack.nginx(), "--tail", str(count * 4)):
        if f"request_id=spread-{marker}-" in line and "upstream=" in line:
            upstream = line.split("upstream=", 1)[1].split()[0]
            served[upstream] = served.get(upstream, 0) + 1
    return served


def _wait_healthy(stack: Stack, replicas: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if stack.engine == "podman":
            compose.tick_health(compose.detect(stack.env))
        states = [
            stack.engine_output("inspect", "--format", "{{.State.Health.Status}}", name).strip()
            for name in stack.replicas()
        ]
        if states.count("healthy") == replicas:
            return
        assert time.monotonic() < deadline, f"replicas not healthy: {states}"
        time.sleep(2)


def _memory(stack: Stack) -> dict[str, str]:
    out = stack.engine_output(
        "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *stack.replicas()
    )
    return dict(line.split(" ", 1) for line in out.strip().splitlines())


# Longer than nginx's resolver_timeout (30 s): a request that waits on compose's DNS (podman
# 4.3's stops answering for a while when containers start or stop) is answered, late, or gets
# nginx's 502; either way the stack's own answer is what is counted, and the slowest is noted.
CLIENT_TIMEOUT_SECONDS = 40


@dataclass
class PacedLoad:
    """Two clients, each sending 20 requests a second on new connections, reading the database.

    ``results``: (seconds from ``zero``, duration, status or exception name, request id).
    """

    stack: Stack
    name: str
    zero: float = field(default_factory=time.monotonic)
    results: list[tuple[float, float, int | str, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> PacedLoad:
        marker = uuid.uuid4().hex[:8]
        self._threads = [
            threading.Thread(target=self._lane, args=(f"{self.name}-{marker}-{lane}",))
            for lane in range(2)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _lane(self, prefix: str) -> None:
        n = 0
        while not self._stop.is_set():
            request_id = f"{prefix}-{n}"
            n += 1
            started = time.monotonic()
            try:
                response = requests.get(
                    self.stack.url + "/conversations",
                    headers={**self.stack.headers, "X-Request-ID": request_id},
                    timeout=CLIENT_TIMEOUT_SECONDS,
                )
                outcome: int | str = response.status_code
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            duration = time.monotonic() - started
            self.results.append((started - self.zero, duration, outcome, request_id))
            time.sleep(max(0.0, 0.05 - duration))

    def report(self, victim: str | None = None) -> list[int | str]:
        """Note the figures; explain failed and slow requests; return the failed outcomes."""
        failed = [outcome for _, _, outcome, _ in self.results if outcome != 200]
        slow = [duration for _, duration, _, _ in self.results if duration > 0.5]
        _note(
            self.stack,
            self.name,
            f"{len(self.results)} requests, {len(failed)} failed, {len(slow)} over 0.5 s "
            f"(slowest {max(d for _, d, _, _ in self.results):.2f} s)",
        )
        if failed or slow:
            _explain(self.stack, victim, self.results)
        return failed


def _all_replicas_reached(stack: Stack) -> None:
    # Every replica in nginx's DNS answer, after a scale or a restart.
    deadline = time.monotonic() + 60
    while len(_served_by(stack, 30, settling=True)) < 3:
        assert time.monotonic() < deadline, "nginx does not reach the three replicas"


def test_restart_under_paced_load_reaches_every_replica_and_fails_no_request(stack):
    names = stack.replicas()
    assert len(names) == 3, names
    _all_replicas_reached(stack)
    before = {
        n: stack.engine_output("inspect", "--format", "{{.State.StartedAt}}", n) for n in names
    }
    # One replica at a time, each warm before the next: nginx always has two that answer.
    with PacedLoad(stack, "restart under load") as load:
        stack.make("restart")
    _wait_healthy(stack, 3)
    after = {
        n: stack.engine_output("inspect", "--format", "{{.State.StartedAt}}", n) for n in names
    }
    assert all(after[n] != before[n] for n in names), (before, after)
    assert load.report() == []


def test_killing_a_replica_under_paced_load_fails_no_request(stack):
    _all_replicas_reached(stack)
    victim = stack.replicas()[-1]
    with PacedLoad(stack, "replica kill under load", zero=time.monotonic() + 3) as load:
        time.sleep(3)
        stack.engine_output("kill", "--signal", "KILL", victim)
        time.sleep(15)
    assert load.report(victim) == []


def _explain(stack: Stack, victim: str | None, results: list) -> None:
    """What nginx and the replicas logged for failed and slow requests; the victim's state."""
    for started, duration, outcome, request_id in results:
        if outcome != 200 or duration > 0.5:
            when = f"sent at {started:+.2f} s"
            print(f"[load] {request_id} {when}: {outcome} in {duration:.2f} s")  # noqa: T201
    wanted = {r[3] for r in results if r[2] != 200 or r[1] > 0.5}
    for line in stack.log_lines(stack.nginx(), "--since", "60s"):
        if any(w in line for w in wanted) or "[error]" in line or "[warn]" in line:
            print(f"[nginx] {line[:400]}")  # noqa: T201
    for replica in stack.replicas():
        for line in stack.log_lines(replica, "--since", "60s"):
            if any(w in line for w in wanted) or " WARNING " in line or " ERROR " in line:
                print(f"[{replica}] {line[:400]}")  # noqa: T201
    if victim is None:
        return
    state = stack.engine_output(
        "inspect", "--format", "{{.RestartCount}} {{.State.Status}} {{.State.StartedAt}}", victim
    )
    print(f"[victim] {victim}: restarts, status, started {state.strip()}")  # noqa: T201


def test_postgres_has_no_route_out_and_the_gateway_has_one(stack):
    # Read each container's routing table rather than sending a packet anywhere: on an internal
    # network the engine gives the container no default route, so nothing can leave it.
    gateway = stack.replicas()[0]
    postgres = compose.containers(compose.detect(stack.env), "postgres")[0]
    assert _has_default_route(stack.engine, gateway), "the gateway has no route out"
    assert not _has_default_route(stack.engine, postgres), "postgres has a default route"


def _has_default_route(engine: str, container: str) -> bool:
    table = subprocess.run(
        [engine, "exec", container, "cat", "/proc/net/route"],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    # Columns: Iface Destination Gateway Flags ...; destination 00000000 is the default route.
    return any(line.split()[1] == "00000000" for line in table.splitlines()[1:] if line.split())


def test_down_and_up_again_keeps_the_account(stack):
    stack.make("down")
    assert compose.containers(compose.detect(stack.env)) == []
    assert compose.networks(compose.detect(stack.env)) == []
    started = time.monotonic()
    stack.make("up")
    _note(stack, "make up, cached image, existing database s", round(time.monotonic() - started))
    assert _login(stack)


def test_fresh_secrets_next_to_the_old_database_are_refused_before_anything_is_written(stack):
    stack.make("down")
    secrets = ROOT / "secrets"
    password = secrets / "postgres_password"
    kept = password.read_bytes()
    before = sorted(p.name for p in secrets.iterdir())
    password.unlink()
    try:
        output = stack.make("up", check=False)
        assert "make down-volumes" in output and f"{PROJECT}_pgdata" in output, output
        assert sorted(p.name for p in secrets.iterdir()) == sorted(
            set(before) - {"postgres_password"}
        )
        assert compose.containers(compose.detect(stack.env)) == []
    finally:
        password.write_bytes(kept)
        password.chmod(0o644)


def test_down_volumes_leaves_nothing(stack):
    stack.make("down-volumes")
    detected = compose.detect(stack.env)
    assert compose.containers(detected) == []
    assert compose.networks(detected) == []
    assert not compose.volume_exists(detected, "pgdata")
    print(json.dumps(stack.figures, indent=2))  # noqa: T201
