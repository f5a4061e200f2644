"""MCP_ENDPOINT_* parsing and the resource URI wrapping of ``/mcp`` (no server needed)."""

from __future__ import annotations

import pytest

from gateway.mcp_server.catalog import NotVisible, unwrap_uri, wrap_uri
from gateway.settings import ConfigError, EndpointSettings, Settings


def endpoint_settings(env: dict[str, str]) -> EndpointSettings:
    return Settings.from_env(env).mcp.endpoint


def test_defaults_show_every_server_to_both_roles_in_full():
    settings = endpoint_settings({})
    assert settings.visible("admin") is None and settings.visible("user") is None
    assert settings.tools_mode == "all" and settings.rate_limit == 120


def test_roles_map_servers_per_role_and_hide_everything_from_unlisted_roles():
    settings = endpoint_settings(
        {"MCP_ENDPOINT_ROLES": '{"admin": "*", "user": ["time"]}', "MCP_ENDPOINT_TOOLS": "search"}
    )
    assert settings.visible("admin") is None
    assert settings.visible("user") == frozenset({"time"})
    assert settings.visible("auditor") == frozenset()
    assert settings.tools_mode == "search"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MCP_ENDPOINT_ROLES": "{not json"}, "MCP_ENDPOINT_ROLES: not JSON"),
        ({"MCP_ENDPOINT_ROLES": '["admin"]'}, "MCP_ENDPOINT_ROLES: must be an object"),
        ({"MCP_ENDPOINT_ROLES": '{"user": "time"}'}, 'user: must be "*" or a list'),
        ({"MCP_ENDPOINT_TOOLS": "some"}, "MCP_ENDPOINT_TOOLS: Input should be 'all' or 'search'"),
        ({"MCP_ENDPOINT_RATE_LIMIT": "many"}, "MCP_ENDPOINT_RATE_LIMIT: Input should be a valid"),
        ({"MCP_ENDPOINT_RATE_WINDOW_SECONDS": "0"}, "MCP_ENDPOINT_RATE_WINDOW_SECONDS: Input "),
    ],
)
def test_bad_values_are_one_line_config_errors(env, message):
    with pytest.raises(ConfigError, match=message.replace("*", r"\*").replace("[", r"\[")):
        endpoint_settings(env)


@pytest.mark.parametrize(
    "uri", ["note://readme", "file:///tmp/a b.txt", "https://x.example/a?b=c#d", "test://static/1"]
)
def test_resource_uris_round_trip_through_the_gateway_scheme(uri):
    wrapped = wrap_uri("calc", uri)
    assert wrapped.startswith("gateway://calc/")
    assert unwrap_uri(wrapped) == ("calc", uri)


@pytest.mark.parametrize(
    "uri", ["note://readme", "gateway://", "gateway://calc", "gateway://calc/"]
)
def test_uris_not_wrapped_by_the_gateway_name_no_server(uri):
    with pytest.raises(NotVisible):
        unwrap_uri(uri)


def test_template_braces_stay_usable():
    assert (
        wrap_uri("s", "test://item/{id}", template=True) == "gateway://s/test%3A%2F%2Fitem%2F{id}"
    )
