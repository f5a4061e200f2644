"""MCP servers for the gateway: the config file, the per-process hub and result conversion."""

from __future__ import annotations

from gateway.mcp.config import MCPConfigError, ServerConfig, load_mcp_config, parse_mcp_config
from gateway.mcp.hub import CallStats, MCPHub, ServerStatus
from gateway.mcp.results import tool_fingerprint
from gateway.mcp.session import ToolsListedHook

__all__ = [
    "CallStats",
    "MCPConfigError",
    "MCPHub",
    "ServerConfig",
    "ServerStatus",
    "ToolsListedHook",
    "load_mcp_config",
    "parse_mcp_config",
    "tool_fingerprint",
]
