"""deploy/compose.py's engine detection and deploy/nginx-resolvers.envsh, without an engine.

The engines are stand-in executables on PATH that answer `version` the way the real ones do;
the real engines run in `make test-stack` (tests/stack_drill.py).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live_server import ROOT

RESOLVERS = ROOT / "deploy" / "nginx-resolvers.envsh"


def _load(name: str):
    sys.path.insert(0, str(ROOT / "deploy"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


compose = _load("compose")


def _fake(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def _env(bin_dir: Path, **extra: str) -> dict[str, str]:
    # Only the fakes and the basic tools: no real engine on this PATH.
    tools = bin_dir / "tools"
    tools.mkdir(exist_ok=True)
    for tool in ("sh", "cat"):
        if not (tools / tool).exists():
            (tools / tool).symlink_to(shutil.which(tool))
    return {"PATH": f"{bin_dir}{os.pathsep}{tools}", **extra}


PODMAN_43 = """case "$1 $2" in
  "version --format") echo 4.3.1 ;;
  "compose version") echo "Error: unknown shorthand flag: 'd'" >&2; exit 125 ;;
  *) exit 0 ;;
esac"""
PODMAN_49 = """case "$1 $2" in
  "version --format") echo 4.9.3 ;;
  "compose version") echo ">>>> Executing external compose provider" >&2
                     echo "Docker Compose version v2.29.1" ;;
  *) exit 0 ;;
esac"""
DOCKER_NO_COMPOSE = """case "$1" in
  compose) echo "docker: unknown command: docker compose" >&2; exit 1 ;;
  *) exit 0 ;;
esac"""
DOCKER_NO_DAEMON = """case "$1" in
  compose) echo "Docker Compose version v2.29.1" ;;
  info) echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock" >&2; exit 1 ;;
  *) exit 0 ;;
esac"""


@pytest.fixture(autouse=True)
def _no_project_virtualenv(tmp_path, monkeypatch):
    # detect() also looks in the project's .venv/bin, where `make test` puts podman-compose.
    monkeypatch.setattr(compose, "ROOT", tmp_path)


def test_old_podman_without_podman_compose_says_what_to_install(tmp_path):
    _fake(tmp_path, "podman", PODMAN_43)
    _fake(tmp_path, "docker", DOCKER_NO_COMPOSE)
    with pytest.raises(compose.EngineError) as error:
        compose.detect(_env(tmp_path))
    message = str(error.value)
    assert "podman 4.3.1 has no `podman compose` (4.7+) and no podman-compose" in message
    assert "docker has no Compose v2" in message
    assert "pip install podman-compose" in message
    assert "\n" not in message


def test_old_podman_with_podman_compose_uses_it(tmp_path):
    _fake(tmp_path, "podman", PODMAN_43)
    _fake(tmp_path, "podman-compose", "echo 'podman-compose version 1.6.0'")
    found = compose.detect(_env(tmp_path))
    assert found.command == (str(tmp_path / "podman-compose"),)
    assert (found.engine, found.podman_compose) == ("podman", True)


def test_podman_4_7_and_later_uses_podman_compose_and_learns_its_provider(tmp_path):
    _fake(tmp_path, "podman", PODMAN_49)
    found = compose.detect(_env(tmp_path))
    assert found == compose.Compose(
        "podman", (str(tmp_path / "podman"), "compose"), podman_compose=False
    )


def test_a_docker_without_daemon_is_skipped_with_the_reason(tmp_path):
    _fake(tmp_path, "docker", DOCKER_NO_DAEMON)
    with pytest.raises(compose.EngineError, match="podman is not installed; the docker daemon"):
        compose.detect(_env(tmp_path))
    _fake(tmp_path, "podman", PODMAN_49)
    assert compose.detect(_env(tmp_path)).engine == "podman"


def test_container_and_compose_choose(tmp_path):
    _fake(tmp_path, "podman", PODMAN_49)
    _fake(tmp_path, "docker", DOCKER_NO_DAEMON)
    with pytest.raises(compose.EngineError, match="docker daemon does not answer"):
        compose.detect(_env(tmp_path, CONTAINER="docker"))
    with pytest.raises(compose.EngineError, match="CONTAINER=nerdctl"):
        compose.detect(_env(tmp_path, CONTAINER="nerdctl"))
    with pytest.raises(compose.EngineError, match="podman-compose is not installed"):
        compose.detect(_env(tmp_path, COMPOSE="podman-compose"))


def test_make_up_without_an_engine_writes_nothing(tmp_path):
    # A copy of the deployment files, so that the repository's own secrets/ is not involved.
    (tmp_path / "deploy").mkdir()
    for name in ("compose.py", "stack.py"):
        shutil.copy(ROOT / "deploy" / name, tmp_path / "deploy" / name)
    shutil.copy(ROOT / "compose.yaml", tmp_path / "compose.yaml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake(bin_dir, "podman", PODMAN_43)
    result = subprocess.run(
        [sys.executable, "deploy/compose.py", "up"],
        cwd=tmp_path,
        env=_env(bin_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "No usable container engine: podman 4.3.1" in result.stderr
    assert not (tmp_path / "secrets").exists()


# --- the database volume and its password -----------------------------------------------------

# An engine with one gateway container whose log ends in psycopg's refusal, and a pgdata volume.
PODMAN_WITH_OLD_VOLUME = """case "$1" in
  ps) echo mcp-gateway_gateway_1 ;;
  logs) echo 'start-up failed: connection to server at "postgres" (10.89.0.2), port 5432 failed:'
        echo 'FATAL:  password authentication failed for user "gateway"' ;;
  volume) exit 0 ;;
  *) exit 0 ;;
esac"""


def test_a_new_clone_next_to_an_old_volume_is_refused_before_anything_is_written(
    tmp_path, monkeypatch, capsys
):
    _fake(tmp_path, "podman", PODMAN_WITH_OLD_VOLUME)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(compose, "SECRETS", tmp_path / "secrets")
    engine = compose.Compose("podman", (str(tmp_path / "podman"), "compose"), False)
    assert compose.up(engine, "http://127.0.0.1:1/health", timeout=0) == 1
    message = capsys.readouterr().err
    assert f"{compose.PROJECT}_pgdata exists, but secrets/postgres_password does not" in message
    assert "make down-volumes" in message
    assert not (tmp_path / "secrets").exists()


def test_a_password_the_database_refuses_is_named_with_the_way_out(tmp_path, monkeypatch):
    _fake(tmp_path, "podman", PODMAN_WITH_OLD_VOLUME)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    engine = compose.Compose("podman", (str(tmp_path / "podman"), "compose"), False)
    message = compose.diagnose(engine, "http://127.0.0.1:1/health", 300)
    assert "does not accept the password in secrets/" in message
    assert "make down-volumes" in message and "Restore the secrets/ directory" in message


# --- nginx-resolvers.envsh -------------------------------------------------------------------

# Two container networks, 10.89.0.0/24 and 10.89.1.0/24 (little-endian hex, as the kernel
# writes /proc/net/route), and the default route through the first one's bridge.
ROUTES = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100590A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0000590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth1\t0001590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def _resolvers(tmp_path: Path, servers: str, shell: str = "sh") -> subprocess.CompletedProcess:
    routes = tmp_path / "route"
    routes.write_text(ROUTES)
    return subprocess.run(
        [shell, "-c", f'. "{RESOLVERS}"; printf %s "$NGINX_LOCAL_RESOLVERS"'],
        env={
            "PATH": os.environ["PATH"],
            "NGINX_LOCAL_RESOLVERS": servers,
            "GATEWAY_RESOLVERS_ROUTES": str(routes),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("shell", [s for s in ("sh", "dash", "bash", "busybox") if shutil.which(s)])
def test_podman_before_4_5_loses_the_hosts_resolver(tmp_path, shell):
    # What podman 4.3 writes to a container on two networks: both aardvark-dns addresses, then
    # the host's server, which answers NXDOMAIN for service names.
    args = ("busybox", "sh") if shell == "busybox" else (shell,)
    result = _resolvers(tmp_path, "10.89.1.1 10.89.0.1 10.255.255.53", shell=" ".join(args))
    assert result.stdout.splitlines()[-1] == "10.89.1.1 10.89.0.1", result


def test_dockers_embedded_dns_and_a_clean_list_stay_as_they_are(tmp_path):
    assert _resolvers(tmp_path, "127.0.0.11").stdout == "127.0.0.11"
    assert _resolvers(tmp_path, "10.89.0.1 10.89.1.1").stdout == "10.89.0.1 10.89.1.1"


def test_no_container_dns_at_all_keeps_the_list_with_a_warning(tmp_path):
    result = _resolvers(tmp_path, "10.255.255.53 [fd00::1]")
    assert result.stdout == "10.255.255.53 [fd00::1]"
    assert "keeping them all" in result.stderr


def test_compose_mounts_the_resolver_filter_after_the_images_own_script():
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert (
        "./deploy/nginx-resolvers.envsh:/docker-entrypoint.d/16-gateway-resolvers.envsh:ro" in text
    )
    assert os.access(RESOLVERS, os.X_OK)  # the entrypoint sources only executable scripts


def test_compose_settings_come_from_the_environment_then_dot_env(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("# the operator's file\nADMIN_EMAIL='ops@example.com'\nGATEWAY_PORT=8123\n")
    monkeypatch.delenv("ADMIN_EMAIL", raising=False)
    assert compose.compose_setting("ADMIN_EMAIL", env_file=env_file) == "ops@example.com"
    assert compose.compose_setting("GATEWAY_PORT", r"\d+", env_file=env_file) == "8123"
    assert compose.compose_setting("CORS_ORIGINS", env_file=env_file) is None
    monkeypatch.setenv("ADMIN_EMAIL", "env@example.com")
    assert compose.compose_setting("ADMIN_EMAIL", env_file=env_file) == "env@example.com"


@pytest.mark.parametrize(
    ("dotenv", "refused"),
    [
        ("", True),
        ("ANTHROPIC_API_KEY=\nLLM_ALLOW_OFFLINE=false\n", True),
        ("OPENAI_API_KEY=sk-test\n", False),
        ("OPENAI_BASE_URL='http://127.0.0.1:11434/v1'\n", False),
        ("ANTHROPIC_API_KEY_FILE=/run/secrets/anthropic\n", False),
        ("LLM_ALLOW_OFFLINE=true\n", False),
    ],
)
def test_make_up_without_a_model_provider_is_refused_before_anything_is_written(
    tmp_path, monkeypatch, capsys, dotenv, refused
):
    monkeypatch.delenv("COMPOSE_FILE", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-in-the-shell-does-not-reach-the-container")
    (tmp_path / ".env").write_text(dotenv)
    assert (compose.missing_provider() is not None) == refused
    if not refused:
        return
    _fake(tmp_path, "podman", 'case "$1" in volume) exit 1 ;; *) echo "ran: $*" ;; esac')
    monkeypatch.setattr(compose, "SECRETS", tmp_path / "secrets")
    engine = compose.Compose("podman", (str(tmp_path / "podman"), "compose"), False)
    assert compose.up(engine, "http://127.0.0.1:1/health", timeout=0) == 1
    captured = capsys.readouterr()
    assert "needs a model provider" in captured.err and "LLM_ALLOW_OFFLINE=true" in captured.err
    assert "ran:" not in captured.out
    assert not (tmp_path / "secrets").exists()


def test_scale_and_restart_wait_as_long_as_nginx_keeps_a_dns_answer():
    # make scale and make restart wait this long for every nginx worker to ask again.
    text = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    valid = re.search(r"resolver \S+ valid=(\d+)s", text)
    assert valid is not None and int(valid.group(1)) == compose.NGINX_DNS_VALID_SECONDS
