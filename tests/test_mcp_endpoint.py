"""The gateway as an MCP server: ``/mcp`` under real gunicorn, with the official SDK client.

Two real stdio servers sit behind it: the SDK-built test server ("calc": tools, a resource, a
prompt) and the published ``mcp-server-time``. Users see "calc" only; admins see both.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx2
import psycopg2
import pytest
import requests
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from gateway import create_app
from tests.conftest import TEST_SECRET, test_settings
from tests.factories import create_account
from tests.fakes.mcp_helpers import REPO, SERVER_SCRIPT
from tests.live_server import LiveServer, gunicorn, served_by
from tests.nginx import nginx

MODES = ["legacy", "2026-07-28"]


def write_config(directory) -> str:
    path = directory / "mcp_servers.json"
    servers = {
        "calc": {
            "command": sys.executable,
            "args": [str(SERVER_SCRIPT)],
            "description": "Arithmetic and echo: add two numbers, echo text back.",
            "keywords": ["add", "sum", "echo"],
            "always": True,
            "timeout": 10,
        },
        "time": {
            "command": "python",
            "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
            "description": "Current time in any IANA timezone and conversion between zones.",
            "keywords": ["time", "timezone", "clock", "now"],
            "timeout": 10,
        },
    }
    path.write_text(json.dumps({"mcpServers": servers}))
    return str(path)


def endpoint_env(database_url: str, config: str, **extra: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "JWT_SECRET_KEY": TEST_SECRET,
        "MCP_CONFIG": config,
        "MCP_ENDPOINT_ROLES": json.dumps({"admin": "*", "user": ["calc"]}),
        "MCP_ENDPOINT_RATE_LIMIT": "25",
        **extra,
    }


class Live:
    """The live gateway, a local app on the same database (accounts), and its keys."""

    def __init__(self, server: LiveServer, database_url: str) -> None:
        self.server = server
        self.url = server.url + "/mcp"
        self.database_url = database_url
        self.app = create_app(test_settings(database_url))

    def api_key(self, role: str = "user") -> str:
        account = create_account(self.app, role=role)
        response = requests.post(
            self.server.url + "/auth/keys",
            json={"name": "mcp"},
            headers=account.headers,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()["key"]


@pytest.fixture(scope="module")
def live(make_database, tmp_path_factory) -> Iterator[Live]:
    url = make_database()
    config = write_config(tmp_path_factory.mktemp("mcp-endpoint"))
    with gunicorn(endpoint_env(url, config), workers=2, threads=4) as server:
        live = Live(server, url)
        _wait_ready(live)
        yield live


def _wait_ready(live: Live, timeout: float = 90) -> None:
    """Both servers ready in every worker: an admin sees both servers' tools many times over."""
    key = live.api_key("admin")
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 6:
        names = asyncio.run(_tool_names(live.url, key, "2026-07-28"))
        streak = streak + 1 if {"calc__add", "time__get_current_time"} <= names else 0
        if time.monotonic() > deadline:
            raise AssertionError(f"servers not ready: {names}\n{live.server.log()[-3000:]}")
        time.sleep(0.2)


def session(url: str, key: str | None, mode: str) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return http, Client(streamable_http_client(url, http_client=http), mode=mode, cache=None)


async def _tool_names(url: str, key: str, mode: str) -> set[str]:
    http, client = session(url, key, mode)
    async with http, client:
        return {t.name for t in (await client.list_tools()).tools}


@pytest.mark.parametrize("mode", MODES)
def test_sdk_client_lists_and_calls_tools_reads_resources_and_gets_prompts(live, mode):
    key = live.api_key("admin")

    async def scenario() -> None:
        http, client = session(live.url, key, mode)
        async with http, client:
            assert client.protocol_version == ("2025-11-25" if mode == "legacy" else mode)
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"calc__add", "calc__blocks", "time__get_current_time"} <= names
            now = await client.call_tool("time__get_current_time", {"timezone": "Asia/Tokyo"})
            assert not now.is_error
            assert json.loads(now.content[0].text)["timezone"] == "Asia/Tokyo"
            added = await client.call_tool("calc__add", {"a": 2, "b": 3})
            assert added.content[0].text == "5" and added.structured_content == {"result": 5}
            # Every content kind passes through as the server gave it.
            blocks = await client.call_tool("calc__blocks", {})
            kinds = [b.type for b in blocks.content]
            assert kinds == ["text", "image", "audio", "resource", "resource_link"]
            failed = await client.call_tool("calc__fail", {"message": "nope"})
            assert failed.is_error and "nope" in failed.content[0].text

            resources = (await client.list_resources()).resources
            readme = next(r for r in resources if r.name == "calc__readme")
            assert str(readme.uri) == "gateway://calc/note%3A%2F%2Freadme"
            contents = (await client.read_resource(str(readme.uri))).contents
            assert contents[0].text == "read me"

            prompts = {p.name for p in (await client.list_prompts()).prompts}
            assert "calc__greet" in prompts
            prompt = await client.get_prompt("calc__greet", {"name": "Ada"})
            assert "Say hello to Ada." in prompt.messages[0].content.text

    asyncio.run(scenario())


def test_no_key_gets_401_naming_the_protected_resource_metadata(live):
    response = requests.post(live.url, json={}, timeout=10)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer resource_metadata=")
    metadata_url = challenge.split('"')[1]
    metadata = requests.get(metadata_url, timeout=10).json()
    assert metadata["resource"] == live.url
    assert metadata["bearer_methods_supported"] == ["header"]
    # Stateless: no standing stream to open, so GET is 405 as the transport spec says.
    assert (
        requests.get(live.url, headers={"Accept": "text/event-stream"}, timeout=10).status_code
        == 405
    )
    wrong = requests.post(live.url, json={}, headers={"Authorization": "Bearer gw_bad"}, timeout=10)
    assert wrong.status_code == 401

    async def connect() -> None:
        http, client = session(live.url, None, "2026-07-28")
        async with http, client:
            await client.list_tools()

    with pytest.raises(Exception):  # noqa: B017 - the SDK's error type differs per era
        asyncio.run(connect())


@pytest.mark.parametrize("mode", MODES)
def test_a_user_cannot_see_or_call_a_server_outside_their_role(live, mode):
    key = live.api_key("user")

    async def scenario() -> None:
        http, client = session(live.url, key, mode)
        async with http, client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "calc__add" in names
            assert not any(n.startswith("time__") for n in names)
            with pytest.raises(MCPError) as raised:
                await client.call_tool("time__get_current_time", {"timezone": "UTC"})
            assert "Unknown tool" in raised.value.message

    asyncio.run(scenario())


def _rows(url: str, query: str, args: tuple = ()) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


def test_a_changed_definition_pending_approval_is_invisible_and_list_changed_is_sent(live):
    key = live.api_key("admin")
    approve = requests.post(
        live.server.url + "/mcp/servers/calc/approve",
        headers=create_account(live.app, role="admin").headers,
        timeout=10,
    )
    assert approve.status_code == 200
    echo = "WHERE server = 'calc' AND tool = 'echo'"
    [(original,)] = _rows(live.database_url, f"SELECT fingerprint FROM tool_pins {echo}")

    async def scenario() -> None:
        http, client = session(live.url, key, "2026-07-28")
        async with http, client:
            assert "calc__echo" in {t.name for t in (await client.list_tools()).tools}
            async with client.listen(tools_list_changed=True) as sub:
                # The pinned definition no longer matches what the server lists: a "rug pull".
                swap = f"UPDATE tool_pins SET fingerprint = %s {echo}"
                _rows(live.database_url, swap, ("0" * 64,))
                event = await asyncio.wait_for(anext(aiter(sub)), 30)
                assert type(event).__name__ == "ToolsListChanged"
            for _ in range(10):  # every worker has re-read the pins within the cache time
                names = {t.name for t in (await client.list_tools()).tools}
                assert "calc__echo" not in names and "calc__add" in names
                with pytest.raises(MCPError):
                    await client.call_tool("calc__echo", {"text": "hi"})

    try:
        asyncio.run(scenario())
    finally:
        _rows(
            live.database_url,
            f"UPDATE tool_pins SET fingerprint = %s, pending_fingerprint = NULL {echo}",
            (original,),
        )


def test_search_mode_lists_always_on_servers_and_finds_the_rest(live):
    key = live.api_key("admin")

    async def scenario() -> None:
        http, client = session(live.url + "?tools=search", key, "2026-07-28")
        async with http, client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"calc__add", "gateway__search_tools", "gateway__call_tool"} <= names
            assert not any(n.startswith("time__") for n in names)
            found = await client.call_tool(
                "gateway__search_tools", {"query": "what time is it now in Tokyo timezone"}
            )
            ranked = [t["name"] for t in found.structured_content["tools"]]
            assert ranked[0].startswith("time__"), ranked
            result = await client.call_tool(
                "gateway__call_tool",
                {"name": "time__get_current_time", "arguments": {"timezone": "Asia/Tokyo"}},
            )
            assert json.loads(result.content[0].text)["timezone"] == "Asia/Tokyo"

    asyncio.run(scenario())


def test_calls_are_recorded_for_admins_counted_in_metrics_and_limited_per_user(live):
    key = live.api_key("user")
    secret = "sk-do-not-store-me"

    async def calls(count: int) -> list[bool]:
        http, client = session(live.url, key, "2026-07-28")
        async with http, client:
            results = []
            for _ in range(count):
                result = await client.call_tool("calc__stderr", {"text": secret, "lines": 0})
                results.append(result.is_error)
            return results

    errors = asyncio.run(calls(27))
    # MCP_ENDPOINT_RATE_LIMIT=25 per minute: the 26th call onwards is refused, as an error result.
    assert errors[:25] == [False] * 25 and errors[25:] == [True, True]
    admin = create_account(live.app, role="admin").headers
    listing = requests.get(live.server.url + "/mcp/calls?server=calc", headers=admin, timeout=10)
    assert listing.status_code == 200
    body = listing.json()
    mine = [c for c in body["calls"] if c["name"] == "calc__stderr"]
    assert {c["outcome"] for c in mine} == {"ok", "rate_limited"}
    assert all(c["method"] == "tools/call" and c["request_bytes"] > 0 for c in mine)
    assert secret not in listing.text
    assert secret not in str(_rows(live.database_url, "SELECT * FROM mcp_endpoint_calls"))
    empty_user = requests.get(live.server.url + "/mcp/calls?user_id=", headers=admin, timeout=10)
    assert empty_user.status_code == 422  # not a UUID, as the document says: no silent "all"
    forbidden = requests.get(
        live.server.url + "/mcp/calls", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert forbidden.status_code == 403
    metrics = requests.get(live.server.url + "/metrics", timeout=10).text
    assert 'gateway_mcp_endpoint_calls_total{method="tools/call",outcome="ok",server="calc"}' in (
        metrics
    )


INSPECTOR = "@modelcontextprotocol/inspector@0.22.0"
INSPECTOR_DIR = REPO / ".cache" / "npm-inspector"


def _node22() -> str:
    """A node >= 22 (the Inspector's engine): the system one, else one from npm's node-* builds."""
    system = shutil.which("node")
    if system:
        version = subprocess.run([system, "--version"], capture_output=True, text=True).stdout
        if int(version.lstrip("v").split(".")[0]) >= 22:
            return system
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    package = f"node-{platform.system().lower()}-{arch}"
    binary = INSPECTOR_DIR / "node_modules" / package / "bin" / "node"
    if not binary.exists():
        _npm_install(f"{package}@22")
    return str(binary)


def _npm_install(package: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    INSPECTOR_DIR.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(INSPECTOR_DIR), package],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"npm install {package} failed ({proc.returncode}): {proc.stderr[-2000:]}")


@pytest.fixture(scope="module")
def inspector() -> list[str]:
    """The MCP Inspector CLI from npm, installed into the gitignored cache, with its node."""
    node = _node22()
    entry = INSPECTOR_DIR / "node_modules" / "@modelcontextprotocol" / "inspector" / "cli"
    if not entry.exists():
        _npm_install(INSPECTOR)
    return [node, str(entry / "build" / "cli.js"), "--cli"]


def test_mcp_inspector_cli_lists_and_calls_tools_with_the_header(live, inspector):
    key = live.api_key("admin")
    base = [*inspector, live.url, "--transport", "http", "--header", f"Authorization: Bearer {key}"]

    # The launcher starts the CLI with the `node` on PATH: the same one.
    env = {**os.environ, "PATH": f"{Path(inspector[0]).parent}{os.pathsep}{os.environ['PATH']}"}

    def run(*args: str) -> dict[str, Any]:
        proc = subprocess.run([*base, *args], capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)

    names = {t["name"] for t in run("--method", "tools/list")["tools"]}
    assert {"calc__add", "time__get_current_time"} <= names
    result = run(
        "--method",
        "tools/call",
        "--tool-name",
        "calc__add",
        "--tool-arg",
        "a=2",
        "--tool-arg",
        "b=3",
    )
    assert result["content"][0]["text"] == "5" and not result.get("isError")
    denied = subprocess.run(
        [*inspector, live.url, "--transport", "http", "--method", "tools/list"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert denied.returncode != 0 and "unauthorized" in denied.stdout + denied.stderr


@pytest.fixture(scope="module")
def behind_nginx(make_database, tmp_path_factory) -> Iterator[tuple[str, list[LiveServer], Live]]:
    """Two gateway instances behind the deploy nginx config."""
    tmp = tmp_path_factory.mktemp("mcp-nginx")
    url = make_database()
    config = write_config(tmp)
    env = endpoint_env(url, config, TRUSTED_PROXIES="1", MCP_ENDPOINT_RATE_LIMIT="0")
    with ExitStack() as stack:
        # One after the other: on a busy machine two start-ups at once can pass the health wait.
        gateways = [stack.enter_context(gunicorn(env, workers=1, threads=4)) for _ in range(2)]
        upstreams = [g.url.removeprefix("http://") for g in gateways]
        with nginx(upstreams, tmp / "nginx") as proxy:
            live = Live(gateways[0], url)
            live.url = proxy.url + "/mcp"
            _wait_ready(live)
            yield proxy.url, gateways, live


@pytest.mark.parametrize("mode", MODES)
def test_both_eras_work_through_nginx_across_two_instances(behind_nginx, mode):
    proxy_url, gateways, live = behind_nginx
    key = live.api_key("admin")

    async def scenario() -> None:
        http, client = session(proxy_url + "/mcp", key, mode)
        async with http, client:
            for n in range(20):
                assert {"calc__add"} <= {t.name for t in (await client.list_tools()).tools}
                added = await client.call_tool("calc__add", {"a": n, "b": 1})
                assert added.content[0].text == str(n + 1)

    asyncio.run(scenario())
    served = [served_by(g, "POST", "/mcp", 200) for g in gateways]
    assert all(served), "every instance answered /mcp requests"
