from __future__ import annotations

import threading
import time

import pytest

from gateway.mcp.errors import ToolUnavailable
from tests.fakes.mcp_helpers import free_port, http_server, server_config, wait_until


def http_config(port: int, **entry):
    return server_config("web", url=f"http://127.0.0.1:{port}/mcp", **entry)


@pytest.fixture(scope="module")
def port():
    port = free_port()
    with http_server(port):
        yield port


@pytest.mark.parametrize(
    ("protocol", "version"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")]
)
def test_lists_and_calls_over_streamable_http(make_hub, port, protocol, version):
    hub = make_hub(http_config(port, protocol=protocol))
    assert "web__add" in {t.qualified_name for t in hub.list_tools()}
    status = hub.statuses()[0]
    assert (status.state, status.transport, status.protocol_version) == (
        "ready",
        "streamable-http",
        version,
    )
    assert status.pid is None
    assert hub.call_tool("web", "add", {"a": 20, "b": 22}).structured_content == {"result": 42}
    assert hub.call_tool("web", "fail", {"message": "nope"}).is_error


def test_http_call_timeout_keeps_the_session(make_hub, port):
    hub = make_hub(http_config(port, protocol="legacy"))
    result = hub.call_tool("web", "slow", {"seconds": 10}, timeout=0.5)
    assert result.is_error and "timed out" in result.text()
    assert hub.call_tool("web", "echo", {"text": "still here"}).text() == "still here"


@pytest.mark.parametrize("protocol", ["legacy", "auto"])
def test_restarted_http_server_is_reconnected(make_hub, protocol):
    port = free_port()
    hub = make_hub(http_config(port, protocol=protocol))
    with http_server(port):
        first = hub.call_tool("web", "pid", {}).structured_content["result"]
    # Legacy sessions die with the process ("Session not found"); 2026-07-28 ones are stateless.
    with http_server(port):
        second = hub.call_tool("web", "pid", {})
        assert not second.is_error, second.text()
        assert second.structured_content["result"] != first
        assert hub.call_tool("web", "add", {"a": 1, "b": 1}).structured_content == {"result": 2}


def test_unreachable_http_server_fails_fast_and_recovers(make_hub):
    port = free_port()
    hub = make_hub(http_config(port, connect_timeout=2), first_use_wait=2)
    assert hub.list_tools() == []
    assert hub.statuses()[0].state == "unavailable"
    started = time.perf_counter()
    with pytest.raises(ToolUnavailable, match="unavailable"):
        hub.call_tool("web", "add", {"a": 1, "b": 1})
    assert time.perf_counter() - started < 2.5
    with http_server(port):
        result = hub.call_tool("web", "add", {"a": 1, "b": 1})
        assert result.structured_content == {"result": 2}
        assert wait_until(lambda: hub.statuses()[0].state == "ready")


def test_http_server_dying_mid_call_returns_an_error_promptly(make_hub):
    port = free_port()
    hub = make_hub(http_config(port, protocol="legacy", timeout=20))
    with http_server(port) as proc:
        hub.list_tools()
        results = []
        caller = threading.Thread(
            target=lambda: results.append(hub.call_tool("web", "slow", {"seconds": 10}))
        )
        caller.start()
        time.sleep(0.3)
        proc.kill()
        started = time.perf_counter()
        caller.join(15)
    assert time.perf_counter() - started < 5
    assert results and results[0].is_error
    with http_server(port):
        assert hub.call_tool("web", "add", {"a": 2, "b": 2}).structured_content == {"result": 4}
