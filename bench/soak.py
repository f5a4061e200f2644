"""Soak: thousands of chats with tool calls through two gunicorn workers; look for leaks.

Run from the repo root (needs PostgreSQL on 127.0.0.1:5432, trust, as for the tests):
``.venv/bin/python -m bench.soak [--chats 2000] [--clients 6]``. Not part of CI.

Every chat makes the fake upstream call the ``calc`` MCP server's first tool, then answer.
Reported: worker memory after warm-up and at the end (must grow < 10 %), the gateway's
connections in pg_stat_activity (must stay within the pools), and MCP server processes
(one per worker, before and after).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import requests

from tests.chat_setup import chat_env, write_mcp_config
from tests.fakes.fake_llm import FakeLLM
from tests.live_server import gunicorn
from tests.test_mcp_processes import tagged_processes, worker_pids

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def connections(name: str) -> int:
    with psycopg2.connect(ADMIN_URL) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND application_name = 'mcp-gateway'",
            (name,),
        )
        count = cur.fetchone()[0]
    conn.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    name = f"gateway_soak_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(ADMIN_URL)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    tag = uuid.uuid4().hex
    try:
        with tempfile.TemporaryDirectory() as tmp, FakeLLM() as fake:
            config = write_mcp_config(Path(tmp))
            text = config.read_text().replace(
                '"timeout": 10', f'"timeout": 10, "env": {{"GATEWAY_TEST_TAG": "{tag}"}}'
            )
            config.write_text(text)
            env = {
                "ENVIRONMENT": "test",
                "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
                "JWT_SECRET_KEY": "soak-" + "s" * 40,
                "CHAT_RATE_LIMIT": "0",
                "CHAT_MAX_CONCURRENT": "0",
                "LOG_LEVEL": "WARNING",
                **chat_env(fake.url, config),
            }
            with gunicorn(env, workers=2, threads=8) as server:
                run(server, fake, args, name, tag)
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def run(server, fake, args, name: str, tag: str) -> None:
    body = {"email": "soak@example.com", "password": "a long soak password"}
    requests.post(server.url + "/auth/register", json=body, timeout=10)
    token = requests.post(server.url + "/auth/login", json=body, timeout=10).json()
    key = requests.post(
        server.url + "/auth/keys",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        json={"name": "soak"},
        timeout=10,
    ).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    session = requests.Session()
    errors: dict[int, int] = {}

    def chat(i: int) -> None:
        response = session.post(
            server.url + "/chat",
            headers=headers,
            json={"message": f"please add {i} and 1", "stream": i % 2 == 0},
            timeout=60,
        )
        data = response.content
        if response.status_code != 200 or (b"event: error" in data):
            errors[response.status_code] = errors.get(response.status_code, 0) + 1

    workers = sorted(worker_pids(server.process.pid))
    started = time.monotonic()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(chat, range(args.warmup)))
        warm = {pid: rss_kib(pid) for pid in workers}
        warm_mcp = len(tagged_processes(tag))
        say(f"after {args.warmup} warm-up chats: RSS KiB {warm}, MCP processes {warm_mcp}")
        peak_conns = 0
        done = args.warmup
        while done < args.chats:
            batch = range(done, min(done + 200, args.chats))
            list(pool.map(chat, batch))
            done = batch.stop
            peak_conns = max(peak_conns, connections(name))
    elapsed = time.monotonic() - started
    time.sleep(1)
    final = {pid: rss_kib(pid) for pid in workers}
    growth = {pid: (final[pid] - warm[pid]) / warm[pid] * 100 for pid in workers}
    same_workers = sorted(worker_pids(server.process.pid)) == workers
    say(f"{args.chats} chats with tools in {elapsed:.1f} s ({args.chats / elapsed:.1f}/s)")
    say(f"errors by status: {errors or 'none'}; upstream requests: {len(fake.requests)}")
    say(
        f"final RSS KiB {final}; growth after warm-up %: "
        + ", ".join(f"{pid}: {g:+.1f}" for pid, g in growth.items())
    )
    say(f"same worker processes throughout: {same_workers}")
    say(
        f"gateway connections: peak {peak_conns} (pools allow 2 x 10), idle now {connections(name)}"
    )
    say(f"MCP server processes: {warm_mcp} after warm-up, {len(tagged_processes(tag))} now")
    ok = all(g < 10 for g in growth.values()) and not errors and same_workers
    say("PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
