"""Helpers for `make up`: the compose secrets on first run, and waiting for the stack.

Standard library only: it runs with the system Python, before any virtualenv exists.

    python3 deploy/stack.py secrets [DIR]        # create missing secret files (default secrets/)
    python3 deploy/stack.py wait URL [SECONDS]   # until URL answers 200, or fail
"""

from __future__ import annotations

import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Must match POSTGRES_USER and POSTGRES_DB in compose.yaml, and its service name.
DATABASE_USER = "gateway"
DATABASE_NAME = "gateway"
DATABASE_HOST = "postgres:5432"


def create_secrets(directory: Path) -> list[str]:
    """Write the missing secret files; never replace one (the database keeps its password)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    # Only the owner may list or enter the directory; the files themselves are readable by
    # the container users (gateway uid 1000, postgres uid 999), which compose bind-mounts
    # them as, with these very permissions.
    directory.chmod(0o700)
    password_path = directory / "postgres_password"
    created = []
    if not password_path.exists():
        _write(password_path, secrets.token_hex(24))
        created.append(password_path.name)
    password = password_path.read_text(encoding="utf-8").strip()
    url = f"postgresql://{DATABASE_USER}:{password}@{DATABASE_HOST}/{DATABASE_NAME}"
    url_path = directory / "database_url"
    if not url_path.exists() or url_path.read_text(encoding="utf-8").strip() != url:
        # Derived from the password: rewritten whenever the password file was replaced.
        _write(url_path, url)
        created.append(url_path.name)
    for name, make in (
        ("jwt_secret_key", lambda: secrets.token_urlsafe(48)),
        # Used only when ADMIN_EMAIL is set: the first admin's password.
        ("admin_password", lambda: secrets.token_urlsafe(18)),
    ):
        if not (directory / name).exists():
            _write(directory / name, make())
            created.append(name)
    return created


def _write(path: Path, value: str) -> None:
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o644)


def wait_healthy(url: str, timeout: float) -> bool:
    """True once ``url`` answers 200; False when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(2)
    return False


def main(argv: list[str]) -> int:
    if argv[:1] == ["secrets"] and len(argv) <= 2:
        directory = Path(argv[1] if len(argv) == 2 else "secrets")
        created = create_secrets(directory)
        if created:
            print(f"created {', '.join(created)} in {directory}/")  # noqa: T201
        return 0
    if argv[:1] == ["wait"] and len(argv) in (2, 3):
        timeout = float(argv[2]) if len(argv) == 3 else 180
        if wait_healthy(argv[1], timeout):
            return 0
        print(f"{argv[1]} did not answer 200 within {timeout:g} s", file=sys.stderr)  # noqa: T201
        return 1
    print(__doc__, file=sys.stderr)  # noqa: T201
    return 2


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main(sys.argv[1:]))
