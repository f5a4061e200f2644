"""Helpers the providers share: argument parsing, tool-result text, SDK client options."""

from __future__ import annotations

import email.utils
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx2

from gateway.llm.errors import ProviderError, UpstreamError, UpstreamRateLimited, UpstreamTimeout
from gateway.tools import ToolResult

log = logging.getLogger(__name__)

# A Retry-After longer than this is not worth holding a worker thread for: fail fast instead.
DEFAULT_MAX_RETRY_WAIT = 10.0


def parse_arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    """Tool arguments as a dict, plus why they are unusable (to tell the model) or None."""
    if isinstance(raw, Mapping):
        return dict(raw), None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    if not isinstance(raw, str):
        return {}, f"arguments must be a JSON object, got {type(raw).__name__}"
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return {}, f"arguments are not valid JSON ({exc})"
    if not isinstance(value, dict):
        return {}, f"arguments must be a JSON object, got {type(value).__name__}"
    return value, None


def block_text(block: Mapping[str, Any]) -> str:
    """Text stand-in for a non-text MCP content block, for providers that only take text."""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "image":
        size = len(block.get("data", "")) * 3 // 4
        return f"[image {block.get('mimeType', 'application/octet-stream')}, {size} bytes]"
    if kind == "audio":
        return f"[audio {block.get('mimeType', 'application/octet-stream')}]"
    if kind == "resource":
        resource = block.get("resource") or {}
        if "text" in resource:
            return f"[resource {resource.get('uri', '')}]\n{resource['text']}"
        return f"[resource {resource.get('uri', '')} ({resource.get('mimeType', 'binary')})]"
    if kind == "resource_link":
        return f"[resource link {block.get('uri', '')}: {block.get('name', '')}]"
    return f"[{kind} content]"


def result_text(result: ToolResult) -> str:
    """The whole result as one text, structured content included when there is no text."""
    parts = [block_text(b) for b in result.content]
    if result.structured_content is not None and not any(
        b.get("type") == "text" for b in result.content
    ):
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = "\n".join(p for p in parts if p) or "(no output)"
    if result.truncated:
        text += "\n[result truncated]"
    return text


def summarize(result: ToolResult, limit: int = 200) -> str:
    """A one-line summary of a tool result for events and logs."""
    text = " ".join(result_text(result).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return ("error: " if result.is_error else "") + text


# The SDKs' own limits (openai/anthropic ``DEFAULT_CONNECTION_LIMITS``): 1000 connections,
# 100 of them kept idle per client; the rest are closed after each response.
SDK_MAX_CONNECTIONS = 1000
SDK_KEEPALIVE_CONNECTIONS = 100


def connection_limits(keepalive: int) -> httpx2.Limits:
    """Transport limits keeping up to ``keepalive`` idle upstream connections per worker.

    One request thread holds at most one upstream call, so a worker with N threads never needs
    more than N connections open at once; with the SDKs' 100, a worker serving more calls at
    once opened a new connection (a TLS handshake, against a real provider) for every call
    past the hundredth. ``max_connections`` stays the SDKs' 1000 unless the threads need more.
    """
    return httpx2.Limits(
        max_connections=max(SDK_MAX_CONNECTIONS, keepalive),
        max_keepalive_connections=keepalive,
    )


def retry_after_hook(max_wait: float) -> Any:
    """An httpx response hook that stops the SDK from sleeping on a long Retry-After.

    The SDKs honour any Retry-After, even an hour, inside the request thread; above
    ``max_wait`` we tell them not to retry so the request fails fast with a 502.
    """

    def hook(response: Any) -> None:
        if response.status_code != 429 and response.status_code < 500:
            return
        headers = response.headers
        wait = _retry_after_seconds(headers)
        if wait is not None and wait > max_wait:
            headers["x-should-retry"] = "false"

    return hook


def _retry_after_seconds(headers: Any) -> float | None:
    """Seconds the upstream asks us to wait, as the SDKs read it (ms header, seconds or a date)."""
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (when - datetime.now(when.tzinfo or UTC)).total_seconds()


def status_failure(
    label: str, status: int, vendor_text: str, headers: Mapping[str, str] | None = None
) -> ProviderError:
    """The error for an upstream HTTP error status; the vendor text only goes to the log.

    A 429 stays a 429 and keeps the upstream's ``Retry-After`` (RFC 9110 §10.2.3), so a
    client backs off as long as the provider asked instead of retrying at once.
    """
    log.warning("%s returned HTTP %s: %s", label, status, vendor_text)
    if status == 429:
        wait = _retry_after_seconds(headers or {})
        return UpstreamRateLimited(
            f"{label} is rate limiting requests; try again later.",
            retry_after=max(1, round(wait)) if wait is not None else None,
        )
    if status in (408, 504):
        return UpstreamTimeout(f"{label} did not answer in time.")
    return UpstreamError(f"{label} returned an error (HTTP {status}).")


def timeout_failure(label: str, detail: object) -> ProviderError:
    log.warning("%s timed out: %s", label, detail)
    return UpstreamTimeout(f"{label} did not answer in time.")


def connection_failure(label: str, detail: object) -> ProviderError:
    log.warning("%s connection failed: %s", label, detail)
    return UpstreamError(f"Could not reach {label}.")


def protocol_failure(label: str, detail: object) -> ProviderError:
    log.warning("%s sent a response we could not use: %s", label, detail)
    return UpstreamError(f"{label} sent an incomplete or invalid response.")
