"""What a call to an MCP server fails with."""

from __future__ import annotations


class ToolUnavailable(Exception):
    """An MCP server or tool is unusable now; the model gets an error tool result, not HTTP."""
