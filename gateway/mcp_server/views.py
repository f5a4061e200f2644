"""``/mcp``: the gateway's MCP endpoint; ``/.well-known/oauth-protected-resource``: its metadata."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from gateway.auth.guard import admin_required, current_user
from gateway.errors import ServiceUnavailable
from gateway.mcp_server.accounting import recent_calls
from gateway.mcp_server.bridge import BridgeClosed, TooManyStreams
from gateway.mcp_server.catalog import Caller
from gateway.mcp_server.schemas import (
    CallsQuery,
    EndpointCalls,
    McpEvent,
    McpMessage,
    ResourceMetadata,
    ToolsQuery,
)
from gateway.mcp_server.server import CALLER
from gateway.openapi import Reply, operation
from gateway.services import get_services

bp = Blueprint("mcp_endpoint", __name__)

# MCP Streamable HTTP: JSON-RPC bodies, described by the MCP specification, not here.
_JSON_RPC = {"application/json": {"schema": {}}}
_MCP_ANSWERS = {
    200: Reply(
        description="A JSON-RPC response, or an SSE stream of messages",
        stream=McpEvent,
        media=_JSON_RPC,
    ),
    202: Reply(description="Accepted (a notification or a response): no body"),
} | {
    code: Reply(description=text, media=_JSON_RPC)
    for code, text in (
        (400, "Not a valid MCP request (JSON-RPC error body)"),
        (404, "Unknown session"),
        (405, "Method not allowed for this protocol version"),
        (406, "The Accept header does not allow the answer"),
        (413, "Body too large"),
        (415, "Not application/json"),
        (422, "Invalid request (JSON-RPC error body)"),
        (503, "Too many open streams on this worker"),
    )
}

METADATA_PATH = "/.well-known/oauth-protected-resource"


# No GET: in stateless mode there is no standing stream to open, and the spec's answer for a
# server that offers none is 405 (Streamable HTTP, "Listening for Messages from the Server").
@bp.route("/mcp", methods=["POST", "DELETE"])
@operation(
    "MCP Streamable HTTP endpoint (2025-11-25 and 2026-07-28)",
    body=McpMessage,
    query=ToolsQuery,
    responses=_MCP_ANSWERS,
)
def mcp_endpoint() -> ResponseReturnValue:
    """One Streamable HTTP request, answered by the SDK's handler (JSON or an SSE stream)."""
    user = current_user()
    caller = Caller(user_id=user.id, role=user.role, tools_mode=_tools_mode())
    body = request.get_data(cache=False) if request.method == "POST" else b""
    long_lived = request.headers.get("Mcp-Method") == "subscriptions/listen"
    endpoint = get_services().endpoint
    try:
        status, headers, chunks = endpoint.bridge.handle(
            _asgi_scope(), body, {CALLER: caller}, long_lived=long_lived
        )
    except TooManyStreams:
        raise ServiceUnavailable("Too many open MCP streams on this worker.") from None
    except BridgeClosed:
        raise ServiceUnavailable("The gateway is restarting.") from None
    return Response(chunks, status=status, headers=headers, direct_passthrough=True)


@bp.get(METADATA_PATH)
@bp.get(METADATA_PATH + "/mcp")
@operation(
    "OAuth protected-resource metadata for /mcp (RFC 9728)",
    responses={200: ResourceMetadata},
    public=True,
)
def protected_resource_metadata() -> ResponseReturnValue:
    """RFC 9728 metadata: ``/mcp`` takes the gateway's API keys or access tokens as Bearer."""
    return {
        "resource": resource_url(),
        "bearer_methods_supported": ["header"],
        "resource_name": "MCP Gateway",
        # No OAuth 2.1 authorization server yet: create an API key (POST /auth/api-keys)
        # and configure the client with "Authorization: Bearer <key>".
        "authorization_servers": [],
    }


@bp.get("/mcp/calls")
@operation(
    "Calls made through /mcp, latest first, with totals (admin)",
    query=CallsQuery,
    responses={200: EndpointCalls},
    errors=(403, 422),
)
@admin_required
def list_endpoint_calls() -> ResponseReturnValue:
    """Calls made through ``/mcp`` (admin): the latest, and totals per user and server."""
    return recent_calls(
        user_id=request.args.get("user_id"),
        server=request.args.get("server"),
        limit=request.args.get("limit", "100"),
    )


@bp.after_app_request
def _point_at_metadata(response: Response) -> Response:
    """A 401 from ``/mcp`` names the metadata document (MCP authorization, RFC 9728 5.1)."""
    if response.status_code == 401 and request.path == "/mcp":
        metadata = request.host_url.rstrip("/") + METADATA_PATH + "/mcp"
        response.headers["WWW-Authenticate"] = f'Bearer resource_metadata="{metadata}"'
    return response


def resource_url() -> str:
    return request.host_url.rstrip("/") + "/mcp"


def _tools_mode() -> str:
    """``?tools=search`` or ``X-MCP-Tools: search`` per request, else MCP_ENDPOINT_TOOLS."""
    asked = (request.args.get("tools") or request.headers.get("X-MCP-Tools") or "").lower()
    if asked in ("all", "search"):
        return asked
    return get_services().settings.mcp.endpoint.tools_mode


def _asgi_scope() -> dict[str, Any]:
    """The ASGI HTTP scope of this WSGI request (PEP 3333 environ to ASGI 3.0)."""
    environ = request.environ
    headers: list[tuple[bytes, bytes]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").lower()
        else:
            continue
        if value:
            headers.append((name.encode("latin-1"), str(value).encode("latin-1")))
    server_port = int(environ.get("SERVER_PORT") or 80)
    remote = environ.get("REMOTE_ADDR") or ""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": environ.get("SERVER_PROTOCOL", "HTTP/1.1").partition("/")[2] or "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "client": (remote, int(environ.get("REMOTE_PORT") or 0)),
        "server": (environ.get("SERVER_NAME", ""), server_port),
    }
