"""The OpenAPI 3.1 document at /openapi.json: request schemas come from the pydantic models."""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue
from pydantic import BaseModel

from gateway.auth.schemas import Credentials, LoginRequest, LogoutRequest, NewApiKey
from gateway.chat.schemas import ChatBody, ConversationPatch
from gateway.compat.completions import CompletionRequest
from gateway.services import get_services

bp = Blueprint("openapi", __name__)

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}
OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {"message": {"type": "string"}, "type": {"type": "string"}},
        }
    },
}
TOKENS = {
    "type": "object",
    "required": ["access_token", "refresh_token", "token_type", "expires_in"],
    "properties": {
        "access_token": {"type": "string"},
        "refresh_token": {"type": "string"},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
    },
}
USER = {
    "type": "object",
    "required": ["id", "email", "role", "created_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "email": {"type": "string"},
        "role": {"enum": ["user", "admin"]},
        "created_at": {"type": "string"},
    },
}
API_KEY = {
    "type": "object",
    "required": ["id", "name", "prefix", "created_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "prefix": {"type": "string"},
        "key": {"type": "string", "description": "Shown once, at creation."},
        "created_at": {"type": "string"},
        "last_used_at": {"type": ["string", "null"]},
        "expires_at": {"type": ["string", "null"]},
    },
}
CONVERSATION = {
    "type": "object",
    "required": ["id", "title", "created_at", "updated_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "title": {"type": "string"},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
    },
}
MESSAGE = {
    "type": "object",
    "required": ["id", "role", "content", "status", "created_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "role": {"enum": ["user", "assistant", "tool"]},
        "content": {"type": "array", "items": {"type": "object"}},
        "status": {"enum": ["pending", "complete", "failed", "incomplete"]},
        "created_at": {"type": "string"},
    },
}
CHAT_RESULT = {
    "type": "object",
    "required": ["conversation_id", "message", "tool_calls", "routing", "usage", "provider"],
    "properties": {
        "conversation_id": {"type": ["string", "null"]},
        "user_message_id": {"type": ["string", "null"]},
        "message": {
            "type": "object",
            "required": ["id", "role", "content", "status"],
            "properties": {
                "id": {"type": ["string", "null"]},
                "role": {"const": "assistant"},
                "content": {"type": "string"},
                "status": {"enum": ["complete", "incomplete"]},
            },
        },
        "tool_calls": {"type": "array", "items": {"type": "object"}},
        "routing": {"type": ["object", "null"]},
        "usage": {
            "type": "object",
            "properties": {
                "input_tokens": {"type": "integer"},
                "output_tokens": {"type": "integer"},
            },
        },
        "provider": {"type": "string"},
        "model": {"type": "string"},
        "stop_reason": {"type": "string"},
    },
}
SERVER = {
    "type": "object",
    "required": ["name", "transport", "state", "tool_count"],
    "properties": {
        "name": {"type": "string"},
        "transport": {"enum": ["stdio", "streamable-http", "sse"]},
        "state": {"enum": ["ready", "starting", "unavailable", "disabled"]},
        "tool_count": {"type": "integer"},
    },
}


def _obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


def _no_nul(schema: Any) -> Any:
    """Strings in JSON bodies may not hold NUL (PostgreSQL text cannot): say so in the schema."""
    if isinstance(schema, dict):
        schema = {key: _no_nul(value) for key, value in schema.items()}
        if schema.get("type") == "string" and "pattern" not in schema:
            schema["pattern"] = "^[^\\x00]*$"
    elif isinstance(schema, list):
        schema = [_no_nul(item) for item in schema]
    return schema


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": _no_nul(model.model_json_schema())}},
    }


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int, openai: bool = False) -> dict[str, Any]:
    schema = OPENAI_ERROR if openai else ERROR
    return {str(code): _json(schema, "Error") for code in codes}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: type[BaseModel] | None = None,
    public: bool = False,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (),
    openai: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = _body(body)
    if params:
        operation["parameters"] = params
    codes = set(errors)
    if not public:
        codes |= {401}
    if body is not None:
        codes |= {400, 413, 415, 422}
    operation["responses"].update(_errors(*sorted(codes), openai=openai))
    if public:
        operation["security"] = []
    return operation


def _path_id(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


PAGE = [_query("limit", {"type": "integer", "minimum": 1}), _query("cursor", {"type": "string"})]
SERVER_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
NO_CONTENT = {"204": {"description": "Done"}}
SSE = {"text/event-stream": {"schema": {"type": "string"}}}


def _paths(development: bool) -> dict[str, Any]:
    chat_ok = _json(CHAT_RESULT)
    chat_ok["content"].update(SSE)
    paths: dict[str, Any] = {
        "/health": {
            "get": _op("Liveness", {"200": _json(_obj(status={"const": "ok"}))}, public=True)
        },
        "/health/ready": {
            "get": _op(
                "Readiness: the database (and MCP server states)",
                {"200": _json({"type": "object"})},
                public=True,
                errors=(503,),
            )
        },
        "/openapi.json": {
            "get": _op("This document", {"200": _json({"type": "object"})}, public=True)
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                public=True,
            )
        },
        "/auth/register": {
            "post": _op(
                "Create an account",
                {"201": _json(USER)},
                body=Credentials,
                public=True,
                errors=(403, 409),
            )
        },
        "/auth/login": {
            "post": _op(
                "Log in", {"200": _json(TOKENS)}, body=LoginRequest, public=True, errors=(401, 429)
            )
        },
        "/auth/refresh": {"post": _op("New tokens for a refresh token", {"200": _json(TOKENS)})},
        "/auth/logout": {
            "post": _op("Revoke the presented tokens", NO_CONTENT, body=LogoutRequest)
        },
        "/auth/me": {"get": _op("The caller", {"200": _json(USER)})},
        "/auth/keys": {
            "get": _op(
                "List API keys", {"200": _json(_obj(keys={"type": "array", "items": API_KEY}))}
            ),
            "post": _op("Create an API key", {"201": _json(API_KEY)}, body=NewApiKey),
        },
        "/auth/keys/{key_id}": {
            "delete": _op(
                "Revoke an API key", NO_CONTENT, params=[_path_id("key_id")], errors=(404,)
            )
        },
        "/admin/users": {
            "get": _op(
                "Every account (admin)",
                {"200": _json(_obj(users={"type": "array", "items": USER}))},
                errors=(403,),
            )
        },
        "/mcp/servers": {
            "get": _op(
                "MCP server states",
                {"200": _json(_obj(servers={"type": "array", "items": SERVER}))},
            )
        },
        "/mcp/servers/{name}/tools": {
            "get": _op(
                "A server's tools and their pinning state (admin)",
                {"200": _json({"type": "object"})},
                params=[SERVER_NAME],
                errors=(403, 404),
            )
        },
        "/mcp/servers/{name}/approve": {
            "post": _op(
                "Approve changed tool definitions (admin)",
                {"200": _json({"type": "object"})},
                params=[SERVER_NAME],
                errors=(403, 404),
            )
        },
        "/mcp/reload": {
            "post": _op(
                "Re-read the MCP config file (admin)",
                {"200": _json({"type": "object"})},
                errors=(403, 422),
            )
        },
        "/chat": {
            "post": _op(
                "Post a message: JSON answer, or SSE with stream=true",
                {"200": chat_ok},
                body=ChatBody,
                params=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    }
                ],
                errors=(404, 409, 429, 502, 503, 504),
            )
        },
        "/models": {
            "get": _op("Configured providers and models", {"200": _json({"type": "object"})})
        },
        "/conversations": {
            "get": _op(
                "Conversations, newest first",
                {
                    "200": _json(
                        _obj(
                            conversations={"type": "array", "items": CONVERSATION},
                            next_cursor={"type": ["string", "null"]},
                        )
                    )
                },
                params=PAGE,
                errors=(400,),
            )
        },
        "/conversations/{conversation_id}": {
            "get": _op(
                "A conversation with a page of its messages",
                {
                    "200": _json(
                        {
                            **CONVERSATION,
                            "properties": {
                                **CONVERSATION["properties"],
                                "messages": {"type": "array", "items": MESSAGE},
                            },
                        }
                    )
                },
                params=[_path_id("conversation_id"), *PAGE],
                errors=(400, 404),
            ),
            "patch": _op(
                "Rename",
                {"200": _json(CONVERSATION)},
                body=ConversationPatch,
                params=[_path_id("conversation_id")],
                errors=(404,),
            ),
            "delete": _op(
                "Delete (409 conversation_busy while one of its turns runs)",
                NO_CONTENT,
                params=[_path_id("conversation_id")],
                errors=(404, 409),
            ),
        },
        "/conversations/{conversation_id}/export": {
            "get": _op(
                "Download as JSON or Markdown",
                {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/markdown": {"schema": {"type": "string"}},
                        },
                    }
                },
                params=[
                    _path_id("conversation_id"),
                    _query("format", {"enum": ["json", "markdown"]}),
                ],
                errors=(400, 404),
            )
        },
        "/v1/models": {
            "get": _op(
                "OpenAI-compatible model list", {"200": _json({"type": "object"})}, openai=True
            )
        },
        "/v1/models/{model_id}": {
            "get": _op(
                "One model of the OpenAI-compatible list (404 model_not_found)",
                {"200": _json({"type": "object"})},
                params=[
                    {
                        "name": "model_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                errors=(404,),
                openai=True,
            )
        },
        "/v1/chat/completions": {
            "post": _op(
                "OpenAI-compatible chat completion: MCP tools run server-side, client tools "
                "come back as tool_calls (docs/openai-compatibility.md)",
                {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"type": "object"}}, **SSE},
                    }
                },
                body=CompletionRequest,
                errors=(400, 404, 429, 502, 503, 504),
                openai=True,
            )
        },
    }
    paths.update(_mcp_endpoint_paths())
    if development:
        paths["/auth/dev-token"] = {
            "post": _op(
                "A token for the mock user (development only)", {"200": _json(TOKENS)}, public=True
            )
        }
    return paths


def _mcp_endpoint_paths() -> dict[str, Any]:
    """``/mcp`` speaks MCP Streamable HTTP (JSON-RPC bodies), described by the MCP spec."""
    any_body = {"schema": {}}
    mcp = {"application/json": any_body, "text/event-stream": {"schema": {"type": "string"}}}
    answers = {
        str(code): {"description": text, "content": mcp}
        for code, text in (
            (200, "A JSON-RPC response, or an SSE stream of messages"),
            (202, "Accepted (a notification)"),
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
    operation = _op("MCP Streamable HTTP endpoint (2025-11-25 and 2026-07-28)", answers)
    metadata = _op(
        "OAuth protected-resource metadata for /mcp (RFC 9728)",
        {"200": _json({"type": "object"})},
        public=True,
    )
    return {
        "/mcp": {"post": operation, "delete": operation},
        "/mcp/calls": {
            "get": _op(
                "Calls made through /mcp, latest first, with totals (admin)",
                {"200": _json(_obj(calls={"type": "array"}, totals={"type": "array"}))},
                params=[
                    _query("user_id", {"type": "string", "format": "uuid"}),
                    _query("server", {"type": "string"}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ],
                errors=(403, 422),
            )
        },
        "/.well-known/oauth-protected-resource": {"get": metadata},
        "/.well-known/oauth-protected-resource/mcp": {"get": metadata},
    }


@functools.cache
def document(development: bool) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MCP Gateway",
            "version": "0.1.0",
            "description": "AI chat gateway with intelligent MCP routing. Errors: "
            '{"error": {"type", "message", "details"?}} (OpenAI shape under /v1).',
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": _paths(development),
    }


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return document(get_services().settings.mock_auth_enabled)
