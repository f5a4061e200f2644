"""The boundary of ``/mcp/calls`` and the protected-resource metadata; ``/mcp`` speaks MCP."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from gateway.mcp_server.accounting import MAX_LIMIT


class CallsQuery(BaseModel):
    user_id: uuid.UUID | None = None
    server: str | None = None
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)


class EndpointCalls(BaseModel):
    calls: list[dict[str, Any]] = Field(description="The latest calls, newest first.")
    totals: list[dict[str, Any]] = Field(description="Calls and failures per user and server.")


class ToolsQuery(BaseModel):
    tools: Literal["all", "search"] | None = Field(
        default=None, description="Every tool, or a search tool (default: MCP_ENDPOINT_TOOLS)."
    )


class ResourceMetadata(BaseModel):
    """OAuth 2.0 Protected Resource Metadata (RFC 9728)."""

    resource: str
    bearer_methods_supported: list[str]
    resource_name: str
    authorization_servers: list[str]


class JsonRpcRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jsonrpc: Literal["2.0"]
    id: str | int
    method: str
    params: dict[str, Any] = Field(default_factory=dict)


class JsonRpcNotification(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jsonrpc: Literal["2.0"]
    method: str
    params: dict[str, Any] = Field(default_factory=dict)


class McpMessage(RootModel[JsonRpcRequest | JsonRpcNotification]):
    """A JSON-RPC 2.0 message to the MCP server; its methods are the MCP specification's.

    Clients send ``Accept: application/json, text/event-stream`` (else 406), which OpenAPI
    cannot declare as a parameter.
    """


class McpEvent(BaseModel):
    """One Server-Sent Event of an ``/mcp`` answer: a JSON-RPC message."""

    event: Literal["message"]
    data: str = Field(json_schema_extra={"contentMediaType": "application/json"})
    id: str | None = None
