"""The gateway as one MCP server: the SDK's low-level ``Server`` with handlers over the catalog.

Served by the SDK's own Streamable HTTP session manager (both protocol generations, stateless:
any worker or replica answers any request) on the bridge's per-worker loop. Handlers run the
synchronous catalog functions in a worker thread inside an app context; the caller comes in a
context variable set for the request's task.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from mcp import MCPError, types
from mcp.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.server.transport_security import TransportSecuritySettings

from gateway.mcp import tool_fingerprint
from gateway.mcp_server import catalog
from gateway.mcp_server.bridge import Bridge
from gateway.mcp_server.catalog import CALL_TOOL, SEARCH_TOOL, Caller, NotVisible, RateLimited
from gateway.services import get_services
from gateway.tools import Tool, ToolResult

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger(__name__)
T = TypeVar("T")

CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("mcp_endpoint_caller")

INSTRUCTIONS = (
    "MCP Gateway: the tools, resources and prompts of the MCP servers this gateway runs, "
    "named server__name. In search mode, find tools with gateway__search_tools and run them "
    "with gateway__call_tool (or by name)."
)


class Endpoint:
    """The per-worker MCP server: its bridge, its SDK manager and its change watcher."""

    def __init__(self, app: Flask, *, max_request_bytes: int, max_streams: int) -> None:
        self.app = app
        self.bus = InMemorySubscriptionBus()
        # Input schemas by qualified name, from the latest listing (read on the loop, no I/O).
        self._schemas: dict[str, dict[str, Any]] = {}
        self.listen = ListenHandler(self.bus)
        self.server: Server[Any] = Server(
            "mcp-gateway",
            version="1",
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_resource_templates,
            on_read_resource=self._read_resource,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
            on_subscriptions_listen=self.listen,
            # Mcp-Param-* header checks (2026-07-28) need a tool's schema before dispatch;
            # without this the SDK would run the whole tools/list handler for every call.
            get_tool_input_schema=lambda name: self._schemas.get(name),
        )
        self._max_request_bytes = max_request_bytes
        self._manager: StreamableHTTPSessionManager | None = None
        self.bridge = Bridge(self._handle, self._lifespan, max_long_lived=max_streams)
        self._watcher: threading.Thread | None = None
        self._stopping = threading.Event()

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        # run() works once per manager: a fresh one for every loop (one per worker process).
        self._manager = StreamableHTTPSessionManager(
            app=self.server,
            stateless=True,
            max_request_body_size=self._max_request_bytes,
            # Host and Origin are the gateway's business (nginx, CORS); browsers never send
            # our Bearer tokens on their own, so DNS rebinding gains nothing here.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        async with self._manager.run():
            yield
        self.listen.close()

    async def _handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert self._manager is not None
        await self._manager.handle_request(scope, receive, send)

    def start(self, poll_seconds: float) -> None:
        """Start the loop and the catalog watcher in this worker (after fork)."""
        self.bridge.start()
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(
                target=self._watch_catalog, args=(poll_seconds,), name="mcp-endpoint-watch",
                daemon=True,
            )  # fmt: skip
            self._watcher.start()

    def close(self) -> None:
        self._stopping.set()
        self.bridge.close()

    def _watch_catalog(self, poll_seconds: float) -> None:
        """Publish tools/list_changed when this worker's catalog changes.

        Every worker and replica follows the same sources (its hub's sessions, the pins table,
        the config generation), so each notices a change on its own: no cross-process bus.
        """
        last: object = None
        while not self._stopping.wait(poll_seconds):
            try:
                with self.app.app_context():
                    tools = _approved_tools()
                self._remember(tools)
                key = frozenset((t.qualified_name, tool_fingerprint(t)) for t in tools)
            except Exception:
                logger.debug("mcp endpoint: catalog check failed", exc_info=True)
                continue
            if last is not None and key != last:
                logger.info("mcp endpoint: the catalog changed; notifying listeners")
                try:
                    asyncio.run_coroutine_threadsafe(
                        self.bus.publish(ToolsListChanged()), self.bridge.loop
                    ).result(5)
                except Exception:
                    logger.warning("mcp endpoint: list_changed not published", exc_info=True)
            last = key

    async def _in_app(self, fn: Callable[..., T], *args: Any) -> T:
        caller = CALLER.get()

        def run() -> T:
            with self.app.app_context():
                return fn(caller, *args)

        return await anyio.to_thread.run_sync(run)

    def _remember(self, tools: list[Tool]) -> None:
        self._schemas = {t.qualified_name: t.input_schema for t in tools}

    async def _list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        listed = await self._in_app(catalog.listed_tools)
        self._schemas = {**self._schemas, **{t.qualified_name: t.input_schema for t in listed}}
        tools = [_wire_tool(t) for t in listed]
        if CALLER.get().tools_mode == "search":
            tools.extend(META_TOOLS)
        return types.ListToolsResult(tools=tools)

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        arguments = dict(params.arguments or {})
        name = params.name
        if name == SEARCH_TOOL:
            query = str(arguments.get("query") or "")
            found = await self._in_app(catalog.search_tools, query)
            return _search_result(found)
        if name == CALL_TOOL:
            name = str(arguments.get("name") or "")
            inner = arguments.get("arguments") or {}
            arguments = inner if isinstance(inner, dict) else {}
        try:
            result = await self._in_app(catalog.call_tool, name, arguments)
        except NotVisible:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {name}") from None
        except RateLimited as exc:
            result = ToolResult.error(str(exc))
        return _wire_result(result)

    async def _list_resources(self, ctx: Any, params: Any) -> types.ListResourcesResult:
        resources, _ = await self._in_app(catalog.list_resources)
        return types.ListResourcesResult.model_validate({"resources": resources})

    async def _list_resource_templates(
        self, ctx: Any, params: Any
    ) -> types.ListResourceTemplatesResult:
        _, templates = await self._in_app(catalog.list_resources)
        return types.ListResourceTemplatesResult.model_validate({"resourceTemplates": templates})

    async def _read_resource(self, ctx: Any, params: types.ReadResourceRequestParams) -> Any:
        uri = str(params.uri)
        try:
            contents = await self._in_app(catalog.read_resource, uri)
        except NotVisible:
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri}") from None
        except RateLimited as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None
        return types.ReadResourceResult.model_validate({"contents": contents})

    async def _list_prompts(self, ctx: Any, params: Any) -> types.ListPromptsResult:
        prompts = await self._in_app(catalog.list_prompts)
        return types.ListPromptsResult.model_validate({"prompts": prompts})

    async def _get_prompt(self, ctx: Any, params: types.GetPromptRequestParams) -> Any:
        try:
            result = await self._in_app(catalog.get_prompt, params.name, params.arguments or {})
        except NotVisible:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}") from None
        except RateLimited as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None
        return types.GetPromptResult.model_validate(result)


def _approved_tools() -> list[Tool]:
    """What every caller's tools/list is drawn from: approved definitions of ready servers."""
    offer = get_services().tools
    offer.watcher.check()
    return offer.pins.approved(get_services().mcp.list_tools())


def _wire_tool(tool: Tool) -> types.Tool:
    return types.Tool(
        name=tool.qualified_name,
        description=tool.description or None,
        input_schema=tool.input_schema or {"type": "object"},
        annotations=types.ToolAnnotations(
            read_only_hint=tool.read_only or None, idempotent_hint=tool.idempotent or None
        )
        if tool.read_only or tool.idempotent
        else None,
    )


def _wire_result(result: ToolResult) -> types.CallToolResult:
    return types.CallToolResult.model_validate(
        {
            "content": list(result.content),
            "structuredContent": result.structured_content,
            "isError": result.is_error,
        }
    )


def _search_result(tools: list[Tool]) -> types.CallToolResult:
    found = [
        {"name": t.qualified_name, "description": t.description, "inputSchema": t.input_schema}
        for t in tools
    ]
    text = functools.reduce(lambda acc, t: acc + f"- {t['name']}: {t['description']}\n", found, "")
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text or "No matching tools.")],
        structured_content={"tools": found},
    )


META_TOOLS = [
    types.Tool(
        name=SEARCH_TOOL,
        description=(
            "Search every tool behind this gateway by what you want to do; returns the best "
            "matches with their input schemas. Run one with gateway__call_tool."
        ),
        input_schema={
            "type": "object",
            "properties": {"query": {"type": "string", "description": "The task, in words."}},
            "required": ["query"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    types.Tool(
        name=CALL_TOOL,
        description="Run a tool found with gateway__search_tools, by its full name.",
        input_schema={
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The tool's name, server__tool."},
                "arguments": {"type": "object", "description": "The tool's arguments."},
            },
            "required": ["name"],
        },
    ),
]
