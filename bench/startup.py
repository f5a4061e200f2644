"""Start-up figures of `make run`'s configuration: start to ready, and the first chat's latency.

    .venv/bin/python bench/startup.py [--port 8190]

Starts gunicorn with gunicorn.conf.py on a fresh temporary INSTANCE_PATH (the embedded
PostgreSQL is created there), then measures from the start of the process: when /health first
answers, when every MCP server is ready, and how long the first chat (offline provider) takes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8190)
    parser.add_argument("--instance", help="reuse this INSTANCE_PATH (a restart), else a new one")
    args = parser.parse_args()
    instance = args.instance or tempfile.mkdtemp(prefix="gateway-startup-")
    url = f"http://127.0.0.1:{args.port}"
    env = {
        **os.environ,
        "ENVIRONMENT": "development",
        "BIND": f"127.0.0.1:{args.port}",
        "INSTANCE_PATH": instance,
    }
    env.pop("DATABASE_URL", None)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("STARTUP_LOG", os.devnull), "w"),  # noqa: SIM115
    )
    figures: dict[str, float | str] = {}
    try:
        while "health" not in figures:
            try:
                if requests.get(url + "/health", timeout=60).ok:
                    figures["health"] = time.monotonic() - started
            except requests.ConnectionError:
                time.sleep(0.05)
            if proc.poll() is not None:
                raise SystemExit("gunicorn exited")
        servers = requests.get(url + "/mcp/servers", timeout=60).json()
        figures["mcp_at_health"] = ",".join(
            f"{s['name']}={s.get('state', s.get('status'))}" for s in servers.get("servers", [])
        )
        t = time.monotonic()
        chat = requests.post(
            url + "/chat", json={"message": "what time is it in Tokyo?"}, timeout=120
        )
        figures["first_chat"] = time.monotonic() - t
        figures["first_chat_status"] = chat.status_code
        figures["first_answer"] = time.monotonic() - started
        t = time.monotonic()
        requests.post(url + "/chat", json={"message": "what time is it in Paris?"}, timeout=120)
        figures["second_chat"] = time.monotonic() - t
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    if args.instance is None:
        shutil.rmtree(instance, ignore_errors=True)
    sys.stdout.write(
        json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()})
        + "\n"
    )


if __name__ == "__main__":
    main()
