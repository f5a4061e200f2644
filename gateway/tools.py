"""Neutral tool types shared by the MCP hub, the router and the LLM providers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The server name of the tools the gateway itself answers (``find_tools``): never an MCP server.
GATEWAY_SERVER = "gateway"


@dataclass(frozen=True)
class Tool:
    """One tool of one MCP server, as the router and the providers see it."""

    server: str
    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    read_only: bool = False
    idempotent: bool = False
    # The stdio server's command-line arguments (e.g. ``--repository .``): defaults the server
    # was started with, which the offline provider may use for a required argument.
    server_args: tuple[str, ...] = field(default=(), compare=False)

    @property
    def qualified_name(self) -> str:
        """Provider-safe name (``server__tool``); providers map it back with ``split_qualified``."""
        return f"{self.server}__{self.name}"


def split_qualified(name: str) -> tuple[str, str]:
    """Inverse of ``Tool.qualified_name``."""
    server, sep, tool = name.partition("__")
    if not sep:
        raise ValueError(f"not a qualified tool name: {name!r}")
    return server, tool


@dataclass(frozen=True)
class ToolResult:
    """A tool's result: MCP content blocks in their wire shape, carried through unchanged.

    ``content`` holds dicts such as ``{"type": "text", "text": ...}``,
    ``{"type": "image", "data": <base64>, "mimeType": ...}``, ``{"type": "audio", ...}``,
    ``{"type": "resource", "resource": {...}}`` and ``{"type": "resource_link", ...}``.
    """

    content: tuple[dict[str, Any], ...] = ()
    structured_content: Any = None
    is_error: bool = False
    truncated: bool = False

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls(content=({"type": "text", "text": message},), is_error=True)

    def text(self) -> str:
        """The text blocks joined, for providers and summaries that only take text."""
        return "\n".join(b["text"] for b in self.content if b.get("type") == "text")
