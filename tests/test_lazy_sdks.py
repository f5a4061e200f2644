"""A worker imports the SDK of a provider only when one is configured (~38 MB for Anthropic's)."""

from __future__ import annotations

import subprocess
import sys

from tests.live_server import ROOT

PROGRAM = """
import sys
import wsgi  # the app gunicorn serves, routes and /v1 field checks included
print(sorted(m for m in ("anthropic", "openai") if m in sys.modules))
"""


def test_building_the_app_imports_no_provider_sdk(database_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url,
            "JWT_SECRET_KEY": "test-secret-" + "x" * 40,
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
