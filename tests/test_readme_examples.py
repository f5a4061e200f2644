"""README's shell examples, run as written against `make run`'s configuration.

Every ```bash block of README.md that talks to localhost:8000 is run in order, in one bash
(`set -euo pipefail`; TOKEN and KEY carry over, as for a reader pasting them), against
gunicorn with gunicorn.conf.py, development mode, config/mcp_servers.json (time and git) and
the offline provider. Only the address changes: localhost:8000 becomes the test's port.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

from tests.live_server import ROOT, gunicorn

BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [
        block
        for block in BLOCK.findall(text)
        if "localhost:8000" in block and not re.search(r"^\s*make ", block, re.MULTILINE)
    ]


def _documents(output: str) -> list[object]:
    """Each JSON body the script printed (a DEBUG trap puts each command's on its own line)."""
    found = []
    for line in output.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def _calls(documents: list[object]) -> list[dict]:
    return [
        call for doc in documents if isinstance(doc, dict) for call in doc.get("tool_calls") or ()
    ]


def test_readme_examples_work_as_written(database_url, app):
    blocks = readme_examples()
    assert len(blocks) >= 3  # quick start, accounts, chat
    env = {
        "ENVIRONMENT": "development",
        "DATABASE_URL": database_url,
        "MCP_CONFIG": str(ROOT / "config" / "mcp_servers.json"),
        "ROUTING_SEMANTIC": "true",
        "LLM_PROVIDER": "offline",
    }
    with gunicorn(env, workers=1, start_timeout=180) as server:
        script = "\n".join(blocks).replace("localhost:8000", server.url.removeprefix("http://"))
        result = subprocess.run(
            ["bash", "-c", "set -euo pipefail\ntrap 'echo' DEBUG\n" + script],
            cwd=ROOT,
            env={**os.environ, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stderr + result.stdout
    documents = _documents(result.stdout)
    assert {"status": "ok"} in documents
    servers = next(d["servers"] for d in documents if isinstance(d, dict) and "servers" in d)
    assert {s["name"]: s["state"] for s in servers} == {"time": "ready", "git": "ready"}
    calls = _calls(documents)
    tokyo = [c for c in calls if c["tool"] == "get_current_time"]
    assert tokyo and all(c["arguments"] == {"timezone": "Asia/Tokyo"} for c in tokyo), calls
    assert all(not c["is_error"] for c in tokyo)
    git = [c for c in calls if c["server"] == "git"]
    assert git and git[0]["tool"] == "git_log" and not git[0]["is_error"], git
    answers = [d["message"]["content"] for d in documents if isinstance(d, dict) and "message" in d]
    assert answers and not any("missing" in a for a in answers), answers
    me = [d for d in documents if isinstance(d, dict) and d.get("email") == "ada@example.com"]
    assert len(me) >= 3  # registered, then /auth/me with the token and with the API key
