"""MCP servers for the gateway: the config file, the per-process hub and result conversion."""

from __future__ import annotations

from gateway.mcp.config import MCPConfigError, ServerConfig, load_mcp_config, parse_mcp_config
from gateway.mcp.hub import MCPHub, ServerStatus
from gateway.mcp.results import tool_fingerprint

__all__ = [
    "MCPConfigError",
    "MCPHub",
    "ServerConfig",
    "ServerStatus",
    "load_mcp_config",
    "parse_mcp_config",
    "tool_fingerprint",
]
