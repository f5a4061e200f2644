from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gateway.mcp import MCPConfigError, load_mcp_config, parse_mcp_config

REPO = Path(__file__).resolve().parent.parent


def parse_one(entry: dict, environ: dict | None = None):
    return parse_mcp_config({"mcpServers": {"srv": entry}}, environ or {})[0]


def test_default_config_file_is_valid_and_uses_this_interpreter():
    configs = load_mcp_config(REPO / "config" / "mcp_servers.json", {})
    by_name = {c.name: c for c in configs}
    assert {"time", "git"} <= set(by_name)
    assert by_name["time"].resolved_command() == sys.executable
    assert all(c.description and c.keywords for c in configs)


def test_stdio_entry_in_claude_desktop_format():
    cfg = parse_one({"command": "npx", "args": ["-y", "x"], "env": {"TOKEN": "s3cret"}})
    assert cfg.transport == "stdio"
    assert cfg.args == ("-y", "x")
    assert cfg.secret_env() == {"TOKEN": "s3cret"}
    assert cfg.enabled and cfg.timeout == 30.0 and not cfg.always


def test_remote_entry_expands_headers_and_defaults_to_streamable_http():
    cfg = parse_one(
        {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}},
        {"TOKEN": "abc"},
    )
    assert cfg.transport == "streamable-http"
    assert cfg.secret_headers() == {"Authorization": "Bearer abc"}


@pytest.mark.parametrize(("spelling", "transport"), [("http", "streamable-http"), ("sse", "sse")])
def test_vscode_type_key_is_accepted(spelling, transport):
    assert parse_one({"type": spelling, "url": "http://127.0.0.1:1/mcp"}).transport == transport


def test_secrets_never_appear_in_repr_or_public_view():
    cfg = parse_one(
        {"url": "https://user:pw@h.example/mcp?key=q", "headers": {"X-Key": "${K}"}},
        {"K": "topsecret"},
    )
    stdio = parse_one({"command": "x", "env": {"API_KEY": "topsecret"}})
    for c in (cfg, stdio):
        assert "topsecret" not in repr(c)
        assert "topsecret" not in json.dumps(c.public())
    assert cfg.public()["headers"] == ["X-Key"]
    assert "pw" not in cfg.public()["url"] and "key=q" not in cfg.public()["url"]
    assert stdio.public()["env"] == ["API_KEY"]


def test_allowed_and_blocked_tools_filter():
    cfg = parse_one({"command": "x", "allowed_tools": ["a", "b"], "blocked_tools": ["b"]})
    assert [t for t in "abc" if cfg.allows(t)] == ["a"]


@pytest.mark.parametrize(
    ("entry", "environ", "expected"),
    [
        ({}, {}, "needs 'command'"),
        ({"transport": "streamable-http"}, {}, "needs 'url'"),
        ({"transport": "websocket", "url": "http://h/"}, {}, "field 'transport'"),
        ({"url": "ftp://h/mcp"}, {}, "http:// or https://"),
        ({"url": "file:///tmp/x"}, {}, "http:// or https://"),
        ({"command": "x", "keywords": "time"}, {}, "field 'keywords'"),
        ({"command": "x", "timeout": -1}, {}, "field 'timeout'"),
        ({"command": "x", "enabled": "maybe"}, {}, "field 'enabled'"),
        ({"command": "x", "colour": "red"}, {}, "field 'colour': unknown field"),
        ({"url": "http://h/", "headers": {"A": "${MISSING}"}}, {}, "variable MISSING is not set"),
        ({"url": "http://h/", "headers": {"A": "${1BAD}"}}, {}, "bad variable reference"),
        ({"url": "http://h/", "headers": {"A": "${OPEN"}}, {}, "unterminated"),
        ({"command": "x", "url": "http://h/"}, {}, "are for stdio servers"),
    ],
)
def test_invalid_entries_name_server_and_field_on_one_line(entry, environ, expected):
    with pytest.raises(MCPConfigError) as info:
        parse_mcp_config({"mcpServers": {"broken": entry}}, environ)
    message = str(info.value)
    assert "'broken'" in message
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "invalid JSON"),
        ("[]", "'mcpServers'"),
        ('{"mcpServers": {}, "extra": 1}', "unknown top-level key"),
        ('{"mcpServers": {"a b": {"command": "x"}}}', "field 'name'"),
    ],
)
def test_invalid_files_are_reported(tmp_path, text, expected):
    path = tmp_path / "servers.json"
    path.write_text(text)
    with pytest.raises(MCPConfigError, match=expected):
        load_mcp_config(path, {})


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(MCPConfigError, match="cannot read"):
        load_mcp_config(tmp_path / "nope.json", {})
