"""What one caller of ``/mcp`` may see and call: the hub's servers, filtered, pinned, accounted.

Plain synchronous functions, run in a worker thread inside an app context (the SDK handlers in
``gateway.mcp_server.server`` hand them over). Names are the chat's: a tool is
``server__tool``, a prompt ``server__prompt``, and a resource URI is wrapped as
``gateway://server/<the server's URI, percent-encoded>`` so that a read finds its server.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy import text

from gateway.database import unit_of_work
from gateway.extensions import db
from gateway.limits import hit_rate_limit
from gateway.mcp.errors import ToolUnavailable
from gateway.metrics import observe_endpoint_call
from gateway.models import EndpointCall
from gateway.services import get_services
from gateway.settings import EndpointSettings
from gateway.tools import Tool, ToolResult, split_qualified

logger = logging.getLogger(__name__)

SEARCH_TOOL = "gateway__search_tools"
CALL_TOOL = "gateway__call_tool"
RESOURCE_SCHEME = "gateway"
SEARCH_LIMIT = 10


@dataclass(frozen=True)
class Caller:
    """The authenticated user of one ``/mcp`` request, as the SDK handlers see it."""

    user_id: uuid.UUID
    role: str
    tools_mode: str  # "all" or "search"


class NotVisible(LookupError):
    """The name does not exist for this caller (hidden, pending approval, or unknown)."""


class RateLimited(Exception):
    """The caller's ``/mcp`` call budget is spent; ``retry_after`` seconds until the next."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many MCP calls; retry after {retry_after}s.")
        self.retry_after = retry_after


def endpoint_settings() -> EndpointSettings:
    return get_services().settings.mcp.endpoint


def visible_servers(caller: Caller) -> list[str]:
    """Enabled servers the caller's role may use, in config order."""
    allowed = endpoint_settings().visible(caller.role)
    names = [c.name for c in get_services().mcp.configs if c.enabled]
    return names if allowed is None else [n for n in names if n in allowed]


def visible_tools(caller: Caller) -> list[Tool]:
    """Tools of ready, visible servers whose definitions are approved (never a pending change)."""
    offer = get_services().tools
    offer.watcher.check()
    servers = set(visible_servers(caller))
    return offer.pins.approved([t for t in offer.hub.list_tools() if t.server in servers])


def listed_tools(caller: Caller) -> list[Tool]:
    """What ``tools/list`` shows: every visible tool, or in search mode the always-on servers'."""
    tools = visible_tools(caller)
    if caller.tools_mode != "search":
        return tools
    always = {c.name for c in get_services().mcp.configs if c.always}
    return [t for t in tools if t.server in always]


def search_tools(caller: Caller, query: str, limit: int = SEARCH_LIMIT) -> list[Tool]:
    """The visible tools the router ranks for ``query``, best first."""
    visible = {t.qualified_name: t for t in visible_tools(caller)}
    router = get_services().tools.router()
    decision = router.route(query)
    ranked = [visible[n] for n in decision.tools if n in visible]
    if len(ranked) < limit:
        # The router offers few tools per turn; fill up with the next-best visible ones.
        words = set(query.lower().split())
        rest = sorted(
            (t for n, t in visible.items() if t not in ranked),
            key=lambda t: -len(words & set(f"{t.name} {t.description}".lower().split())),
        )
        ranked.extend(rest)
    return ranked[:limit]


def call_tool(caller: Caller, name: str, arguments: dict[str, Any]) -> ToolResult:
    """Call a visible tool by its qualified name; raises NotVisible or RateLimited."""
    tools = {t.qualified_name: t for t in visible_tools(caller)}
    tool = tools.get(name)
    if tool is None:
        raise NotVisible(name)
    server = tool.server

    def run() -> tuple[ToolResult, str]:
        try:
            result = get_services().mcp.call_tool(server, tool.name, arguments)
        except ToolUnavailable as exc:
            return ToolResult.error(str(exc) or "The MCP server is unavailable."), ("unavailable")
        return result, "error" if result.is_error else "ok"

    return accounted(caller, "tools/call", server, name, arguments, run, _result_size)


def list_resources(caller: Caller) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Resources and resource templates of visible servers, URIs wrapped, names namespaced."""
    resources: list[dict[str, Any]] = []
    templates: list[dict[str, Any]] = []
    hub = get_services().mcp
    for server in _ready(visible_servers(caller)):
        caps = hub.capabilities(server)
        if caps is None or caps.resources is None:
            continue
        try:
            listed = hub.request(server, _all_resources)
        except Exception as exc:  # one broken server must not hide the others
            logger.warning("mcp endpoint: resources of %s not listed: %s", server, exc)
            continue
        for item in listed["resources"]:
            item["uri"] = wrap_uri(server, item["uri"])
            item["name"] = f"{server}__{item['name']}"
            resources.append(item)
        for item in listed["templates"]:
            item["uriTemplate"] = wrap_uri(server, item["uriTemplate"], template=True)
            item["name"] = f"{server}__{item['name']}"
            templates.append(item)
    return resources, templates


def read_resource(caller: Caller, uri: str) -> list[dict[str, Any]]:
    """The contents of a wrapped resource URI, with the URIs wrapped again."""
    server, inner = unwrap_uri(uri)
    if server not in visible_servers(caller):
        raise NotVisible(uri)

    def run() -> tuple[list[dict[str, Any]], str]:
        async def read(client: Any) -> list[dict[str, Any]]:
            result = await client.read_resource(inner)
            return [c.model_dump(by_alias=True, exclude_none=True) for c in result.contents]

        contents = get_services().mcp.request(server, read)
        for item in contents:
            item["uri"] = wrap_uri(server, item["uri"])
        return contents, "ok"

    return accounted(caller, "resources/read", server, uri, {}, run, _json_size)


def list_prompts(caller: Caller) -> list[dict[str, Any]]:
    """Prompts of visible servers, named ``server__prompt``."""
    prompts: list[dict[str, Any]] = []
    hub = get_services().mcp
    for server in _ready(visible_servers(caller)):
        caps = hub.capabilities(server)
        if caps is None or caps.prompts is None:
            continue
        try:
            listed = hub.request(server, _all_prompts)
        except Exception as exc:
            logger.warning("mcp endpoint: prompts of %s not listed: %s", server, exc)
            continue
        for item in listed:
            item["name"] = f"{server}__{item['name']}"
            prompts.append(item)
    return prompts


def get_prompt(caller: Caller, name: str, arguments: dict[str, str]) -> dict[str, Any]:
    """One prompt of a visible server, by its namespaced name."""
    try:
        server, prompt = split_qualified(name)
    except ValueError:
        raise NotVisible(name) from None
    if server not in visible_servers(caller):
        raise NotVisible(name)

    def run() -> tuple[dict[str, Any], str]:
        async def get(client: Any) -> dict[str, Any]:
            result = await client.get_prompt(prompt, arguments or None)
            return result.model_dump(by_alias=True, exclude_none=True)  # type: ignore[no-any-return]

        return get_services().mcp.request(server, get), "ok"

    return accounted(caller, "prompts/get", server, name, arguments, run, _json_size)


def accounted(
    caller: Caller,
    method: str,
    server: str,
    name: str,
    arguments: Any,
    run: Callable[[], tuple[Any, str]],
    size: Callable[[Any], int],
) -> Any:
    """Apply the caller's rate limit, run, then record the call (PostgreSQL and metrics)."""
    settings = endpoint_settings()
    if settings.rate_limit:
        wait = hit_rate_limit(
            f"mcp:{caller.user_id}", settings.rate_limit, settings.rate_window_seconds
        )
        if wait is not None:
            _record(caller, method, server, name, "rate_limited", 0.0, _json_size(arguments), 0)
            raise RateLimited(wait)
    started = time.perf_counter()
    outcome, result = "error", None
    try:
        result, outcome = run()
        return result
    finally:
        seconds = time.perf_counter() - started
        _record(
            caller,
            method,
            server,
            name,
            outcome,
            seconds,
            _json_size(arguments),
            size(result) if result is not None else 0,
        )


def wrap_uri(server: str, uri: str, *, template: bool = False) -> str:
    """``gateway://server/<uri percent-encoded>``; template braces stay usable."""
    safe = "{}" if template else ""
    return f"{RESOURCE_SCHEME}://{server}/{quote(uri, safe=safe)}"


def unwrap_uri(uri: str) -> tuple[str, str]:
    """Inverse of ``wrap_uri``; raises NotVisible for any other URI."""
    parts = urlsplit(uri)
    if parts.scheme != RESOURCE_SCHEME or not parts.netloc or len(parts.path) < 2:
        raise NotVisible(uri)
    return parts.netloc, unquote(uri.split("/", 3)[3])


def _ready(servers: list[str]) -> list[str]:
    ready = {s.name for s in get_services().mcp.statuses() if s.state == "ready"}
    return [s for s in servers if s in ready]


async def _all_resources(client: Any) -> dict[str, list[dict[str, Any]]]:
    resources = (await client.list_resources(cache_mode="refresh")).resources
    try:
        templates = (await client.list_resource_templates(cache_mode="refresh")).resource_templates
    except Exception:  # templates are optional for a server that lists resources
        templates = []
    return {
        "resources": [r.model_dump(by_alias=True, exclude_none=True) for r in resources],
        "templates": [t.model_dump(by_alias=True, exclude_none=True) for t in templates],
    }


async def _all_prompts(client: Any) -> list[dict[str, Any]]:
    prompts = (await client.list_prompts(cache_mode="refresh")).prompts
    return [p.model_dump(by_alias=True, exclude_none=True) for p in prompts]


def _json_size(value: Any) -> int:
    try:
        return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))
    except (TypeError, ValueError):
        return 0


def _result_size(result: ToolResult) -> int:
    return _json_size(list(result.content)) + (
        _json_size(result.structured_content) if result.structured_content is not None else 0
    )


def _record(
    caller: Caller,
    method: str,
    server: str,
    name: str,
    outcome: str,
    seconds: float,
    request_bytes: int,
    response_bytes: int,
) -> None:
    observe_endpoint_call(method, server, outcome, seconds)
    try:
        with unit_of_work():
            # An audit row need not wait for the WAL flush: a crash loses at most the last
            # few hundred milliseconds of records, never a call's answer.
            db.session.execute(text("SET LOCAL synchronous_commit = off"))
            db.session.add(
                EndpointCall(
                    user_id=caller.user_id,
                    method=method,
                    server=server,
                    name=name[:512],
                    outcome=outcome,
                    duration_ms=round(seconds * 1000),
                    request_bytes=request_bytes,
                    response_bytes=response_bytes,
                )
            )
    except Exception:  # the call's answer matters more than its record
        logger.warning("mcp endpoint: call record not written", exc_info=True)
