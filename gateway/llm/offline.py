"""The offline provider: deterministic, no network, and still drives the routed tools for real."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
import zoneinfo
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.llm import base
from gateway.llm.types import (
    ChatEvent,
    ChatRequest,
    ChatResponse,
    Message,
    ToolCall,
    Usage,
    wire_name,
)
from gateway.tools import GATEWAY_SERVER, Tool

_PAIR = re.compile(r"""([A-Za-z_][\w.-]*)\s*=\s*("[^"]*"|'[^']*'|[^\s,;]+)""")
_TRAILING = "?!.,;:)"


class OfflineProvider:
    """Picks the best-ranked tool, fills its arguments from the prompt, then summarises the result.

    Used when no API key is configured in development, so the whole gateway (routing, MCP
    calls, streaming, storage) works without a model. Its answers say so.
    """

    name = "offline"
    label = "offline"
    default_model = "offline"

    def complete(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        prompt, turn = _current_turn(request.messages)
        results = [m for m in turn if m.role == "tool"]
        calls: tuple[ToolCall, ...] = ()
        # The gateway's own tool search needs a query written by a model: not for this provider.
        tools = tuple(t for t in request.tools if t.server != GATEWAY_SERVER)
        if results:
            text = _summarize_results(turn, results)
        elif tools:
            tool, arguments, missing = _pick(tools, prompt)
            if missing:
                text = (
                    f"Offline provider: I would call `{tool.qualified_name}`"
                    f"{_about(tool)}, but these arguments are missing: {', '.join(missing)}. "
                    f"Add them to your message as key=value (for example {missing[0]}=...)."
                )
            else:
                digest = hashlib.sha1(f"{prompt}\0{tool.qualified_name}".encode()).hexdigest()
                call_id = f"offline_{digest[:16]}"
                calls = (ToolCall(id=call_id, name=wire_name(tool), arguments=arguments),)
                text = f"Calling `{tool.qualified_name}`."
        else:
            text = (
                "This is the offline provider: no language model is configured and no tool "
                "matched your message, so I cannot answer it. Configure an Anthropic or OpenAI "
                "key for real answers."
            )
        return ChatResponse(
            text=text,
            provider=self.name,
            model=request.model or self.default_model,
            stop_reason="tool_use" if calls else "end_turn",
            tool_calls=calls,
            usage=Usage(_tokens(request), max(1, len(text) // 4)),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def stream(self, request: ChatRequest) -> Iterator[ChatEvent]:
        response = self.complete(request)
        for piece in re.findall(r"\S+\s*|\s+", response.text):
            yield ChatEvent(type="text_delta", text=piece)
        yield ChatEvent(type="done", response=response)

    def close(self) -> None:
        """Nothing to release; here so every provider can be closed alike."""


def _pick(tools: tuple[Tool, ...], prompt: str) -> tuple[Tool, dict[str, Any], list[str]]:
    """The best-ranked tool whose required arguments the prompt supplies, else the best one."""
    first: tuple[Tool, dict[str, Any], list[str]] | None = None
    for tool in tools:
        arguments, missing = fill_arguments(
            tool.input_schema, prompt, server_defaults=option_values(tool.server_args)
        )
        if not missing:
            return tool, arguments, missing
        first = first or (tool, arguments, missing)
    assert first is not None
    return first


def fill_arguments(
    schema: Mapping[str, Any],
    prompt: str,
    *,
    server_defaults: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Arguments found for ``schema`` in ``prompt``, and the required ones still missing.

    Sources, in order: a JSON object in the prompt, ``key=value`` pairs, the schema's
    defaults, ``const`` values and single-value enums, then three simple rules for what is
    still missing: an enum value named in the prompt, an IANA timezone for a city named in
    the prompt (tz database names, e.g. "Tokyo" -> Asia/Tokyo), and a value the server was
    started with (``server_defaults``, from ``--repository .``: ``repo_path``).
    """
    properties: Mapping[str, Any] = schema.get("properties") or {}
    by_lower = {name.lower(): name for name in properties}
    found: dict[str, Any] = {}
    for key, value in [*_json_object(prompt).items(), *_pairs(prompt)]:
        name = key if key in properties else by_lower.get(key.lower())
        if name is None and properties:
            continue
        name = name or key
        if name in found:
            continue
        coerced = _coerce(value, properties.get(name) or {})
        if coerced is not _INVALID:
            found[name] = coerced
    for name, spec in properties.items():
        if name in found or not isinstance(spec, Mapping):
            continue
        if "default" in spec:
            found[name] = spec["default"]
        elif "const" in spec:
            found[name] = spec["const"]
        elif isinstance(spec.get("enum"), list) and len(spec["enum"]) == 1:
            found[name] = spec["enum"][0]
    _fill_from_words(properties, prompt, found, server_defaults or {})
    missing = [name for name in schema.get("required") or () if name not in found]
    return found, missing


def _fill_from_words(
    properties: Mapping[str, Any],
    prompt: str,
    found: dict[str, Any],
    server_defaults: Mapping[str, str],
) -> None:
    zones = iter(timezones_named_in(prompt))
    for name, spec in properties.items():
        if name in found or not isinstance(spec, Mapping):
            continue
        enum = spec.get("enum")
        if isinstance(enum, list) and enum:
            named = [v for v in enum if isinstance(v, str) and _names(prompt, v)]
            if len(named) == 1:
                found[name] = named[0]
            continue
        if spec.get("type") not in (None, "string"):
            continue
        if _is_timezone(name, spec):
            zone = next(zones, None)
            if zone is not None:
                found[name] = zone
            continue
        default = _server_default(name, server_defaults)
        if default is not None:
            found[name] = default


def _names(prompt: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", prompt, re.IGNORECASE) is not None


def _is_timezone(name: str, spec: Mapping[str, Any]) -> bool:
    text = f"{name} {spec.get('description', '')}".lower()
    return "timezone" in text or "time zone" in text or "iana" in text


@functools.cache
def _zones_by_place() -> dict[str, str]:
    """ "tokyo" -> "Asia/Tokyo", "new york" -> "America/New_York", from the tz database.

    Canonical Area/Location names win over deeper or legacy ones for the same place.
    """
    by_place: dict[str, str] = {}
    for zone in sorted(zoneinfo.available_timezones(), key=lambda z: (z.count("/") != 1, z)):
        if "/" not in zone or zone.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/")):
            continue
        place = zone.rsplit("/", 1)[1].replace("_", " ").lower()
        by_place.setdefault(place, zone)
    return by_place


def timezones_named_in(prompt: str) -> list[str]:
    """IANA names for the places (or IANA names) in ``prompt``, in the order they appear."""
    zones = _zones_by_place()
    exact = {z.lower(): z for z in zoneinfo.available_timezones()}
    words = re.findall(r"[A-Za-z][\w/+-]*", prompt)
    named: list[str] = []
    i = 0
    while i < len(words):
        for size in (3, 2, 1):  # longest place name first: "new york", "los angeles"
            phrase = " ".join(words[i : i + size]).lower()
            if "/" in phrase or (size == 1 and words[i].isupper()):  # Asia/Tokyo, UTC, CET
                zone = exact.get(phrase)
            else:
                zone = zones.get(phrase)
            if zone is not None and len(words[i : i + size]) == size:
                named.append(zone)
                i += size
                break
        else:
            i += 1
    return named


def option_values(args: tuple[str, ...]) -> dict[str, str]:
    """``--name value`` and ``--name=value`` options of a server's command line."""
    values: dict[str, str] = {}
    for index, arg in enumerate(args):
        if not arg.startswith("--") or len(arg) < 3:
            continue
        name, eq, value = arg[2:].partition("=")
        if eq:
            values[name] = value
        elif index + 1 < len(args) and not args[index + 1].startswith("-"):
            values[name] = args[index + 1]
    return values


def _server_default(name: str, defaults: Mapping[str, str]) -> str | None:
    """The start-up option that names the same thing: ``repo_path`` ~ ``--repository``."""

    def stem(text: str) -> str:
        text = re.sub(r"[^a-z0-9]", "", text.lower())
        return re.sub(r"(path|dir|directory|name)$", "", text) or text

    wanted = stem(name)
    for option, value in defaults.items():
        have = stem(option)
        if len(min(wanted, have, key=len)) >= 3 and (
            have.startswith(wanted) or wanted.startswith(have)
        ):
            return value
    return None


_INVALID = object()


def _coerce(value: Any, spec: Mapping[str, Any]) -> Any:
    """``value`` as the schema's type, or ``_INVALID``."""
    kind = spec.get("type")
    if not isinstance(value, str):
        return value
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean":
            lowered = value.lower()
            if lowered in ("true", "yes", "1", "on"):
                return True
            if lowered in ("false", "no", "0", "off"):
                return False
            return _INVALID
        if kind == "array":
            return [part.strip() for part in value.split(",") if part.strip()]
        if kind == "object":
            parsed = json.loads(value)
            return parsed if isinstance(parsed, dict) else _INVALID
    except ValueError:
        return _INVALID
    enum = spec.get("enum")
    if isinstance(enum, list) and enum and value not in enum:
        return _INVALID
    return value


def _json_object(prompt: str) -> dict[str, Any]:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", prompt):
        try:
            value, _ = decoder.raw_decode(prompt, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def _pairs(prompt: str) -> list[tuple[str, str]]:
    pairs = []
    for key, raw in _PAIR.findall(prompt):
        if raw[:1] in "\"'":
            value = raw[1:-1]
        else:
            value = raw.rstrip(_TRAILING)
        if value:
            pairs.append((key, value))
    return pairs


def _current_turn(messages: tuple[Message, ...]) -> tuple[str, tuple[Message, ...]]:
    """The last user prompt and the messages after it (this turn's tool calls and results)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            return messages[index].content, messages[index + 1 :]
    return "", messages


def _summarize_results(turn: tuple[Message, ...], results: list[Message]) -> str:
    names = {
        c.id: f"{c.server}.{c.tool}" if c.server else c.name for m in turn for c in m.tool_calls
    }
    lines = []
    for message in results:
        result = message.tool_result
        if result is None:
            continue
        name = names.get(message.tool_call_id or "", "the tool")
        text = base.summarize(result, limit=400)
        if result.is_error:
            lines.append(f"`{name}` failed: {text.removeprefix('error: ')}")
        else:
            lines.append(f"`{name}` returned: {text}")
    return "Offline provider (no language model), tool results:\n" + "\n".join(
        f"- {line}" for line in lines
    )


def _about(tool: Tool) -> str:
    description = " ".join(tool.description.split())
    return f" ({description[:80]})" if description else ""


def _tokens(request: ChatRequest) -> int:
    chars = len(request.system or "") + sum(len(m.content) for m in request.messages)
    return max(1, chars // 4)
