"""Run deploy/nginx.conf with a real nginx: rendered for loopback upstreams and a private prefix."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.live_server import ROOT, free_port

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
HOW_TO_GET_NGINX = (
    "nginx is not installed; the deployment tests run the real one. `make test` installs it "
    "when run as root; else `sudo apt-get install -y nginx` (Debian/Ubuntu) or "
    "`brew install nginx`, then `make test` again."
)

# Each line the rendering changes, and what it becomes; every one must be found exactly once.
_LISTEN = "listen 8000;"
_UPSTREAM = "set $gateway_upstream gateway:8000;"
_RESOLVER = "resolver ${NGINX_LOCAL_RESOLVERS} valid=10s ipv6=off;"


# How long nginx leaves a server that failed once before trying it again.
FAIL_TIMEOUT_SECONDS = 10


def nginx_binary() -> str:
    """The nginx executable (Debian puts it in /usr/sbin, outside a normal user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail(HOW_TO_GET_NGINX, pytrace=False)  # one line, never a skip
    return found


def render_nginx_conf(*, port: int, upstreams: Sequence[str], prefix: Path) -> str:
    """deploy/nginx.conf listening on 127.0.0.1:port, balancing over ``upstreams``.

    Only three things change: the listen address, the upstream (a fixed group instead of
    compose's DNS name) and the /tmp paths (moved under ``prefix``). Everything else, the
    headers, limits, timeouts and error pages, is what compose runs.
    """
    text = NGINX_CONF.read_text(encoding="utf-8")
    servers = "".join(
        f"        server {u} max_fails=1 fail_timeout={FAIL_TIMEOUT_SECONDS}s;\n" for u in upstreams
    )
    # No keepalive: the compose variant (proxy_pass to a resolved name) keeps none either.
    group = f"    upstream gateway_local {{\n{servers}    }}\n\n"
    replacements = {
        _LISTEN: f"listen 127.0.0.1:{port};",
        _UPSTREAM: "set $gateway_upstream gateway_local;",
        _RESOLVER: "resolver 127.0.0.1 valid=10s ipv6=off;",
        "    server {\n": group + "    server {\n",
    }
    for old, new in replacements.items():
        count = text.count(old)
        if count != 1:
            raise AssertionError(f"deploy/nginx.conf: expected {old!r} once, found {count}")
        text = text.replace(old, new)
    return text.replace("/tmp/", f"{prefix}/")


@dataclass
class Nginx:
    url: str
    process: subprocess.Popen
    log_path: Path
    conf_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def check_nginx_conf(conf_path: Path, prefix: Path) -> subprocess.CompletedProcess:
    """`nginx -t` on a rendered file."""
    return subprocess.run(
        [nginx_binary(), "-t", "-p", str(prefix), "-c", str(conf_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def write_nginx_conf(prefix: Path, *, port: int, upstreams: Sequence[str]) -> Path:
    conf_path = prefix / "nginx.conf"
    conf_path.write_text(
        render_nginx_conf(port=port, upstreams=upstreams, prefix=prefix), encoding="utf-8"
    )
    return conf_path


@contextmanager
def nginx(upstreams: Sequence[str], prefix: Path) -> Iterator[Nginx]:
    """A foreground nginx on a free loopback port; stopped (SIGQUIT, then SIGKILL) afterwards."""
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf_path = write_nginx_conf(prefix, port=port, upstreams=upstreams)
    log_path = prefix / "nginx.log"
    # As root, workers would run as nobody and could not enter the private directory.
    directives = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
    with open(log_path, "a") as log_file:  # append: nginx writes through two fds
        process = subprocess.Popen(
            [nginx_binary(), "-p", str(prefix), "-c", str(conf_path), "-g", directives],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Nginx(f"http://127.0.0.1:{port}", process, log_path, conf_path)
    try:
        _wait_listening(server)
        yield server
    finally:
        process.send_signal(3)  # SIGQUIT: graceful stop
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(server: Nginx, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"nginx exited early:\n{server.log()}")
        try:
            requests.get(server.url + "/metrics", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx did not start listening:\n{server.log()}")
