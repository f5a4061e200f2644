"""The hub against the reference TypeScript server (npm @modelcontextprotocol/server-everything)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from gateway.mcp import MCPHub
from tests.fakes.mcp_helpers import FAKES, REPO, free_port, http_server, server_config

PACKAGE = "@modelcontextprotocol/server-everything@2026.8.31"
NPM_DIR = REPO / ".cache" / "npm"
ENTRY = (
    NPM_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
)


@pytest.fixture(scope="module")
def everything() -> str:
    """Path of server-everything's entry point, installed with npm into the gitignored cache."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not ENTRY.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is present but npm is not: cannot install " + PACKAGE)
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(NPM_DIR), PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0 or not ENTRY.exists():
            pytest.fail(f"npm install {PACKAGE} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return str(ENTRY)


@pytest.fixture(scope="module")
def hub(everything):
    hub = MCPHub(
        [
            server_config(
                "everything", command="node", args=[everything, "stdio"], protocol="legacy"
            )
        ],
        first_use_wait=15,
    )
    yield hub
    hub.close()


def test_lists_the_reference_server_tools(hub):
    names = {t.name for t in hub.list_tools()}
    assert {"echo", "get-sum", "get-tiny-image", "trigger-long-running-operation"} <= names
    assert hub.statuses()[0].protocol_version == "2025-11-25"


def test_calls_echo_and_sum(hub):
    assert "hello" in hub.call_tool("everything", "echo", {"message": "hello"}).text()
    assert "5" in hub.call_tool("everything", "get-sum", {"a": 2, "b": 3}).text()


def test_image_blocks_carry_base64_and_mime_type(hub):
    blocks = hub.call_tool("everything", "get-tiny-image", {}).content
    image = next(b for b in blocks if b["type"] == "image")
    assert image["mimeType"] == "image/png" and len(image["data"]) > 20


def test_unknown_tool_error_result_style_is_normalized(hub):
    result = hub.call_tool("everything", "no-such-tool", {})
    assert result.is_error and "no-such-tool" in result.text()


def test_long_running_operation_is_cut_at_the_timeout(hub):
    result = hub.call_tool(
        "everything", "trigger-long-running-operation", {"duration": 5, "steps": 5}, timeout=0.5
    )
    assert result.is_error and "timed out" in result.text()
    assert "ok" in hub.call_tool("everything", "echo", {"message": "ok"}).text()


def test_streamable_http_bound_to_loopback(everything):
    port = free_port()
    argv = ["node", "--import", str(FAKES / "listen_local.mjs"), everything, "streamableHttp"]
    with http_server(port, argv=argv, env={"PORT": str(port)}):
        assert _listening_addresses(port) == {"127.0.0.1"}
        hub = MCPHub([server_config("ev", url=f"http://127.0.0.1:{port}/mcp")], first_use_wait=10)
        try:
            assert "echo" in {t.name for t in hub.list_tools()}
            assert "via http" in hub.call_tool("ev", "echo", {"message": "via http"}).text()
        finally:
            hub.close()


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP listener on ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, hexport = local.rsplit(":", 1)
                if state == "0A" and int(hexport, 16) == port:
                    found.add("127.0.0.1" if addr == "0100007F" else addr)
    return found


def test_legacy_sse_transport(everything):
    port = free_port()
    argv = ["node", "--import", str(FAKES / "listen_local.mjs"), everything, "sse"]
    with http_server(port, argv=argv, env={"PORT": str(port)}):
        entry = {"url": f"http://127.0.0.1:{port}/sse", "transport": "sse", "protocol": "legacy"}
        hub = MCPHub([server_config("ev", **entry)], first_use_wait=10)
        try:
            assert "get-sum" in {t.name for t in hub.list_tools()}
            assert hub.statuses()[0].transport == "sse"
            assert "7" in hub.call_tool("ev", "get-sum", {"a": 3, "b": 4}).text()
        finally:
            hub.close()
