# ruff: noqa: E501, C901  (a benchmark driver: long table rows, one long main loop)
"""``make bench``: the gateway side by side with the upstream directly, a reference arm and peers.

Starts, all on 127.0.0.1: the fake LLM upstream (nginx + njs, ``bench/peers/fake_upstream``),
the gateway under gunicorn with its production configuration (ENVIRONMENT=production, a strong
JWT secret, a throwaway PostgreSQL database, a real API key, routing on, mcp-server-time over
stdio), and the reference arm (``bench/reference_app.py``) on the same gunicorn settings. Then
it runs interleaved rounds of the scenarios against every target, with wrk and
``bench/stream_load.py``, and writes ``bench/results/latest.{json,md}``.

``--peers`` adds LiteLLM and ContextForge when their start scripts have run (``make
bench-peers`` does that). Only ratios measured in the same run mean anything on a shared box.

Run from the repository root: ``.venv/bin/python -m bench.run [--rounds 3] [--scale 1]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "bench"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# "@N@" becomes a number unique to each request (wrk_post.lua, stream_load.py): the same prompt
# every time would let the router's query-vector cache answer, which real traffic never does.
PROMPT = "Say hello in one short sentence. (request @N@)"
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant used for benchmarks."},
    {"role": "user", "content": PROMPT},
]
# Upstream pacing of the streaming scenarios (the fake reads it from the model name).
TTFT_MODEL, TTFT_PACE_MS = "fake-c20", 20
HELD_MODEL, HELD_PACE_MS = "fake-c1000-n6", 1000

# name: (kind, model, connections, wrk threads, seconds, targets that take part)
SCENARIOS: dict[str, dict[str, Any]] = {
    "overhead-c1": dict(tool="wrk", model="fake", c=1, t=1, d=10),
    "maxrps-c32": dict(tool="wrk", model="fake", c=32, t=2, d=10),
    "capacity-500ms-c200": dict(tool="wrk", model="fake-d500", c=200, t=2, d=15, ideal=400.0),
    "capacity-500ms-c1000": dict(tool="wrk", model="fake-d500", c=1000, t=2, d=15, ideal=2000.0),
    "stream-ttft-c20": dict(tool="stream", model=TTFT_MODEL, c=20, d=15),
    "streams-held-c1000": dict(tool="held", model=HELD_MODEL, c=1000, d=0),
}
# POST /chat stores every turn; it takes part where the brief asks for it and in the cheap runs.
CHAT_SCENARIOS = {"overhead-c1", "maxrps-c32", "stream-ttft-c20"}
HEAVY = {"capacity-500ms-c200", "capacity-500ms-c1000", "streams-held-c1000"}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Target:
    name: str
    url: str
    token: str | None = None
    api: str = "openai"  # openai: /v1/chat/completions body; chat: the gateway's POST /chat
    pid: int | None = None
    scenarios: set[str] = field(default_factory=lambda: set(SCENARIOS))

    def request(self, model: str, *, stream: bool) -> tuple[list[str], bytes, str]:
        headers = [f"Authorization: Bearer {self.token}"] if self.token else []
        if self.api == "chat":
            body: dict[str, Any] = {"message": PROMPT, "model": model}
            expect = "event: done" if stream else '"message"'
        else:
            body = {"model": model, "messages": MESSAGES, "max_tokens": 32}
            expect = "[DONE]" if stream else '"choices"'
        if stream:
            body["stream"] = True
        return headers, json.dumps(body).encode(), expect


class Processes:
    """Everything this run started, stopped by process group in reverse order."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(
        self, name: str, cmd: list[str], env: dict[str, str], cwd: Path = ROOT
    ) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 (kept open for the child)
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for name, proc in reversed(self.started):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(40)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            say(f"# stopped {name}")


def http(url: str, body: Any = None, *, token: str | None = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode()


def wait_http(
    url: str, seconds: float, proc: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            sys.exit(f"process for {url} exited early:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, urllib.error.URLError):
            time.sleep(0.25)
    sys.exit(f"timeout waiting for {url}")


def port_busy(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- process accounting -------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, utime+stime+cutime+cstime ticks, rss pages)."""
    table = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            s = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        f = s[s.rindex(")") + 2 :].split()
        table[int(p)] = (int(f[1]), sum(int(x) for x in f[11:15]), int(f[21]))
    return table


def tree(root: int | None, table: dict[int, tuple[int, int, int]]) -> list[int]:
    if not root or root not in table:
        return []
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(root: int | None) -> int | None:
    table = _proc_table()
    pids = tree(root, table)
    return sum(table[p][1] for p in pids) if pids else None


def gunicorn_workers(master: int | None) -> list[int]:
    """The master's direct children whose command line is gunicorn (not MCP servers)."""
    out = []
    for pid, (ppid, _, _) in _proc_table().items():
        if ppid == master:
            with contextlib.suppress(OSError):
                if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    out.append(pid)
    return out


class RssSampler(threading.Thread):
    """Peak resident memory of each gunicorn worker while a run lasts."""

    def __init__(self, master: int | None) -> None:
        super().__init__(daemon=True)
        self.master, self.peak, self.stop = master, {}, threading.Event()
        self.threads_peak: dict[int, int] = {}
        self.pss_peak: dict[int, float] = {}
        self.uss_peak: dict[int, float] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in gunicorn_workers(self.master):
                with contextlib.suppress(OSError, ValueError):
                    status = Path(f"/proc/{pid}/status").read_text()
                    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
                    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
                    self.peak[pid] = max(self.peak.get(pid, 0.0), rss)
                    self.threads_peak[pid] = max(self.threads_peak.get(pid, 0), threads)
                    pss, uss = shared_memory_mb(pid)
                    self.pss_peak[pid] = max(self.pss_peak.get(pid, 0.0), pss)
                    self.uss_peak[pid] = max(self.uss_peak.get(pid, 0.0), uss)
            self.stop.wait(0.5)


def worker_rss_mb(master: int | None) -> list[float]:
    out = []
    for pid in gunicorn_workers(master):
        with contextlib.suppress(OSError, AttributeError):
            status = Path(f"/proc/{pid}/status").read_text()
            out.append(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024)
    return out


def shared_memory_mb(pid: int) -> tuple[float, float]:
    """A process's PSS (shared pages divided among their sharers) and USS (its private pages),
    in MB: RSS counts the routing models the master loaded before the fork once per worker."""
    fields = dict(
        (line.split(":")[0], int(line.split()[1]))
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    )
    return fields["Pss"] / 1024, (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024


def worker_shared_memory_mb(master: int | None) -> list[tuple[float, float]]:
    out = []
    for pid in gunicorn_workers(master):
        with contextlib.suppress(OSError, KeyError, ValueError):
            out.append(shared_memory_mb(pid))
    return out


def machine_ticks() -> tuple[int, int]:
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)


# --- load generators ----------------------------------------------------------------------


def run_wrk(
    target: Target, sc: dict[str, Any], seconds: float, *, stream: bool = False
) -> dict[str, Any]:
    headers, body, expect = target.request(sc["model"], stream=stream)
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        f.write(body)
    env = dict(
        os.environ, BENCH_BODY_FILE=f.name, BENCH_HEADERS="\n".join(headers), BENCH_EXPECT=expect
    )
    cmd = [
        "wrk",
        f"-t{min(sc['t'], sc['c'])}",
        f"-c{sc['c']}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(HERE / "peers" / "wrk_post.lua"),
        target.url,
    ]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 90)
    finally:
        os.unlink(f.name)
    m = re.search(r"^BENCH_JSON (.*)$", p.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk failed: {p.stdout[-400:]} {p.stderr[-400:]}")
    w = json.loads(m.group(1))
    bad = re.search(r"^BENCH_BAD_BODY (.*)$", p.stderr, re.M)
    return {
        "rps": w["requests"] / (w["duration_us"] / 1e6),
        "requests": w["requests"],
        "errors": w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"],
        "non2xx": w["err_status"],
        "bad_body": w["bad_body"],
        "p50_ms": w["p50_us"] / 1e3,
        "p90_ms": w["p90_us"] / 1e3,
        "p99_ms": w["p99_us"] / 1e3,
        "max_ms": w["lat_max_us"] / 1e3,
        **({"last_error": bad.group(1)[:200]} if bad else {}),
    }


def run_streams(
    target: Target,
    sc: dict[str, Any],
    seconds: float,
    *,
    once: bool = False,
    stall_ms: float = 1e9,
    ramp: float = 0.0,
) -> dict[str, Any]:
    headers, body, _ = target.request(sc["model"], stream=True)
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        f.write(body)
    cmd = [
        sys.executable,
        str(HERE / "stream_load.py"),
        target.url,
        "--body",
        f.name,
        "-c",
        str(sc["c"]),
        "-d",
        str(seconds),
        "--stall-ms",
        str(stall_ms),
        "--timeout",
        "60",
    ]
    if once:
        cmd += ["--once", "--ramp", str(ramp)]
    for h in headers:
        cmd += ["-H", h]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 180)
    finally:
        os.unlink(f.name)
    m = re.search(r"^BENCH_JSON (.*)$", p.stdout, re.M)
    if not m:
        raise RuntimeError(f"stream_load failed: {p.stdout[-400:]} {p.stderr[-400:]}")
    s = json.loads(m.group(1))
    s["requests"] = s["ok"]
    s["non2xx"] = s.pop("status_errors")
    return s


def check(target: Target, sc: dict[str, Any], stream: bool) -> tuple[bool, str]:
    headers, body, expect = target.request(sc["model"], stream=stream)
    body = body.replace(b"@N@", secrets.token_hex(6).encode())
    req = urllib.request.Request(target.url, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    for h in headers:
        k, v = h.split(":", 1)
        req.add_header(k.strip(), v.strip())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}: {exc.read()[:300]!r}"
    except OSError as exc:
        return False, repr(exc)[:300]
    return expect in text, text[:200]


def settle(target: Target, sc: dict[str, Any], limit: float) -> float:
    """Wait until 3 requests in a row answer promptly (a heavy run can leave a backlog)."""
    started, good = time.monotonic(), 0
    light = dict(sc, model="fake")
    while time.monotonic() - started < limit and good < 3:
        t0 = time.monotonic()
        ok, _ = check(target, light, False)
        good = good + 1 if ok and time.monotonic() - t0 < 2 else 0
        if not good:
            time.sleep(1)
    return time.monotonic() - started


def measure(target: Target, name: str, sc: dict[str, Any], scale: float) -> dict[str, Any]:
    seconds = max(2.0, sc["d"] * scale)
    sampler = RssSampler(target.pid) if sc["tool"] == "held" else None
    rss_idle = worker_rss_mb(target.pid)
    shared_idle = worker_shared_memory_mb(target.pid) if sampler else []
    c0, m0 = cpu_ticks(target.pid), machine_ticks()
    if sampler:
        sampler.start()
    if sc["tool"] == "wrk":
        res = run_wrk(target, sc, seconds)
    elif sc["tool"] == "stream":
        res = run_streams(target, sc, seconds, stall_ms=10 * TTFT_PACE_MS)
    else:
        res = run_streams(target, sc, 0, once=True, stall_ms=10 * HELD_PACE_MS, ramp=2.0)
    c1, m1 = cpu_ticks(target.pid), machine_ticks()
    if sampler:
        sampler.stop.set()
        sampler.join()
        res["worker_rss_idle_mb"] = rss_idle
        res["worker_rss_peak_mb"] = sorted(sampler.peak.values())
        res["worker_threads_peak"] = sorted(sampler.threads_peak.values())
        res["worker_pss_idle_mb"] = sorted(p for p, _ in shared_idle)
        res["worker_uss_idle_mb"] = sorted(u for _, u in shared_idle)
        res["worker_pss_peak_mb"] = sorted(sampler.pss_peak.values())
        res["worker_uss_peak_mb"] = sorted(sampler.uss_peak.values())
    n = max(res["requests"], 1)
    if c0 is not None and c1 is not None:
        res["cpu_s"] = (c1 - c0) / TICK
        res["cpu_ms_per_req"] = 1e3 * res["cpu_s"] / n
    res["machine_busy_pct"] = 100.0 * (m1[0] - m0[0]) / max(m1[1] - m0[1], 1)
    return res


# --- setting up the targets ---------------------------------------------------------------


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_upstream(procs: Processes, tmp: Path, port: int) -> int | None:
    """The shared fake upstream (nginx + njs); an already running one on the port is reused."""
    if port_busy(port):
        say(f"# fake upstream: reusing whatever answers on 127.0.0.1:{port}")
        for candidate in (
            Path(os.environ.get("PEERS_TMP", "/tmp/peers")) / "run" / "fake" / "nginx.pid",
        ):
            if candidate.exists():
                return int(candidate.read_text().strip())
        return None
    d = tmp / "fake"
    d.mkdir(parents=True, exist_ok=True)
    conf = (HERE / "peers" / "fake_upstream" / "nginx.conf.in").read_text()
    for key, value in {
        "@RUN_DIR@": str(d),
        "@JS_DIR@": str(HERE / "peers" / "fake_upstream"),
        "@PORT@": str(port),
        "@SLOW_PORT@": str(port + 1),
        "@SLOW_DELAY@": "500",
        "@WORKERS@": "1",
    }.items():
        conf = conf.replace(key, value)
    conf = conf.replace("daemon on;", "daemon off;")
    (d / "nginx.conf").write_text(conf)
    proc = procs.start(
        "fake-upstream", ["nginx", "-p", str(d), "-c", str(d / "nginx.conf")], dict(os.environ)
    )
    wait_http(f"http://127.0.0.1:{port}/health", 15, proc, tmp / "fake-upstream.log")
    return proc.pid


def create_database(admin_url: str, name: str) -> str:
    import psycopg2

    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_database(admin_url: str, name: str) -> None:
    import psycopg2

    with contextlib.suppress(Exception):
        conn = psycopg2.connect(admin_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def gunicorn_env(args: argparse.Namespace, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    # Our own metrics directory, inside this run's directory (gunicorn.conf.py honours it).
    metrics = tmp / "metrics"
    metrics.mkdir(exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    env.update(
        GUNICORN_WORKERS=str(args.workers),
        GUNICORN_THREADS=str(args.threads),
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def start_gateway(
    procs: Processes, tmp: Path, args: argparse.Namespace, db_url: str
) -> tuple[Target, Target]:
    password = secrets.token_urlsafe(24)
    env = gunicorn_env(args, tmp)
    env.update(
        ENVIRONMENT="production",
        DATABASE_URL=db_url,
        JWT_SECRET_KEY=secrets.token_hex(32),
        ADMIN_EMAIL="bench@example.com",
        ADMIN_PASSWORD=password,
        LLM_PROVIDER="openai",
        OPENAI_BASE_URL=f"http://127.0.0.1:{args.upstream_port}/v1",
        OPENAI_API_KEY="x",
        OPENAI_MODEL="fake",
        # The model names (fake-d500, fake-c20...) carry latency and pacing to the upstream.
        LLM_ALLOW_UNLISTED_MODELS="true",
        MCP_CONFIG=str(HERE / "mcp_servers.json"),
        BIND=f"127.0.0.1:{args.gateway_port}",
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "INFO"),
        # One API key drives the whole load: the per-user chat rate and concurrency limits
        # (a policy, 30 turns a minute and 3 at once by default) would answer 429s instead.
        CHAT_RATE_LIMIT="0",
        CHAT_MAX_CONCURRENT="0",
    )
    for key in ("LLM_FALLBACK_PROVIDER", "ANTHROPIC_API_KEY", "MOCK_AUTH"):
        env.pop(key, None)
    # Variants for diagnosis (--gateway-env ROUTING_SEMANTIC=false); recorded in the results.
    env.update(kv.split("=", 1) for kv in args.gateway_env)
    # gunicorn 27's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl):
    # every master on the box binds the same one, and a "shutdown" meant for another
    # instance lands here (seen: SIGTERM mid-run). The benchmark's masters do without it.
    cmd = [
        str(Path(sys.executable)),
        "-m",
        "gunicorn",
        "-c",
        "gunicorn.conf.py",
        "--no-control-socket",
        "wsgi:app",
    ]
    proc = procs.start("gateway", cmd, env)
    base = f"http://127.0.0.1:{args.gateway_port}"
    wait_http(f"{base}/health/ready", 120, proc, tmp / "gateway.log")
    login = http(f"{base}/auth/login", {"email": "bench@example.com", "password": password})
    key = http(f"{base}/auth/keys", {"name": "bench"}, token=login["access_token"])["key"]
    # Warm-up connects the MCP server and loads the routing model in each worker.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        servers = http(f"{base}/mcp/servers", token=key)
        rows = servers.get("servers", servers) if isinstance(servers, dict) else servers
        if rows and all(s.get("state") == "ready" for s in rows):
            break
        time.sleep(0.5)
    return (
        Target("gateway", f"{base}/v1/chat/completions", key, pid=proc.pid),
        Target(
            "gateway-chat",
            f"{base}/chat",
            key,
            api="chat",
            pid=proc.pid,
            scenarios=set(CHAT_SCENARIOS),
        ),
    )


def start_reference(procs: Processes, tmp: Path, args: argparse.Namespace, db_url: str) -> Target:
    token = secrets.token_hex(16)
    env = gunicorn_env(args, tmp)
    env.update(
        REF_DATABASE_URL=db_url,
        REF_UPSTREAM=f"http://127.0.0.1:{args.upstream_port}/v1",
        REF_TOKEN=token,
    )
    # The gateway's gunicorn settings (gunicorn.conf.py), without its app-specific hooks.
    # gthread as the gateway, or gevent (the worker model issue #20 asks to measure beside it:
    # ``--reference-worker gevent`` needs ``pip install gevent``).
    worker = (
        ["-k", "gevent", "--worker-connections", str(2 * args.threads)]
        if args.reference_worker == "gevent"
        else ["-k", "gthread", "--threads", str(args.threads)]
    )
    cmd = [
        str(Path(sys.executable)),
        "-m",
        "gunicorn",
        *worker,
        "-w",
        str(args.workers),
        "-b",
        f"127.0.0.1:{args.reference_port}",
        "--keep-alive",
        "5",
        "--timeout",
        "120",
        "--graceful-timeout",
        "30",
        "--max-requests",
        "50000",
        "--max-requests-jitter",
        "5000",
        "--error-logfile",
        "-",
        "--no-control-socket",
        "--pythonpath",
        str(ROOT),
        "bench.reference_app:create_app()",
    ]
    # Started outside the repository: gunicorn reads ./gunicorn.conf.py when it finds one, and
    # the gateway's hooks (warm-up, the MCP endpoint) would then run in the reference's workers.
    proc = procs.start("reference", cmd, env, cwd=tmp)
    wait_http(f"http://127.0.0.1:{args.reference_port}/health", 60, proc, tmp / "reference.log")
    return Target(
        "reference",
        f"http://127.0.0.1:{args.reference_port}/v1/chat/completions",
        token,
        pid=proc.pid,
    )


def peer_targets(peers_tmp: Path) -> list[Target]:
    run = peers_tmp / "run"
    out = []
    pid = run / "litellm.pid"
    if pid.exists():
        out.append(
            Target(
                "litellm",
                "http://127.0.0.1:28100/v1/chat/completions",
                os.environ.get("LITELLM_KEY", "sk-bench-master-key"),
                pid=int(pid.read_text()),
            )
        )
    info, pid = run / "contextforge" / "info.json", run / "contextforge.pid"
    if info.exists() and pid.exists():
        # ContextForge holds a SQLite connection per in-flight LLM call: at 200+ slow requests
        # it starves and needs minutes to recover (see the shared peers README), so it sits
        # out the heavy scenarios.
        out.append(
            Target(
                "contextforge",
                "http://127.0.0.1:28200/v1/chat/completions",
                json.loads(info.read_text())["token"],
                pid=int(pid.read_text()),
                scenarios=set(SCENARIOS) - HEAVY,
            )
        )
    return out


# --- summary ------------------------------------------------------------------------------


def med(values: list[Any]) -> float | None:
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def _added(
    results: list[dict[str, Any]], runs: list[dict[str, Any]], scenario: str, name: str, key: str
) -> float | None:
    """Median over rounds of ``key`` minus the direct upstream's ``key`` in the same round."""
    if name == "direct":
        return None
    diffs = []
    for r in runs:
        direct = next(
            (
                x
                for x in results
                if x["scenario"] == scenario
                and x["target"] == "direct"
                and x["round"] == r["round"]
                and "error" not in x
            ),
            None,
        )
        if direct and r.get(key) is not None and direct.get(key) is not None:
            diffs.append(r[key] - direct[key])
    return med(diffs)


def summarize(
    results: list[dict[str, Any]], names: list[str], scenarios: list[str]
) -> dict[str, Any]:
    """Medians over rounds; 'added' is paired with direct within each round, then the median."""
    out: dict[str, Any] = {}
    for sn in scenarios:
        sc = SCENARIOS[sn]
        lat = "ttft" if sc["tool"] != "wrk" else ""
        per: dict[str, dict[str, Any]] = {}
        for name in names:
            runs = [
                r
                for r in results
                if r["scenario"] == sn and r["target"] == name and "error" not in r
            ]
            if not runs:
                continue
            keys = {k for r in runs for k, v in r.items() if isinstance(v, (int, float))} - {
                "round"
            }
            s = {k: med([r.get(k) for r in runs]) for k in keys}
            s["rounds"] = len(runs)
            s["errors_total"] = sum(
                r.get("errors", 0) + r.get("non2xx", 0) + r.get("bad_body", 0) + r.get("no_text", 0)
                for r in runs
            )
            for q in ("p50", "p99"):
                key = f"{lat}_{q}_ms" if lat else f"{q}_ms"
                s[f"added_{q}_ms"] = _added(results, runs, sn, name, key)
                if sc["tool"] != "wrk":
                    s[f"added_gap_{q}_ms"] = _added(results, runs, sn, name, f"gaps_{q}_ms")
            if "ideal" in sc:
                s["pct_of_ideal"] = 100.0 * s["rps"] / sc["ideal"]
            if sc["tool"] == "held":
                s["worker_rss_peak_mb"] = max(
                    (max(r.get("worker_rss_peak_mb") or [0]) for r in runs), default=None
                )
                s["worker_rss_idle_mb"] = max(
                    (max(r.get("worker_rss_idle_mb") or [0]) for r in runs), default=None
                )
                for kind in ("pss", "uss"):
                    for when in ("idle", "peak"):
                        key = f"worker_{kind}_{when}_mb"
                        s[key] = max((max(r.get(key) or [0]) for r in runs), default=None)
                s["stalled_total"] = sum(r.get("stalled", 0) for r in runs)
                s["completed_min"] = min(r.get("ok", 0) for r in runs)
            per[name] = s
        for name, s in per.items():
            for ref in ("litellm", "reference"):
                r = per.get(ref)
                if not r or name == ref:
                    continue
                for key in ("added_p50_ms", "added_p99_ms", "rps", "cpu_ms_per_req"):
                    if s.get(key) is not None and r.get(key):
                        s[f"{key}_x_{ref}"] = s[key] / r[key]
        out[sn] = per
    return out


def fmt(v: Any, nd: int = 1) -> str:
    return "-" if v is None else f"{v:,.{nd}f}"


def markdown(
    summary: dict[str, Any], meta: dict[str, Any], verdicts: list[tuple[str, str, str]]
) -> str:
    lines = [
        f"# Benchmark results ({meta['started']})",
        "",
        f"Machine: {meta['machine']}. {meta['rounds']} interleaved rounds, durations x{meta['scale']}; "
        f'figures are medians over rounds; "added" = target minus the upstream called directly, '
        f"paired within each round. Gateway: {meta['gateway_config']}."
        + (
            " Load average (1, 5, 15 min) at the start {} and the end {}.".format(
                *("/".join(f"{x:.1f}" for x in meta["load_average"][k]) for k in ("start", "end"))
            )
            if meta.get("load_average")
            else ""
        ),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
    ]
    lines += ["## Targets", "", "| target | figure | verdict |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in verdicts]
    for sn, per in summary.items():
        sc = SCENARIOS[sn]
        lines += ["", f"## {sn}", ""]
        if sc["tool"] == "wrk":
            lines += [
                "| target | req/s | p50 ms | p99 ms | added p50 | added p99 | CPU ms/req | x LiteLLM (added p50 / req/s / CPU) | x reference (req/s) | % of ideal | errors |",
                "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
            ]
            for name, s in per.items():
                xl = "/".join(
                    fmt(s.get(f"{k}_x_litellm"), 2)
                    for k in ("added_p50_ms", "rps", "cpu_ms_per_req")
                )
                lines.append(
                    f"| {name} | {fmt(s.get('rps'))} | {fmt(s.get('p50_ms'), 2)} | {fmt(s.get('p99_ms'), 2)} | "
                    f"{fmt(s.get('added_p50_ms'), 2)} | {fmt(s.get('added_p99_ms'), 2)} | {fmt(s.get('cpu_ms_per_req'), 2)} | "
                    f"{xl if 'litellm' in per and name != 'litellm' else '-'} | {fmt(s.get('rps_x_reference'), 2)} | "
                    f"{fmt(s.get('pct_of_ideal'))} | {s['errors_total']} |"
                )
        else:
            lines += [
                "| target | streams/s | completed | TTFT p50 | TTFT p99 | added TTFT p50 | added TTFT p99 | gap p50 | gap p99 | max gap | added gap p99 | stalled | CPU ms/stream | worker RSS idle→peak MB | errors |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
            ]
            for name, s in per.items():
                rss = (
                    f"{fmt(s.get('worker_rss_idle_mb'), 0)}→{fmt(s.get('worker_rss_peak_mb'), 0)}"
                    if s.get("worker_rss_peak_mb")
                    else "-"
                )
                lines.append(
                    f"| {name} | {fmt(s.get('rps'))} | {fmt(s.get('ok'), 0)} | {fmt(s.get('ttft_p50_ms'))} | {fmt(s.get('ttft_p99_ms'))} | "
                    f"{fmt(s.get('added_p50_ms'), 2)} | {fmt(s.get('added_p99_ms'), 2)} | {fmt(s.get('gaps_p50_ms'))} | "
                    f"{fmt(s.get('gaps_p99_ms'))} | {fmt(s.get('max_gaps_p100_ms'))} | {fmt(s.get('added_gap_p99_ms'), 2)} | "
                    f"{fmt(s.get('stalled'), 0)} | {fmt(s.get('cpu_ms_per_req'), 2)} | {rss} | {s['errors_total']} |"
                )
    for extra in ("tool_turn", "mcp_endpoint", "routing"):
        if meta.get(extra):
            lines += [
                "",
                f"## {extra.replace('_', '-')}",
                "",
                "```",
                meta[extra]["text"].rstrip(),
                "```",
            ]
    return "\n".join(lines) + "\n"


def verdicts(summary: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []

    def get(sn: str, name: str, key: str) -> Any:
        return summary.get(sn, {}).get(name, {}).get(key)

    def add(label: str, value: Any, ok: bool | None, figure: str) -> None:
        verdict = "n/a (not measured in this run)" if ok is None else ("met" if ok else "MISSED")
        out.append((label, figure if value is not None else "-", verdict))

    # The targets of issue #20, each a ratio within this run (or an absolute bound).
    x = get("overhead-c1", "gateway", "added_p50_ms_x_litellm")
    add(
        "overhead-c1 added p50 ≤ 0.5x LiteLLM's",
        x,
        None if x is None else x <= 0.5,
        f"{fmt(get('overhead-c1', 'gateway', 'added_p50_ms'), 2)} ms = {fmt(x, 2)}x LiteLLM",
    )
    for name in ("gateway", "gateway-chat"):
        for sn in ("overhead-c1", "maxrps-c32"):
            x = get(sn, name, "cpu_ms_per_req_x_litellm")
            add(
                f"{sn} {name} CPU ms/req ≤ 0.5x LiteLLM's",
                x,
                None if x is None else x <= 0.5,
                f"{fmt(get(sn, name, 'cpu_ms_per_req'), 2)} ms vs {fmt(get(sn, 'litellm', 'cpu_ms_per_req'), 2)} ms = {fmt(x, 2)}x",
            )
    x = get("maxrps-c32", "gateway", "rps_x_litellm")
    add(
        "maxrps-c32 req/s ≥ 2x LiteLLM's",
        x,
        None if x is None else x >= 2,
        f"{fmt(get('maxrps-c32', 'gateway', 'rps'))} vs {fmt(get('maxrps-c32', 'litellm', 'rps'))} req/s = {fmt(x, 2)}x",
    )
    x = get("maxrps-c32", "gateway", "rps_x_reference")
    add(
        "maxrps-c32 req/s ≥ 0.5x reference arm's",
        x,
        None if x is None else x >= 0.5,
        f"{fmt(get('maxrps-c32', 'gateway', 'rps'))} vs {fmt(get('maxrps-c32', 'reference', 'rps'))} req/s = {fmt(x, 2)}x",
    )
    for sn, pct in (("capacity-500ms-c200", 90), ("capacity-500ms-c1000", 50)):
        p, e = get(sn, "gateway", "pct_of_ideal"), get(sn, "gateway", "errors_total")
        add(
            f"{sn} ≥ {pct}% of ideal, 0 errors",
            p,
            None if p is None else (p >= pct and e == 0),
            f"{fmt(p)}% of {fmt(SCENARIOS[sn]['ideal'], 0)} req/s (reference arm {fmt(get(sn, 'reference', 'pct_of_ideal'))}%), "
            f"{e} errors, p99 {fmt(get(sn, 'gateway', 'p99_ms'))} ms",
        )
    for q, limit in (("p50", 5), ("p99", 25)):
        a = get("stream-ttft-c20", "gateway", f"added_{q}_ms")
        add(
            f"stream-ttft-c20 added TTFT {q} ≤ {limit} ms",
            a,
            None if a is None else a <= limit,
            f"{fmt(a, 2)} ms (reference arm {fmt(get('stream-ttft-c20', 'reference', f'added_{q}_ms'), 2)} ms)",
        )
    ok, st = (
        get("streams-held-c1000", "gateway", "completed_min"),
        get("streams-held-c1000", "gateway", "stalled_total"),
    )
    add(
        "streams-held 1,000 complete, none stalled",
        ok,
        None
        if ok is None
        else (ok >= 1000 and st == 0 and get("streams-held-c1000", "gateway", "errors_total") == 0),
        f"{fmt(ok, 0)} completed (min over rounds), {st} stalled, max gap {fmt(get('streams-held-c1000', 'gateway', 'max_gaps_p100_ms'))} ms",
    )
    idle = get("streams-held-c1000", "gateway", "worker_rss_idle_mb")
    peak = get("streams-held-c1000", "gateway", "worker_rss_peak_mb")
    add(
        "worker RSS ≤ 250 MB idle",
        idle,
        None if idle is None else idle <= 250,
        f"{fmt(idle, 0)} MB (largest worker before the stream load)",
    )
    add(
        "worker RSS ≤ 300 MB under the stream load",
        peak,
        None if peak is None else peak <= 300,
        f"{fmt(peak, 0)} MB (largest worker's peak, 1,000 held streams)",
    )
    pss = [get("streams-held-c1000", "gateway", f"worker_pss_{w}_mb") for w in ("idle", "peak")]
    uss = [get("streams-held-c1000", "gateway", f"worker_uss_{w}_mb") for w in ("idle", "peak")]
    add(
        "worker PSS ≤ 250 MB idle, ≤ 300 MB under the stream load (not the issue's measure)",
        pss[0],
        None if None in pss else pss[0] <= 250 and pss[1] <= 300,
        f"PSS {fmt(pss[0], 0)}→{fmt(pss[1], 0)} MB, private (USS) {fmt(uss[0], 0)}→"
        f"{fmt(uss[1], 0)} MB: the routing models are loaded before the fork and shared",
    )
    me = meta.get("mcp_endpoint") or {}
    add(
        "/mcp added over calling the MCP server directly (p50, p99; 2026-07-28 era)",
        me.get("added_ms"),
        None,
        f"{fmt(me.get('added_ms'), 2)} ms p50, {fmt(me.get('added_p99_ms'), 2)} ms p99; "
        f"handshake era {fmt(me.get('added_legacy_ms'), 2)} / {fmt(me.get('added_legacy_p99_ms'), 2)} ms",
    )
    tt = (meta.get("tool_turn") or {}).get("added_ms")
    add(
        "tool-turn added < 2 ms",
        tt,
        None if tt is None else tt < 2,
        f"{fmt(tt, 3)} ms (median of rounds)",
    )
    return out


# --- versions and machine -----------------------------------------------------------------


def versions(peers_tmp: Path) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("gunicorn", "flask", "werkzeug", "sqlalchemy", "psycopg2-binary", "openai", "mcp"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    for cmd, key in ((["nginx", "-v"], "nginx"), (["wrk", "-v"], "wrk")):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
            m = re.search(r"(\d+\.\d+\.\d+)", p.stdout + p.stderr)
            if m:
                out[key] = m.group(1)
    for venv, dist in (("venv-litellm", "litellm"), ("venv-cf", "mcp_contextforge_gateway")):
        for info in (peers_tmp / venv).glob(f"lib/python*/site-packages/{dist}-*.dist-info"):
            out[dist.replace("_", "-")] = info.name[len(dist) + 1 : -len(".dist-info")]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out["gateway commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    return out


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        m = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        model = m.group(1).strip() if m else ""
    mem = ""
    with contextlib.suppress(OSError, AttributeError):
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.1f} GiB RAM"
    return f"{os.cpu_count()} CPUs ({model}){mem}, {platform.system()} {platform.release()}"


def run_module(module: str, args: list[str], timeout: float) -> dict[str, Any]:
    p = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    m = re.search(r"^BENCH_JSON (.*)$", p.stdout, re.M)
    # Paths in a failure's traceback relative to the repository: results are committed.
    failure = (p.stdout + p.stderr).replace(f"{ROOT}/", "")[-800:]
    result = json.loads(m.group(1)) if m else {"error": failure}
    result["text"] = re.sub(r"^BENCH_JSON .*$\n?", "", p.stdout, flags=re.M)
    return result


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    ap.add_argument(
        "--scale",
        type=float,
        default=float(os.environ.get("BENCH_SCALE", "1")),
        help="multiply every run's duration",
    )
    ap.add_argument("--scenarios", default=os.environ.get("BENCH_SCENARIOS", ",".join(SCENARIOS)))
    ap.add_argument(
        "--extras",
        default=os.environ.get("BENCH_EXTRAS", "tool-turn,mcp-endpoint,routing"),
        help="measurements after the rounds (tool-turn, mcp-endpoint, routing; empty: none)",
    )
    ap.add_argument(
        "--peers", action="store_true", help="add LiteLLM/ContextForge if they are running"
    )
    ap.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "2")))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "512")))
    ap.add_argument(
        "--reference-worker",
        choices=("gthread", "gevent"),
        default="gthread",
        help="the reference arm's gunicorn worker class (gevent: pip install gevent)",
    )
    ap.add_argument("--upstream-port", type=int, default=28080)
    ap.add_argument("--gateway-port", type=int, default=28400)
    ap.add_argument("--reference-port", type=int, default=28500)
    ap.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server for the throwaway databases",
    )
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument(
        "--name", help="results file name (default: latest, or latest-peers with --peers)"
    )
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the gateway (a variant to diagnose, e.g. ROUTING_SEMANTIC=false)",
    )
    ap.add_argument(
        "--serve",
        type=float,
        default=0,
        help="only start the targets, print them and keep them up this many seconds (to profile)",
    )
    a = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(
                f"{tool} not found: apt-get install -y wrk nginx libnginx-mod-http-js (make bench does it as root)"
            )
    scenarios = [s for s in a.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        sys.exit(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    raise_fd_limit()
    for port in (a.gateway_port, a.reference_port):
        if port_busy(port):
            sys.exit(f"port {port} is busy: another benchmark (or --serve) still running?")

    # SIGTERM (timeout, CI) must still stop what we started and drop the databases.
    def terminate(*_: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up
        sys.exit("terminated")

    signal.signal(signal.SIGTERM, terminate)
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    peers_tmp = Path(os.environ.get("PEERS_TMP", "/tmp/peers"))
    procs = Processes(tmp)
    db_names = [f"gateway_bench_{os.getpid()}", f"gateway_bench_ref_{os.getpid()}"]
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    # The box is shared: the load when the run starts and ends says how much to trust it.
    load_start = os.getloadavg()
    say(f"# logs in {tmp}")
    try:
        upstream_pid = start_upstream(procs, tmp, a.upstream_port)
        gateway, gateway_chat = start_gateway(procs, tmp, a, create_database(a.pg, db_names[0]))
        reference = start_reference(procs, tmp, a, create_database(a.pg, db_names[1]))
        direct = Target(
            "direct", f"http://127.0.0.1:{a.upstream_port}/v1/chat/completions", pid=upstream_pid
        )
        targets = [direct, gateway, gateway_chat, reference]
        if a.peers:
            targets += peer_targets(peers_tmp)
        if a.serve:
            for t in targets:
                say(f"serve {t.name} {t.url} token={t.token} pid={t.pid}")
            time.sleep(a.serve)
            return
        plan: dict[tuple[str, str], Target] = {}
        for sn in scenarios:
            sc = SCENARIOS[sn]
            for t in targets:
                if sn not in t.scenarios:
                    continue
                ok, msg = check(t, sc, sc["tool"] != "wrk")
                say(f"# check {sn:22s} {t.name:13s} {'ok' if ok else 'FAIL ' + msg}")
                if ok:
                    plan[(sn, t.name)] = t
        results: list[dict[str, Any]] = []
        for rnd in range(1, a.rounds + 1):
            for sn in scenarios:
                sc = SCENARIOS[sn]
                order = [t for t in targets if (sn, t.name) in plan]
                k = (rnd - 1) % max(len(order), 1)
                for t in order[k:] + order[:k]:
                    row: dict[str, Any] = {"round": rnd, "scenario": sn, "target": t.name}
                    try:
                        if a.warmup > 0 and sc["tool"] == "wrk":
                            run_wrk(t, sc, a.warmup)
                        elif a.warmup > 0 and sc["tool"] == "stream":
                            run_streams(t, sc, a.warmup)
                        row.update(measure(t, sn, sc, a.scale))
                        row["settle_s"] = round(settle(t, sc, 90), 1)
                    except Exception as exc:  # a failing target must not end the run
                        row["error"] = repr(exc)[:400]
                    results.append(row)
                    if "error" in row:
                        say(f"round {rnd} {sn:22s} {t.name:13s} ERROR {row['error']}")
                    else:
                        extra = (
                            f" ttft50={fmt(row.get('ttft_p50_ms'))} gap99={fmt(row.get('gaps_p99_ms'))} "
                            f"stalled={row.get('stalled')}"
                            if sc["tool"] != "wrk"
                            else ""
                        )
                        say(
                            f"round {rnd} {sn:22s} {t.name:13s} rps={fmt(row['rps']):>9s} "
                            f"p50={fmt(row.get('p50_ms') or row.get('total_p50_ms'), 2):>8s} "
                            f"p99={fmt(row.get('p99_ms') or row.get('total_p99_ms'), 2):>8s}{extra} "
                            f"err={row.get('errors', 0)}+{row.get('non2xx', 0)} "
                            f"cpu/req={fmt(row.get('cpu_ms_per_req'), 2)} busy={row['machine_busy_pct']:.0f}%"
                        )
                    time.sleep(0.5)
        gateway_config = (
            f"gunicorn gthread, {a.workers} workers x {a.threads} threads, DB pool per worker "
            f"{os.environ.get('DB_POOL_SIZE', '10')}+{os.environ.get('DB_MAX_OVERFLOW', '0')}, "
            f"ENVIRONMENT=production, LOG_LEVEL={os.environ.get('LOG_LEVEL', 'INFO')}, "
            f"routing on (semantic), MCP: mcp-server-time (stdio)"
            + (f"; variant: {' '.join(a.gateway_env)}" if a.gateway_env else "")
            + ("; reference arm on gevent workers" if a.reference_worker == "gevent" else "")
        )
        meta: dict[str, Any] = {
            "started": started,
            "rounds": a.rounds,
            "scale": a.scale,
            "machine": machine(),
            "versions": versions(peers_tmp),
            "gateway_config": gateway_config,
            "targets": [t.name for t in targets],
            "scenarios": {s: SCENARIOS[s] for s in scenarios},
        }
        # In-process measurements, once the HTTP targets are idle.
        extras = [e for e in a.extras.split(",") if e]
        procs.stop_all()
        procs.started.clear()
        if "tool-turn" in extras:
            say("# tool-turn ...")
            meta["tool_turn"] = run_module("bench.tool_turn", ["--rounds", str(a.rounds)], 900)
        if "mcp-endpoint" in extras:
            say("# mcp-endpoint ...")
            meta["mcp_endpoint"] = run_module(
                "bench.mcp_endpoint", ["--rounds", str(a.rounds), "--pg", a.pg], 900
            )
        if "routing" in extras:
            say("# routing ...")
            meta["routing"] = run_module("bench.routing_latency", [], 1800)
        meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        meta["load_average"] = {"start": load_start, "end": os.getloadavg()}
        summary = summarize(results, [t.name for t in targets], scenarios)
        checks = verdicts(summary, meta)
        md = markdown(summary, meta, checks)
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        name = a.name or ("latest-peers" if a.peers else "latest")
        (out / f"{name}.json").write_text(
            json.dumps(
                {"meta": meta, "summary": summary, "targets_met": checks, "results": results},
                indent=1,
            )
            + "\n"
        )
        (out / f"{name}.md").write_text(md)
        say("\n" + md)
        say(f"results: {out / (name + '.md')} and .json; logs: {tmp}")
    finally:
        procs.stop_all()
        for db in db_names:
            drop_database(a.pg, db)


if __name__ == "__main__":
    main()
