"""`make up / down / status / logs / restart / scale` with whichever compose this machine has.

Standard library only: it runs with the system Python, before any virtualenv exists.

    python3 deploy/compose.py which          # the compose command, or what to install (exit 1)
    python3 deploy/compose.py up [SECONDS]   # secrets, build, start, wait until healthy
    python3 deploy/compose.py down|down-volumes|status|logs [SERVICE]|restart|scale N

Engines, tried in this order unless CONTAINER (docker|podman) or COMPOSE (a whole command)
says otherwise: podman with `podman compose` (podman >= 4.7, which runs a compose provider),
podman with podman-compose (older podman), docker with `docker compose` (or Compose v2's
`docker-compose`). An engine whose daemon does not answer is skipped.

Where the engines differ, this file evens them out:
- podman-compose knows only the replicas of the current command line: `logs` and `restart`
  address every container of the service by its compose labels instead, and `down` sweeps what
  `--remove-orphans` leaves (scaled replicas, networks, the pod).
- podman runs health checks from systemd timers; without systemd as PID 1 (CI containers, WSL)
  nothing runs them and `depends_on: service_healthy` waits for ever. While `up` and `scale`
  run, and before `status`, this file runs the pending checks itself (`podman healthcheck run`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import stack

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "compose.yaml"
SECRETS = ROOT / "secrets"
# What compose.yaml's `name:` sets; COMPOSE_PROJECT_NAME runs a second, separate stack.
PROJECT = os.environ.get("COMPOSE_PROJECT_NAME") or re.search(
    r"^name:\s*(\S+)", COMPOSE_FILE.read_text(encoding="utf-8"), re.M
).group(1)
PROJECT_LABEL = f"com.docker.compose.project={PROJECT}"
# How long nginx keeps an answer of compose's DNS (deploy/nginx.conf, `resolver ... valid=`):
# after a replica starts, stops or moves, each nginx worker sees it at most this much later.
NGINX_DNS_VALID_SECONDS = 10
INSTALL = (
    "install Docker Engine with the Compose plugin (docker-compose-plugin), "
    "or Podman >= 4.7, or Podman with podman-compose (pip install podman-compose)"
)


class EngineError(Exception):
    """No usable engine and compose pair: the message says what to install, in one line."""


@dataclass(frozen=True)
class Compose:
    engine: str  # "docker" or "podman": the CLI that manages containers, volumes, networks
    command: tuple[str, ...]  # e.g. ("podman", "compose") or ("podman-compose",)
    podman_compose: bool  # the podman-compose dialect (directly or as podman's provider)

    def run(self, *args: str, check: bool = True) -> int:
        result = subprocess.run([*self.command, "-p", PROJECT, *args], cwd=ROOT)
        if check and result.returncode:
            raise SystemExit(result.returncode)
        return result.returncode


def _output(*args: str) -> tuple[int, str]:
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return result.returncode, result.stdout + result.stderr


def _version(text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(part or 0) for part in match.groups()) if match else (0,)


class _Finder:
    """Executables and their answers, looked up on the PATH of ``environ``."""

    def __init__(self, environ: Mapping[str, str]):
        self.path = environ.get("PATH", os.defpath)

    def which(self, name: str) -> str | None:
        """On PATH, or in the project's virtualenv (`make test` installs podman-compose there)."""
        return shutil.which(name, path=self.path) or shutil.which(
            name, path=str(ROOT / ".venv" / "bin")
        )

    def output(self, name: str, *args: str) -> tuple[int, str]:
        found = self.which(name)
        return _output(found, *args) if found else (127, f"{name}: not found")


def detect(environ: Mapping[str, str] | None = None) -> Compose:
    """The compose to use, or EngineError saying what to install. Nothing is written."""
    env = os.environ if environ is None else environ
    find = _Finder(env)
    wanted = env.get("CONTAINER") or ""
    if wanted not in ("", "docker", "podman"):
        raise EngineError(f"CONTAINER={wanted}: use docker or podman")
    if env.get("COMPOSE"):
        return _given(find, shlex.split(env["COMPOSE"]))
    problems = []
    for engine in [wanted] if wanted else ["podman", "docker"]:
        try:
            return _podman(find) if engine == "podman" else _docker(find)
        except EngineError as exc:
            problems.append(str(exc))
    raise EngineError(f"{'; '.join(problems)}: {INSTALL}")


def _given(find: _Finder, command: list[str]) -> Compose:
    found = find.which(command[0])
    if not found:
        raise EngineError(f"COMPOSE={shlex.join(command)}: {command[0]} is not installed")
    code, out = _output(found, *command[1:], "version")
    if code:
        raise EngineError(f"COMPOSE={shlex.join(command)} does not run: {_last_line(out)}")
    engine = "podman" if "podman" in command[0] else "docker"
    dialect = "podman-compose" in out or "podman-compose" in command[0]
    return Compose(engine, (found, *command[1:]), dialect)


def _podman(find: _Finder) -> Compose:
    if not find.which("podman"):
        raise EngineError("podman is not installed")
    _, version = find.output("podman", "version", "--format", "{{.Client.Version}}")
    version = version.strip()
    if _version(version) >= (4, 7):
        code, out = find.output("podman", "compose", "version")
        if code == 0:
            podman = find.which("podman")
            return Compose("podman", (podman, "compose"), "podman-compose" in out)
    found = find.which("podman-compose")
    if found:
        return Compose("podman", (found,), True)
    if _version(version) >= (4, 7):
        raise EngineError(f"podman {version} has no compose provider")
    raise EngineError(f"podman {version} has no `podman compose` (4.7+) and no podman-compose")


def _docker(find: _Finder) -> Compose:
    if not find.which("docker"):
        raise EngineError("docker is not installed")
    docker = find.which("docker")
    if find.output("docker", "compose", "version")[0] == 0:
        command: tuple[str, ...] = (docker, "compose")
    elif _version(find.output("docker-compose", "version")[1]) >= (2,):
        command = (find.which("docker-compose"),)
    else:
        raise EngineError("docker has no Compose v2 (`docker compose`)")
    code, out = find.output("docker", "info", "--format", "{{.ServerVersion}}")
    if code:
        raise EngineError(f"the docker daemon does not answer ({_last_line(out)})")
    return Compose("docker", command, False)


def _err(message: str) -> None:
    print(message, file=sys.stderr)  # noqa: T201


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# --- containers of this project, by label ----------------------------------------------------


def containers(compose: Compose, service: str | None = None, running: bool = False) -> list[str]:
    """Names of this project's containers (of one service), every replica included."""
    args = [compose.engine, "ps", "--format", "{{.Names}}", "--filter", f"label={PROJECT_LABEL}"]
    if service:
        args += ["--filter", f"label=com.docker.compose.service={service}"]
    if not running:
        args.append("-a")
    code, out = _output(*args)
    return sorted(out.split()) if code == 0 else []


def networks(compose: Compose) -> list[str]:
    code, out = _output(compose.engine, "network", "ls", "-q", "--filter", f"label={PROJECT_LABEL}")
    return out.split() if code == 0 else []


def volume_exists(compose: Compose, name: str) -> bool:
    return _output(compose.engine, "volume", "inspect", f"{PROJECT}_{name}")[0] == 0


def _needs_health_ticks(compose: Compose) -> bool:
    # sd_booted(3): systemd is PID 1 exactly when this directory exists.
    return compose.engine == "podman" and not Path("/run/systemd/system").is_dir()


def tick_health(compose: Compose) -> None:
    """Run the pending health checks of this project's containers once (podman, no systemd)."""
    code, out = _output(
        "podman", "ps", "--filter", f"label={PROJECT_LABEL}", "--format", "{{.ID}} {{.Status}}"
    )
    checks = [
        subprocess.Popen(
            ["podman", "healthcheck", "run", line.split()[0]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for line in out.splitlines()
        if code == 0 and re.search(r"\((starting|healthy|unhealthy)\)", line)
    ]
    for check in checks:
        check.wait()


class HealthTicker:
    """Runs the health checks every ``interval`` seconds while compose waits on them."""

    def __init__(self, compose: Compose, interval: float = 2.0):
        self.compose, self.interval = compose, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> HealthTicker:
        if _needs_health_ticks(self.compose):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            tick_health(self.compose)


# --- the commands ----------------------------------------------------------------------------


# Any of these in .env gives the gateway a provider that can answer (gateway/settings.py).
PROVIDER_SETTINGS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_API_KEY_FILE",
    "OPENAI_API_KEY",
    "OPENAI_API_KEY_FILE",
    "OPENAI_BASE_URL",
)


def up(compose: Compose, url: str, timeout: float) -> int:
    if volume_exists(compose, "pgdata") and not (SECRETS / "postgres_password").exists():
        print(_mismatch("exists, but secrets/postgres_password does not"), file=sys.stderr)  # noqa: T201
        return 1
    missing = missing_provider()
    if missing:
        print(missing, file=sys.stderr)  # noqa: T201
        return 1
    created = stack.create_secrets(SECRETS)
    if created:
        print(f"created {', '.join(created)} in secrets/")  # noqa: T201
    with HealthTicker(compose):
        compose.run("up", "-d", "--build", "--remove-orphans")
        print(f"Waiting for {url} ...")  # noqa: T201
        healthy = stack.wait_healthy(url, timeout)
    if _needs_health_ticks(compose):
        tick_health(compose)
    compose.run("ps", check=False)
    if not healthy:
        print(diagnose(compose, url, timeout), file=sys.stderr)  # noqa: T201
        return 1
    base = url.removesuffix("/health")
    admin = compose_setting("ADMIN_EMAIL")
    if admin:
        first_admin = f"The first admin is {admin}; the password is in secrets/admin_password\n"
    else:
        first_admin = (
            "The first admin, either way:\n"
            "  - ADMIN_EMAIL=you@example.com in .env, then make up again; the password is in "
            "secrets/admin_password\n"
            f"  - {shlex.join(compose.command)} -p {PROJECT} exec gateway flask --app wsgi "
            "create-admin you@example.com   (prompts for a password)\n"
        )
    email = admin or "you@example.com"
    print(  # noqa: T201
        f"\nMCP Gateway is up at {base} (production mode: no mock authentication).\n"
        f"{first_admin}"
        "A token:\n"
        f"  curl -s -X POST {base}/auth/login -H 'Content-Type: application/json' \\\n"
        f"""       -d '{{"email": "{email}", "password": "..."}}'"""
    )
    return 0


def missing_provider() -> str | None:
    """Why the gateway would refuse to start (production needs a model provider), from ``.env``.

    The gateway's variables reach it only through ``.env`` (compose.yaml's ``env_file``), so the
    shell's are not looked at. None when ``.env`` names a provider, or when COMPOSE_FILE adds
    files that may set one.
    """
    if os.environ.get("COMPOSE_FILE"):
        return None
    if any(dotenv_setting(name) for name in PROVIDER_SETTINGS):
        return None
    if (dotenv_setting("LLM_ALLOW_OFFLINE") or "").lower() in ("1", "true", "yes", "on"):
        return None
    return (
        "make up runs the gateway in production mode, which needs a model provider: put "
        "ANTHROPIC_API_KEY=..., OPENAI_API_KEY=... or OPENAI_BASE_URL=... in .env "
        "(or LLM_ALLOW_OFFLINE=true to try the stack with the offline provider), then make up."
    )


def _mismatch(what: str) -> str:
    return (
        f"The database volume {PROJECT}_pgdata {what}: the database keeps the password it was "
        "created with. Restore the secrets/ directory that belongs to it, or delete the "
        "database and all its data with `make down-volumes`, then `make up`."
    )


def diagnose(compose: Compose, url: str, timeout: float) -> str:
    """Why the stack is not healthy: the known causes, else the gateway's last log lines."""
    names = containers(compose, "gateway")
    logs = "\n".join(_output(compose.engine, "logs", "--tail", "40", name)[1] for name in names)
    if "password authentication failed" in logs:
        return _mismatch("does not accept the password in secrets/")
    tail = "\n".join(logs.strip().splitlines()[-20:])
    return f"{url} did not answer 200 within {timeout:g} s. The gateway's last lines:\n{tail}"


def down(compose: Compose, volumes: bool = False) -> int:
    """Stop and remove every container of the project (all replicas) and its networks."""
    compose.run("down", "--remove-orphans", *(["--volumes"] if volumes else []), check=False)
    # podman-compose forgets replicas and networks it did not start in this very command.
    leftovers = containers(compose)
    if leftovers:
        _output(compose.engine, "rm", "-f", "-t", "35", *leftovers)
    if compose.engine == "podman":
        _output("podman", "pod", "rm", "-f", "--ignore", f"pod_{PROJECT}")
    for network in networks(compose):
        _output(compose.engine, "network", "rm", network)
    if volumes:
        _output(compose.engine, "volume", "rm", "-f", f"{PROJECT}_pgdata")
    left = containers(compose) + networks(compose)
    if left:
        print(f"still present after down: {' '.join(left)}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


def status(compose: Compose) -> int:
    if _needs_health_ticks(compose):
        tick_health(compose)
    return compose.run("ps", check=False)


def logs(compose: Compose, service: str | None, follow: bool) -> int:
    if not compose.podman_compose:
        args = ["logs", "--tail=200", *(["-f"] if follow else []), *([service] if service else [])]
        return compose.run(*args, check=False)
    names = containers(compose, service)
    if not names:
        print(f"no containers for {service or PROJECT}", file=sys.stderr)  # noqa: T201
        return 1
    args = ["podman", "logs", "--tail", "200", *(["-f"] if follow else [])]
    return subprocess.run([*args, *(["--names"] if len(names) > 1 else []), *names]).returncode


def restart(compose: Compose, service: str) -> int:
    """Restart ``service``'s replicas one at a time, each healthy again and in nginx's DNS
    answer (the engine may give it a new address) before the next.

    A starting gateway refuses connections until it is warm (gateway/listeners.py): with two
    replicas or more, nginx always has one that answers, so a restart fails no request.
    """
    names = containers(compose, service, running=True)
    with HealthTicker(compose):
        for name in names:
            code = subprocess.run([compose.engine, "restart", "-t", "35", name]).returncode
            # The restarted one reports "starting" again until its first passing check.
            code = code or wait_healthy(compose, service, len(names), 300)
            if code:
                return code
            _until_nginx_has_asked_again()
    return 0


def _until_nginx_has_asked_again() -> None:
    time.sleep(NGINX_DNS_VALID_SECONDS + 1)


def scale(compose: Compose, replicas: int, timeout: float = 300) -> int:
    """``replicas`` gateways, returning once every one of them is healthy and nginx's DNS answer
    has been renewed, so that every nginx worker spreads requests over exactly them."""
    with HealthTicker(compose):
        code = compose.run(
            "up", "-d", "--no-recreate", "--scale", f"gateway={replicas}", check=False
        )
        code = code or wait_healthy(compose, "gateway", replicas, timeout)
    if code == 0:
        _until_nginx_has_asked_again()
    return code


def wait_healthy(compose: Compose, service: str, replicas: int, timeout: float) -> int:
    """0 once ``replicas`` containers of ``service`` run and all are healthy, else 1."""
    deadline = time.monotonic() + timeout
    while True:
        names = containers(compose, service, running=True)
        states = [health(compose, name) for name in names]
        if len(names) >= replicas and set(states) == {"healthy"}:
            return 0
        if time.monotonic() > deadline:
            _err(f"{service}: {dict(zip(names, states, strict=True))} after {timeout:g} s")
            return 1
        time.sleep(2)


def health(compose: Compose, name: str) -> str:
    code, out = _output(compose.engine, "inspect", "--format", "{{.State.Health.Status}}", name)
    return out.strip() if code == 0 else "gone"


def gateway_port() -> str:
    """GATEWAY_PORT as compose sees it: the environment, else .env, else 8000."""
    return compose_setting("GATEWAY_PORT", r"\d+") or "8000"


def compose_setting(
    name: str, pattern: str = r"[^'\"\s#]+", *, env_file: Path | None = None
) -> str | None:
    """A variable as compose reads it for interpolation: the environment, else ``.env``."""
    if os.environ.get(name):
        return os.environ[name]
    return dotenv_setting(name, pattern, env_file=env_file)


def dotenv_setting(
    name: str, pattern: str = r"[^'\"\s#]+", *, env_file: Path | None = None
) -> str | None:
    """A variable's value in ``.env`` (what the containers get through ``env_file``), or None."""
    env_file = env_file or ROOT / ".env"
    if not env_file.exists():
        return None
    found = re.search(
        rf"^[ \t]*{name}[ \t]*=[ \t]*['\"]?({pattern})", env_file.read_text(encoding="utf-8"), re.M
    )
    return found.group(1) if found else None


def main(argv: Sequence[str]) -> int:
    try:
        compose = detect()
    except EngineError as exc:
        print(f"No usable container engine: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    command, args = (argv[0], list(argv[1:])) if argv else ("", [])
    url = f"http://127.0.0.1:{gateway_port()}/health"
    if command == "which":
        print(shlex.join(compose.command))  # noqa: T201
        return 0
    if command == "up":
        return up(compose, url, float(args[0]) if args else 300)
    if command in ("down", "down-volumes"):
        return down(compose, volumes=command == "down-volumes")
    if command == "status":
        return status(compose)
    if command == "logs":
        return logs(compose, args[0] if args else None, follow=os.environ.get("FOLLOW") != "0")
    if command == "restart":
        return restart(compose, args[0] if args else "gateway")
    if command == "scale" and len(args) == 1 and args[0].isdigit():
        return scale(compose, int(args[0]))
    print(__doc__, file=sys.stderr)  # noqa: T201
    return 2


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main(sys.argv[1:]))
