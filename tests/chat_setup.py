"""A gateway wired to the fake LLM upstream and a real MCP test server, for chat tests."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
MCP_SERVER = ROOT / "tests" / "fakes" / "mcp_server.py"

if TYPE_CHECKING:
    from flask import Flask


def write_mcp_config(directory: Path) -> Path:
    """One stdio server ("calc", the SDK-built test server) in the mcpServers format."""
    path = directory / "mcp_servers.json"
    config = {
        "mcpServers": {
            "calc": {
                "command": sys.executable,
                "args": [str(MCP_SERVER)],
                "description": "Arithmetic and echo: add two numbers, echo text back.",
                "keywords": ["add", "sum", "plus", "math", "echo"],
                "timeout": 10,
            }
        }
    }
    path.write_text(json.dumps(config))
    return path


def chat_settings(fake_url: str, mcp_config: Path, **overrides: Any) -> dict[str, Any]:
    """Settings overrides: OpenAI provider at the fake, lexical routing, no retries."""
    llm_env = {
        "LLM_PROVIDER": "openai",
        "OPENAI_MODEL": "gpt-test",
        "LLM_MAX_RETRIES": "0",
        "LLM_TIMEOUT": "10",
        **overrides.pop("llm_env", {}),
    }
    return {
        "openai_base_url": f"{fake_url}/v1",
        "openai_api_key": "test-key",
        "mcp_config": str(mcp_config),
        "routing_env": {"ROUTING_SEMANTIC": "false"},
        "llm_env": llm_env,
        **overrides,
    }


def chat_env(fake_url: str, mcp_config: Path, **extra: str) -> dict[str, str]:
    """The same as environment variables, for a gunicorn process."""
    return {
        "OPENAI_BASE_URL": f"{fake_url}/v1",
        "OPENAI_API_KEY": "test-key",
        "MCP_CONFIG": str(mcp_config),
        "ROUTING_SEMANTIC": "false",
        "LLM_PROVIDER": "openai",
        "OPENAI_MODEL": "gpt-test",
        "LLM_MAX_RETRIES": "0",
        **extra,
    }


def start_mcp_servers(app: Flask, timeout: float = 60.0) -> None:
    """Start the app's MCP servers and wait until every one is ready (slow on a loaded host)."""
    from gateway.services import get_services
    from tests.fakes.mcp_helpers import wait_until

    with app.app_context():
        hub = get_services().mcp
        hub.start()
        ready = wait_until(lambda: {s.state for s in hub.statuses()} == {"ready"}, timeout=timeout)
        assert ready, [(s.name, s.state) for s in hub.statuses()]


@contextmanager
def chat_gateway(
    database_url: str, fake_url: str, mcp_config: Path, *, start_mcp: bool = True
) -> Iterator[Flask]:
    """A migrated gateway app at the fake upstream with the servers of ``mcp_config`` (see
    ``write_mcp_config``), started and ready unless ``start_mcp`` is false; its services are
    closed afterwards. For module fixtures, which take the ``app`` fixture first: the schema
    exists and tables are truncated after each test."""
    from gateway import create_app
    from gateway.database import upgrade_database
    from gateway.services import close_services
    from tests.conftest import test_settings

    app = create_app(test_settings(database_url, **chat_settings(fake_url, mcp_config)))
    upgrade_database(app)
    try:
        if start_mcp:
            start_mcp_servers(app)
        yield app
    finally:
        close_services(app)
