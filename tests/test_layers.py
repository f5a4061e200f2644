"""Architecture rules that a refactor could quietly break."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from gateway.settings import readme_with_table

ROOT = Path(__file__).resolve().parent.parent
# gunicorn.conf.py may set process plumbing (PROMETHEUS_MULTIPROC_DIR, DATABASE_URL for the
# embedded server); reading configuration goes through gateway.settings.
ENVIRONMENT_READERS = {"gateway/settings.py"}


def test_the_import_layers_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_settings_read_the_environment():
    readers = []
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("environ", "getenv")
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and name not in ENVIRONMENT_READERS
            ):
                readers.append(f"{name}:{node.lineno}")
    assert readers == []


def test_readme_configuration_table_matches_the_settings_model():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == readme_with_table(readme), "README is stale: run `make settings-table`"
