"""A real MCP server built with the SDK, for the hub tests: run over stdio or streamable HTTP.

Usage: ``python tests/fakes/mcp_server.py [--http PORT] [--paginated]``.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

# A 1x1 transparent PNG, so image blocks carry real base64 data.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def build_server() -> MCPServer:
    """The full-featured test server."""
    srv = MCPServer("testsrv", version="0.1")

    @srv.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @srv.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @srv.tool()
    async def slow(seconds: float) -> str:
        """Sleep, then answer."""
        await anyio.sleep(seconds)
        return "done"

    @srv.tool()
    def fail(message: str) -> str:
        """Always fail with the message."""
        raise ToolError(message)

    @srv.tool(annotations=ToolAnnotations(read_only_hint=True))
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @srv.tool()
    def crash() -> str:
        """Exit the process at once, mid-call."""
        os._exit(3)

    @srv.tool()
    def big(size: int) -> str:
        """A text of the given length."""
        return "x" * size

    @srv.tool()
    def stderr(text: str, lines: int = 1) -> str:
        """Write lines to stderr."""
        for i in range(lines):
            sys.stderr.write(f"{text} {i}\n")
        sys.stderr.flush()
        return "ok"

    @srv.resource("note://readme", mime_type="text/plain")
    def readme() -> str:
        """A fixed text resource."""
        return "read me"

    @srv.prompt()
    def greet(name: str) -> str:
        """A one-message prompt that greets someone."""
        return f"Say hello to {name}."

    _add_special_tools(srv)
    return srv


def _add_special_tools(srv: MCPServer) -> None:
    """Tools for content kinds and for changing the tool list at runtime."""

    @srv.tool(structured_output=False)
    def blocks() -> list[Any]:
        """Every content block kind: text, image, audio, embedded resource, resource link."""
        from mcp.types import (
            AudioContent,
            EmbeddedResource,
            ImageContent,
            ResourceLink,
            TextContent,
            TextResourceContents,
        )

        data = base64.b64encode(PNG_1X1).decode()
        return [
            TextContent(type="text", text="hello"),
            ImageContent(type="image", data=data, mime_type="image/png"),
            AudioContent(
                type="audio", data=base64.b64encode(b"RIFF").decode(), mime_type="audio/wav"
            ),
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri="file:///a.txt", text="A", mime_type="text/plain"
                ),
            ),
            ResourceLink(type="resource_link", uri="file:///b.txt", name="b.txt"),
        ]

    @srv.tool()
    async def change_tools(description: str, ctx: Context) -> str:
        """Change echo's description and announce the tools/list_changed notification."""
        srv.remove_tool("echo")
        srv.add_tool(echo_impl, name="echo", description=description)
        await ctx.request_context.session.send_tool_list_changed()
        await ctx.notify_tools_changed()
        return "changed"

    def echo_impl(text: str) -> str:
        return text


def build_paginated_server(tool_count: int = 8, page_size: int = 3) -> Any:
    """A low-level server that pages its tools/list ``page_size`` at a time."""
    from mcp.server import Server
    from mcp.types import CallToolResult, ListToolsResult, TextContent, Tool

    tools = [
        Tool(name=f"t{i}", description=f"tool {i}", input_schema={"type": "object"})
        for i in range(tool_count)
    ]

    async def on_list_tools(ctx: Any, params: Any) -> ListToolsResult:
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + page_size
        cursor = str(end) if end < len(tools) else None
        return ListToolsResult(tools=tools[start:end], next_cursor=cursor)

    async def on_call_tool(ctx: Any, params: Any) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=params.name)])

    return Server("paginated", on_list_tools=on_list_tools, on_call_tool=on_call_tool)


async def _run_lowlevel_stdio(server: Any) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None, help="serve streamable HTTP on this port")
    parser.add_argument("--paginated", action="store_true")
    args = parser.parse_args()
    if args.paginated:
        anyio.run(_run_lowlevel_stdio, build_paginated_server())
        return
    srv = build_server()
    if args.http is not None:
        srv.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        srv.run()


if __name__ == "__main__":
    main()
