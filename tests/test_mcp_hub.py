from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings

import pytest

from gateway.mcp import MCPHub, tool_fingerprint
from gateway.mcp.errors import ToolUnavailable
from gateway.mcp.process import is_alive
from gateway.tools import Tool
from tests.fakes.mcp_helpers import child_pids, server_config, wait_until


@pytest.fixture(scope="module")
def hub():
    """One hub on the stdio test server, the paginated server and PyPI mcp-server-time."""
    hub = MCPHub(
        [
            server_config("test", blocked_tools=["crash"]),
            server_config("pages", args=[str(server_config().args[0]), "--paginated"]),
            server_config(
                "time",
                args=["-m", "mcp_server_time", "--local-timezone", "UTC"],
                protocol="legacy",
            ),
        ],
        first_use_wait=10,
    )
    yield hub
    hub.close()


def test_lists_tools_of_every_ready_server(hub):
    names = {t.qualified_name for t in hub.list_tools()}
    assert {"test__add", "test__echo", "time__get_current_time", "time__convert_time"} <= names
    assert "test__crash" not in names  # blocked_tools
    states = {s.name: s.state for s in hub.statuses()}
    assert states == {"test": "ready", "pages": "ready", "time": "ready"}


def test_follows_tools_list_pagination(hub):
    pages = [t.name for t in hub.list_tools() if t.server == "pages"]
    assert pages == [f"t{i}" for i in range(8)]


def test_calls_mcp_server_time_over_stdio(hub):
    result = hub.call_tool("time", "get_current_time", {"timezone": "UTC"})
    assert not result.is_error
    assert result.structured_content["timezone"] == "UTC"
    assert "datetime" in result.text()


def test_call_returns_text_and_structured_content(hub):
    result = hub.call_tool("test", "add", {"a": 2, "b": 3})
    assert result.content == ({"type": "text", "text": "5"},)
    assert result.structured_content == {"result": 5}
    assert not result.is_error and not result.truncated


def test_every_content_block_kind_passes_through_in_wire_shape(hub):
    blocks = hub.call_tool("test", "blocks", {}).content
    assert [b["type"] for b in blocks] == ["text", "image", "audio", "resource", "resource_link"]
    assert blocks[1]["mimeType"] == "image/png" and blocks[1]["data"].startswith("iVBOR")
    assert blocks[3]["resource"] == {"uri": "file:///a.txt", "mimeType": "text/plain", "text": "A"}
    assert blocks[4]["uri"] == "file:///b.txt"


def test_tool_failure_is_an_error_result(hub):
    result = hub.call_tool("test", "fail", {"message": "boom"})
    assert result.is_error
    assert "boom" in result.text()


@pytest.mark.parametrize("server", ["test", "time"])
def test_unknown_tool_is_an_error_result_in_both_server_styles(hub, server):
    # The SDK test server answers with is_error; mcp-server-time raises MCPError -32602.
    result = hub.call_tool(server, "no_such_tool", {})
    assert result.is_error
    assert "no_such_tool" in result.text()


def test_bad_arguments_are_an_error_result(hub):
    assert hub.call_tool("test", "add", {"a": "x"}).is_error


def test_blocked_tool_is_refused_without_calling_the_server(hub):
    result = hub.call_tool("test", "crash", {})
    assert result.is_error and "not available" in result.text()
    assert hub.call_tool("test", "add", {"a": 1, "b": 1}).structured_content == {"result": 2}


def test_unknown_server_raises_tool_unavailable(hub):
    with pytest.raises(ToolUnavailable, match="unknown MCP server"):
        hub.call_tool("nope", "add", {})


def test_hung_call_is_cut_at_its_timeout_and_the_session_stays_usable(hub):
    pid = {s.name: s.pid for s in hub.statuses()}["test"]
    started = time.perf_counter()
    result = hub.call_tool("test", "slow", {"seconds": 10}, timeout=0.5)
    elapsed = time.perf_counter() - started
    assert result.is_error and "timed out" in result.text()
    assert 0.4 < elapsed < 2.0
    assert hub.call_tool("test", "add", {"a": 1, "b": 2}).structured_content == {"result": 3}
    assert {s.name: s.pid for s in hub.statuses()}["test"] == pid


def test_twenty_concurrent_calls_from_threads_share_one_session(hub):
    results: dict[int, object] = {}

    def work(i: int) -> None:
        results[i] = (
            hub.call_tool("test", "slow", {"seconds": 0.3})
            if i % 2
            else hub.call_tool("test", "add", {"a": i, "b": 1})
        )

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    assert len(results) == 20
    for i, r in results.items():
        assert not r.is_error
        assert r.text() == ("done" if i % 2 else str(i + 1))
    # The slow calls overlap on the one session rather than queueing (10 x 0.3 s).
    assert elapsed < 2.0


def test_process_count_counts_the_running_stdio_servers(hub):
    hub.call_tool("test", "echo", {"text": "hi"})
    assert hub.process_count() == 3


def test_large_results_are_truncated_with_a_marker(make_hub):
    hub = make_hub(server_config(), max_result_bytes=2000)
    result = hub.call_tool("test", "big", {"size": 50_000})
    assert result.truncated
    assert result.structured_content is None
    assert sum(len(b.get("text", "")) for b in result.content) < 2200
    assert "truncated" in result.content[-1]["text"]
    assert not hub.call_tool("test", "big", {"size": 100}).truncated


def test_server_stderr_is_logged_with_its_name(make_hub, caplog):
    caplog.set_level(logging.INFO, logger="gateway.mcp")
    hub = make_hub(server_config("chatty"))
    hub.call_tool("chatty", "stderr", {"text": "hello-from-stderr"})
    assert wait_until(lambda: "hello-from-stderr 0" in caplog.text)
    record = next(r for r in caplog.records if "hello-from-stderr" in r.getMessage())
    assert "chatty" in record.getMessage()


def test_stderr_flood_is_rate_limited(make_hub, caplog):
    caplog.set_level(logging.INFO, logger="gateway.mcp")
    hub = make_hub(server_config("chatty"))
    hub.call_tool("chatty", "stderr", {"text": "flood", "lines": 1000})
    hub.close()
    lines = [
        r for r in caplog.records if "flood" in r.getMessage() and "dropped" not in r.getMessage()
    ]
    assert 50 <= len(lines) < 300
    assert "stderr lines dropped" in caplog.text


@pytest.mark.parametrize("protocol", ["legacy", "auto"])
def test_tools_list_changed_refreshes_the_cached_list(make_hub, protocol):
    hub = make_hub(server_config(protocol=protocol))

    def echo_description() -> str:
        return next(t.description for t in hub.list_tools() if t.name == "echo")

    assert echo_description() == "Echo the text back."
    hub.call_tool("test", "change_tools", {"description": "Echo, changed."})
    assert wait_until(lambda: echo_description() == "Echo, changed.", timeout=10)


def test_tool_fingerprint_is_stable_and_covers_name_description_schema():
    tool = Tool("s", "t", "desc", {"type": "object", "properties": {"a": {"type": "int"}}})
    same = Tool("other", "t", "desc", {"properties": {"a": {"type": "int"}}, "type": "object"})
    assert tool_fingerprint(tool) == tool_fingerprint(same)
    assert len(tool_fingerprint(tool)) == 64
    assert tool_fingerprint(tool) != tool_fingerprint(Tool("s", "t", "desc2", tool.input_schema))


def test_killed_stdio_server_is_restarted_and_the_next_call_works(make_hub):
    hub = make_hub(server_config())
    hub.list_tools()
    old_pid = hub.statuses()[0].pid
    os.kill(old_pid, signal.SIGKILL)
    # Down before the call (a kill still in flight when the request is written is a loss
    # mid-call, reported as unknown and not repeated).
    assert wait_until(lambda: not is_alive(old_pid))
    result = hub.call_tool("test", "pid", {})
    assert not result.is_error
    assert result.structured_content["result"] not in (old_pid, None)


def test_kill_during_a_call_reports_unknown_outcome_then_recovers(make_hub):
    hub = make_hub(server_config())
    result = hub.call_tool("test", "crash", {})
    assert result.is_error and "outcome is unknown" in result.text()
    assert hub.call_tool("test", "add", {"a": 1, "b": 1}).structured_content == {"result": 2}


def test_server_that_cannot_start_is_unavailable_and_withheld(make_hub):
    hub = make_hub(
        server_config("broken", command="python", args=["-c", "import sys; sys.exit(1)"]),
        server_config("missing", command="no-such-command-for-mcp-tests"),
        server_config("off", enabled=False),
        server_config(),
        first_use_wait=5,
    )
    assert {t.server for t in hub.list_tools()} == {"test"}
    # list_tools waits for the ready ones only: the broken ones settle on their own time.
    assert wait_until(
        lambda: all(s.state != "starting" for s in hub.statuses() if s.name != "off"), timeout=30
    )
    statuses = {s.name: s for s in hub.statuses()}
    assert statuses["broken"].state == "unavailable" and statuses["broken"].last_error
    assert statuses["missing"].state == "unavailable"
    assert statuses["off"].state == "disabled"
    for name in ("broken", "missing", "off"):
        with pytest.raises(ToolUnavailable):
            hub.call_tool(name, "add", {})


def test_reload_starts_new_stops_removed_and_restarts_changed(make_hub):
    hub = make_hub(server_config("a"), server_config("b"))
    hub.list_tools()
    pids = {s.name: s.pid for s in hub.statuses()}
    hub.reload([server_config("a"), server_config("b", timeout=7), server_config("c")])
    assert wait_until(lambda: {s.state for s in hub.statuses()} == {"ready"})
    after = {s.name: s.pid for s in hub.statuses()}
    assert set(after) == {"a", "b", "c"}
    assert after["a"] == pids["a"] and after["b"] != pids["b"]
    hub.reload([server_config("c")])
    assert [s.name for s in hub.statuses()] == ["c"]
    assert {t.server for t in hub.list_tools()} == {"c"}
    with pytest.raises(ToolUnavailable):
        hub.call_tool("a", "add", {"a": 1, "b": 1})


def test_close_leaves_no_child_processes(make_hub):
    before = child_pids()
    hub = make_hub(server_config("a"), server_config("b"))
    hub.list_tools()
    assert len(child_pids() - before) == 2
    hub.close()
    assert child_pids() - before == set()
    assert hub.list_tools() == []
    with pytest.raises(ToolUnavailable, match="closed"):
        hub.call_tool("a", "add", {})


def test_forked_child_gets_its_own_loop_and_server(make_hub):
    hub = make_hub(server_config())
    parent_pid = hub.call_tool("test", "pid", {}).structured_content["result"]
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns on fork with threads alive; surviving that fork is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(read_fd)
            server_pid = hub.call_tool("test", "pid", {}).structured_content["result"]
            hub.close()
            os.write(write_fd, str(server_pid).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        child_server_pid = int(f.read() or 0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_server_pid not in (0, parent_pid)
    # The parent's own session is untouched by the child.
    assert hub.call_tool("test", "pid", {}).structured_content["result"] == parent_pid


def test_sync_api_refuses_to_run_on_the_hub_loop(hub):
    rt = hub._runtime()
    fut = __import__("asyncio").run_coroutine_threadsafe(_call_from_loop(hub), rt.loop)
    with pytest.raises(RuntimeError, match="own loop"):
        fut.result(5)


async def _call_from_loop(hub):
    return hub.call_tool("test", "add", {"a": 1, "b": 1})


def test_python_command_means_this_interpreter():
    assert server_config().resolved_command() == sys.executable


def test_server_hanging_at_connect_hits_the_deadline_and_leaves_nothing(make_hub):
    before = child_pids()
    hang = server_config(
        "hang", command="python", args=["-c", "import time; time.sleep(60)"], connect_timeout=0.5
    )
    hub = make_hub(hang, first_use_wait=1.5)
    assert hub.list_tools() == []
    assert wait_until(lambda: hub.statuses()[0].last_error is not None, timeout=5)
    assert hub.statuses()[0].state in ("unavailable", "starting")
    hub.close()
    assert child_pids() - before == set()
