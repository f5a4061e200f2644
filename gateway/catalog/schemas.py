"""The answers of the ``/mcp/servers`` and ``/mcp/reload`` endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ServerState(BaseModel):
    name: str
    transport: Literal["stdio", "streamable-http", "sse"]
    state: Literal["ready", "starting", "unavailable", "disabled"]
    tool_count: int
    # Admins only.
    last_error: str | None = None
    pid: int | None = None
    protocol_version: str | None = None
    pending_changes: list[str] | None = None


class ServerList(BaseModel):
    servers: list[ServerState]


class ServerTool(BaseModel):
    name: str
    description: str | None
    input_schema: dict[str, Any]
    fingerprint: str
    state: Literal["approved", "pending", "withheld"] = Field(
        description="approved: offered to models; pending: changed, awaiting approval."
    )


class ServerTools(BaseModel):
    server: str
    tools: list[ServerTool]


class Approval(BaseModel):
    server: str
    approved: list[str] = Field(
        description="The tools whose changed definitions this call approved."
    )


class Reloaded(BaseModel):
    servers: list[str] = Field(description="The configured servers after the reload.")
