"""Converting SDK tools and results into the gateway's neutral types, and capping their size."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mcp import types

from gateway.tools import Tool, ToolResult


def to_tool(server: str, tool: types.Tool, server_args: tuple[str, ...] = ()) -> Tool:
    """The neutral view of one listed tool, annotations folded into two flags."""
    ann = tool.annotations
    return Tool(
        server=server,
        name=tool.name,
        description=tool.description or tool.title or "",
        input_schema=tool.input_schema or {"type": "object"},
        read_only=bool(ann and ann.read_only_hint),
        idempotent=bool(ann and (ann.idempotent_hint or ann.read_only_hint)),
        server_args=tuple(server_args),
    )


def tool_fingerprint(tool: Tool) -> str:
    """Stable sha256 of what the model is told about a tool, to pin definitions across restarts."""
    canonical = json.dumps(
        {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def to_result(result: types.CallToolResult, *, max_bytes: int) -> ToolResult:
    """Carry a result's wire-shape blocks through unchanged, cut down to ``max_bytes`` if larger."""
    content = tuple(block.model_dump(by_alias=True, exclude_none=True) for block in result.content)
    return cap_result(
        ToolResult(
            content=content,
            structured_content=result.structured_content,
            is_error=bool(result.is_error),
        ),
        max_bytes=max_bytes,
    )


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def cap_result(result: ToolResult, *, max_bytes: int) -> ToolResult:
    """Truncate a result over ``max_bytes`` of JSON: structured content goes first, then blocks."""
    total = _size(list(result.content)) + (
        0 if result.structured_content is None else _size(result.structured_content)
    )
    if total <= max_bytes:
        return result
    # Structured content usually duplicates the text blocks, and half a JSON value is useless.
    budget = max_bytes
    kept: list[dict[str, Any]] = []
    for block in result.content:
        size = _size(block)
        if size <= budget:
            kept.append(block)
            budget -= size
            continue
        if block.get("type") == "text" and budget > 64:
            raw = block["text"].encode("utf-8")[: budget - 64]
            kept.append({**block, "text": raw.decode("utf-8", errors="ignore")})
        budget = 0
        break
    marker = f"[truncated: the tool returned {total} bytes; the gateway keeps at most {max_bytes}]"
    kept.append({"type": "text", "text": marker})
    return ToolResult(
        content=tuple(kept), structured_content=None, is_error=result.is_error, truncated=True
    )
