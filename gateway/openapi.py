"""The API boundary, declared once: views name their models, `/openapi.json` is built from them.

A view declares its operation with ``@operation(...)`` under its route decorator: the request body,
query and header models, the response models by status, and the error statuses it can answer
with. The document is generated from the app's URL map and those declarations through pydantic's
JSON Schema (``models_json_schema``): every model is a component, so every ``$ref`` resolves from
the document root.
"""

from __future__ import annotations

import dataclasses
import re
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from flask import Blueprint, Flask, current_app
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from gateway.errors import OPENAI_PREFIX
from gateway.services import get_services

F = TypeVar("F", bound=Callable[..., Any])

REF = "#/components/schemas/{model}"
# Werkzeug's URL converters as JSON Schema.
CONVERTERS = {"uuid": {"type": "string", "format": "uuid"}, "int": {"type": "integer"}}


class ErrorDetail(BaseModel):
    type: str = Field(description="Stable snake_case name of the failure.")
    message: str
    details: Any = Field(default=None, description="Per-field problems of a 422.")


class Error(BaseModel):
    """Every error outside ``/v1``: ``{"error": {"type", "message", "details"?}}``."""

    error: ErrorDetail


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="OpenAI's type: invalid_request_error, server_error...")
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """Every error under ``/v1``, in OpenAI's shape."""

    error: OpenAIErrorDetail


class Document(BaseModel):
    """A JSON object whose shape another document defines."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class Reply:
    """One response: a JSON model, a ``text/event-stream`` alternative, other media types.

    ``stream`` describes one Server-Sent Event (OpenAPI 3.1: the media type's schema is the
    schema of each event, an object with ``event``, ``data``, ``id``, ``retry``).
    """

    json: type[BaseModel] | None = None
    description: str = "OK"
    stream: type[BaseModel] | None = None
    media: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


NO_CONTENT = Reply(description="Done")


@dataclass(frozen=True)
class Operation:
    summary: str
    responses: Mapping[int, type[BaseModel] | Reply]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False


def operation(
    summary: str,
    *,
    responses: Mapping[int, type[BaseModel] | Reply],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    headers: type[BaseModel] | None = None,
    errors: Iterable[int] = (),
    public: bool = False,
) -> Callable[[F], F]:
    """Declare a view's boundary; put it under the route decorator.

    ``errors`` lists the statuses the view answers with besides the ones every operation of
    its kind has (401 unless ``public``; 400, 413, 415 and 422 with a ``body``).
    """

    def declare(view: F) -> F:
        view.__openapi__ = Operation(  # type: ignore[attr-defined]
            summary,
            responses,
            body=body,
            query=query,
            headers=headers,
            errors=tuple(errors),
            public=public,
        )
        return view

    return declare


def declared(view: Callable[..., Any]) -> Operation | None:
    return getattr(view, "__openapi__", None)


NO_NUL = "^[^\\x00]*$"
# Any JSON value without NUL in its strings or keys (gateway.requests refuses the whole body).
JSON_VALUE = "JsonValue"
_JSON_VALUE_SCHEMA = {
    "description": (
        "Any JSON value; no string or key in it may hold NUL (\\u0000) or a lone surrogate "
        "(\\ud800-\\udfff): both are refused with a 400."
    ),
    "anyOf": [
        {"type": ["number", "boolean", "null"]},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": {"$ref": REF.format(model=JSON_VALUE)}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": REF.format(model=JSON_VALUE)},
        },
    ],
}


def _no_nul(schema: Any) -> Any:
    """Requests may not hold NUL (PostgreSQL text cannot): say so in every string and key."""
    if isinstance(schema, list):
        return [_no_nul(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if not schema or schema == {"additionalProperties": True}:
        return {"$ref": REF.format(model=JSON_VALUE)}
    schema = {
        key: value if key in ("properties", "$defs") else _no_nul(value)
        for key, value in schema.items()
    }
    if "properties" in schema:
        schema["properties"] = {name: _no_nul(prop) for name, prop in schema["properties"].items()}
    if schema.get("type") == "string" and "enum" not in schema:
        if "pattern" not in schema:
            schema["pattern"] = NO_NUL
        elif schema["pattern"] != NO_NUL:  # a string's own pattern stays beside it
            schema.setdefault("allOf", []).append({"pattern": NO_NUL})
    if schema.get("type") == "object":
        schema.setdefault("propertyNames", {"pattern": NO_NUL})
        if schema.get("additionalProperties", True) is True:
            schema["additionalProperties"] = {"$ref": REF.format(model=JSON_VALUE)}
    return schema


def _refs(schema: Any) -> Iterable[str]:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)


class _Schemas:
    """Every model of every operation as a component; request models tell NUL is refused."""

    def __init__(self, operations: Iterable[Operation], *, openai: bool) -> None:
        requests: set[type[BaseModel]] = set()
        responses: set[type[BaseModel]] = {Error, OpenAIError} if openai else {Error}
        for op in operations:
            requests.update(m for m in (op.body, op.query, op.headers) if m is not None)
            for reply in op.responses.values():
                if not isinstance(reply, Reply):
                    reply = Reply(reply)
                responses.update(m for m in (reply.json, reply.stream) if m is not None)
        keyed: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
            *((m, "validation") for m in sorted(requests, key=lambda m: m.__name__)),
            *((m, "serialization") for m in sorted(responses, key=lambda m: m.__name__)),
        ]
        self.refs, defs = models_json_schema(keyed, ref_template=REF)
        self.components: dict[str, Any] = defs.get("$defs", {})
        # Request-side components, and all they refer to, refuse NUL in strings.
        pending = [self.name(m, "validation") for m in requests]
        seen: set[str] = set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            pending.extend(_refs(self.components[name]))
        for name in seen:
            self.components[name] = _no_nul(self.components[name])
        self.components[JSON_VALUE] = _JSON_VALUE_SCHEMA

    def ref(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> Any:
        return self.refs[(model, mode)]

    def name(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> str:
        return str(self.ref(model, mode)["$ref"]).rsplit("/", 1)[-1]

    def parameters(self, model: type[BaseModel], where: str) -> list[dict[str, Any]]:
        """A query or header model's fields as parameters; absent is how they say None."""
        schema = self.components[self.name(model, "validation")]
        required = set(schema.get("required", ()))
        return [
            {
                "name": name,
                "in": where,
                "required": name in required,
                "schema": _without_null(prop),
                **({"description": prop["description"]} if "description" in prop else {}),
            }
            for name, prop in schema.get("properties", {}).items()
        ]


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    schema = {k: v for k, v in prop.items() if k not in ("title", "description", "default")}
    branches = [b for b in schema.pop("anyOf", ()) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    return schema


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """A werkzeug rule as an OpenAPI path, and its path parameters."""
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": CONVERTERS.get(converter or "", {"type": "string"}),
        }
        for converter, name in re.findall(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", rule)
    ]
    return re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule), params


def _content(schemas: _Schemas, reply: type[BaseModel] | Reply) -> dict[str, Any]:
    if not isinstance(reply, Reply):
        reply = Reply(reply)
    out: dict[str, Any] = {"description": reply.description}
    content: dict[str, Any] = {}
    if reply.json is not None:
        content["application/json"] = {"schema": schemas.ref(reply.json, "serialization")}
    if reply.stream is not None:
        content["text/event-stream"] = {"schema": schemas.ref(reply.stream, "serialization")}
    content.update({media: dict(spec) for media, spec in reply.media.items()})
    if content:
        out["content"] = content
    if reply.headers:
        out["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in reply.headers.items()
        }
    return out


def _operation(
    schemas: _Schemas,
    op: Operation,
    path_params: list[dict[str, Any]],
    *,
    method: str,
    openai: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary}
    if method in ("get", "delete"):
        # One view may serve several methods (``/mcp``): only the others read a body.
        op = dataclasses.replace(op, body=None)
    params = list(path_params)
    if op.query is not None:
        params += schemas.parameters(op.query, "query")
    if op.headers is not None:
        params += schemas.parameters(op.headers, "header")
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(op.body, "validation")}},
        }
    responses = {str(status): _content(schemas, reply) for status, reply in op.responses.items()}
    codes = set(op.errors)
    if not op.public:
        codes.add(401)
    if op.body is not None:
        codes |= {400, 413, 415, 422}
    error = schemas.ref(OpenAIError if openai else Error, "serialization")
    for code in sorted(codes):
        responses.setdefault(
            str(code),
            {"description": "Error", "content": {"application/json": {"schema": error}}},
        )
    out["responses"] = responses
    if op.public:
        out["security"] = []
    return out


def _is_openai(path: str) -> bool:
    return path == OPENAI_PREFIX or path.startswith(OPENAI_PREFIX + "/")


def build_document(
    app: Flask, *, restrict: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s routes; a route without ``@operation`` is an error.

    ``restrict`` may narrow component schemas to what this deployment accepts (its providers).
    """
    routes: list[tuple[str, list[dict[str, Any]], str, Operation]] = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        op = declared(app.view_functions[rule.endpoint])
        if op is None:
            raise LookupError(f"{rule.rule} ({rule.endpoint}) declares no @operation")
        path, params = _path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((path, params, method.lower(), op))
    ops = [op for *_, op in routes]
    schemas = _Schemas(ops, openai=any(_is_openai(path) for path, *_ in routes))
    paths: dict[str, dict[str, Any]] = {}
    for path, params, method, op in sorted(routes, key=lambda r: r[0]):
        paths.setdefault(path, {})[method] = _operation(
            schemas, op, params, method=method, openai=_is_openai(path)
        )
    if restrict is not None:
        restrict(schemas.components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MCP Gateway",
            "version": "0.1.0",
            "description": "AI chat gateway with intelligent MCP routing. Errors: "
            '{"error": {"type", "message", "details"?}} (OpenAI shape under /v1).',
        },
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _configured_choices(components: dict[str, Any]) -> None:
    """``provider`` and ``servers`` of ``POST /chat`` name what this deployment has configured
    (else 422): its providers and its MCP servers (as of the document's first request)."""
    services = get_services()
    providers = sorted({row["provider"] for row in services.llm.list_models()})
    servers = sorted(c.name for c in services.mcp.configs if c.enabled)
    chat = components.get("ChatBody", {}).get("properties", {})
    if "provider" in chat:
        chat["provider"] = {
            "anyOf": [{"enum": providers}, {"type": "null"}],
            "default": None,
            "description": "One of the configured providers (GET /models).",
        }
    if "servers" in chat:
        items: dict[str, Any] = {"enum": servers} if servers else {"not": {}}
        chat["servers"] = {
            "anyOf": [{"type": "array", "items": items, "maxItems": 20}, {"type": "null"}],
            "default": None,
            "description": "Configured MCP servers to offer instead of routing (GET /mcp/servers).",
        }


bp = Blueprint("openapi", __name__)
# Built once per app: routes and settings do not change while it runs.
_documents: weakref.WeakKeyDictionary[Flask, dict[str, Any]] = weakref.WeakKeyDictionary()


@bp.get("/openapi.json")
@operation("This document", responses={200: Document}, public=True)
def openapi() -> ResponseReturnValue:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    document = _documents.get(app)
    if document is None:
        document = _documents[app] = build_document(app, restrict=_configured_choices)
    return document
