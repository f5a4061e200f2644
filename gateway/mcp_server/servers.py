"""/mcp/servers: upstream server states for everyone; tools, reload and approvals for admins."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from gateway.auth.guard import admin_required, current_user, login_required
from gateway.catalog import pins
from gateway.catalog.schemas import Approval, Reloaded, ServerList, ServerTools
from gateway.errors import NotFoundError
from gateway.mcp import tool_fingerprint
from gateway.openapi import operation
from gateway.services import get_services

bp = Blueprint("mcp", __name__, url_prefix="/mcp")


@bp.get("/servers")
@operation("MCP server states", responses={200: ServerList})
@login_required
def list_servers() -> ResponseReturnValue:
    admin = current_user().is_admin
    servers: list[dict[str, Any]] = []
    for status in get_services().mcp.statuses():
        row: dict[str, Any] = {
            "name": status.name,
            "transport": status.transport,
            "state": status.state,
            "tool_count": status.tool_count,
        }
        if admin:
            row.update(
                last_error=status.last_error,
                pid=status.pid,
                protocol_version=status.protocol_version,
                pending_changes=pins.pending_changes(status.name),
            )
        servers.append(row)
    return {"servers": servers}


@bp.get("/servers/<name>/tools")
@operation(
    "A server's tools and their pinning state (admin)",
    responses={200: ServerTools},
    errors=(403, 404),
)
@admin_required
def list_server_tools(name: str) -> ResponseReturnValue:
    hub = get_services().mcp
    if name not in {c.name for c in hub.configs}:
        raise NotFoundError("MCP server not found.")
    pending = set(pins.pending_changes(name))
    offered = {t.name for t in get_services().tools.pins.approved(hub.list_tools())}
    tools = [
        {
            "name": tool.name,
            "description": tool.description,
            "input_schema": tool.input_schema,
            "fingerprint": tool_fingerprint(tool),
            "state": "approved"
            if tool.name in offered
            else "pending"
            if tool.name in pending
            else "withheld",
        }
        for tool in hub.list_tools()
        if tool.server == name
    ]
    return {"server": name, "tools": tools}


@bp.post("/servers/<name>/approve")
@operation("Approve changed tool definitions (admin)", responses={200: Approval}, errors=(403, 404))
@admin_required
def approve_server_changes(name: str) -> ResponseReturnValue:
    if name not in {c.name for c in get_services().mcp.configs}:
        raise NotFoundError("MCP server not found.")
    approved = pins.approve_changes(name)
    get_services().tools.pins.invalidate()
    return {"server": name, "approved": approved}


@bp.post("/reload")
@operation("Re-read the MCP config file (admin)", responses={200: Reloaded}, errors=(403, 422))
@admin_required
def reload_config() -> ResponseReturnValue:
    offer = get_services().tools
    offer.watcher.reload_now()
    return {"servers": [c.name for c in offer.hub.configs]}
