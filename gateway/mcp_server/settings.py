"""Settings of the gateway's own MCP endpoint (``/mcp``), from MCP_ENDPOINT_* variables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config import ConfigError

TOOLS_MODES = ("all", "search")


@dataclass(frozen=True)
class EndpointSettings:
    """What ``/mcp`` shows and how much it lets each user call.

    ``roles`` maps a user role to the server names it may see, or ``None`` for every server;
    a role missing from the map sees nothing. ``rate_limit`` calls (tools/call,
    resources/read, prompts/get) per ``rate_window_seconds`` per user; 0 turns it off.
    """

    roles: Mapping[str, frozenset[str] | None] = field(
        default_factory=lambda: {"admin": None, "user": None}
    )
    tools_mode: str = "all"
    rate_limit: int = 120
    rate_window_seconds: int = 60
    max_streams_per_worker: int = 0  # 0: half the worker's threads
    catalog_poll_seconds: float = 2.0

    def visible(self, role: str) -> frozenset[str] | None:
        """Server names the role may use; ``None`` means all of them."""
        if role not in self.roles:
            return frozenset()
        return self.roles[role]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EndpointSettings:
        """Parse MCP_ENDPOINT_*; a bad value is a one-line ConfigError."""
        values: dict[str, object] = {}
        if env.get("MCP_ENDPOINT_ROLES"):
            values["roles"] = _parse_roles(env["MCP_ENDPOINT_ROLES"])
        mode = env.get("MCP_ENDPOINT_TOOLS", "all").strip().lower()
        if mode not in TOOLS_MODES:
            raise ConfigError(f"MCP_ENDPOINT_TOOLS: must be all or search, got {mode!r}")
        values["tools_mode"] = mode
        for key, attr in (
            ("MCP_ENDPOINT_RATE_LIMIT", "rate_limit"),
            ("MCP_ENDPOINT_RATE_WINDOW_SECONDS", "rate_window_seconds"),
            ("MCP_ENDPOINT_MAX_STREAMS", "max_streams_per_worker"),
        ):
            if env.get(key):
                try:
                    number = int(env[key])
                except ValueError:
                    raise ConfigError(f"{key}: must be an integer, got {env[key]!r}") from None
                if number < 0 or (attr == "rate_window_seconds" and number < 1):
                    raise ConfigError(f"{key}: out of range: {number}")
                values[attr] = number
        return cls(**values)  # type: ignore[arg-type]


def _parse_roles(raw: str) -> dict[str, frozenset[str] | None]:
    """``{"admin": "*", "user": ["time", "git"]}``: per role, every server or a list."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"MCP_ENDPOINT_ROLES: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError('MCP_ENDPOINT_ROLES: must be an object like {"admin": "*"}')
    roles: dict[str, frozenset[str] | None] = {}
    for role, servers in data.items():
        if servers == "*":
            roles[role] = None
        elif isinstance(servers, list) and all(isinstance(s, str) for s in servers):
            roles[role] = frozenset(servers)
        else:
            raise ConfigError(f'MCP_ENDPOINT_ROLES: {role}: must be "*" or a list of server names')
    return roles
