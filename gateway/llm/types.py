"""Neutral chat types and the Provider protocol: what the agent loop and the chat service see."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.tools import Tool, ToolResult

Role = Literal["user", "assistant", "tool", "system"]

# Neutral stop reasons. Providers map theirs onto these; the agent adds the last four.
StopReason = Literal[
    "end_turn",
    "tool_use",
    "max_tokens",
    "refusal",
    "other",
    "max_tool_rounds",
    "cancelled",
    "client_tool_calls",
]

EventType = Literal["text_delta", "tool_call_started", "tool_call_finished", "usage", "done"]

_WIRE_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_WIRE_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def wire_name(tool: Tool) -> str:
    """The tool's name as both providers accept it (``^[a-zA-Z0-9_-]{1,64}$``), stable across calls.

    ``server__tool`` when it fits; otherwise the sanitised name cut to 55 characters plus a
    hash of the full qualified name, so long or odd names stay unique and deterministic.
    """
    qualified = tool.qualified_name
    if _WIRE_NAME.match(qualified):
        return qualified
    digest = hashlib.sha1(qualified.encode()).hexdigest()[:8]
    return f"{_WIRE_UNSAFE.sub('_', qualified)[:55]}_{digest}"


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asked for.

    ``name`` is the wire name the model used. The agent fills ``server`` and ``tool`` once it
    has mapped the name back, and ``error`` when the arguments cannot be used as they are.
    """

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    raw_arguments: str | None = None
    error: str | None = None
    server: str | None = None
    tool: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for SSE events and storage."""
        return {
            "id": self.id,
            "name": self.name,
            "server": self.server,
            "tool": self.tool,
            "arguments": dict(self.arguments),
        }

    def as_function_call(self) -> dict[str, Any]:
        """Chat Completions ``tool_calls`` item; arguments as the model wrote them."""
        arguments = self.raw_arguments
        if arguments is None or self.error is None:
            arguments = json.dumps(dict(self.arguments), ensure_ascii=False)
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": arguments},
        }


@dataclass(frozen=True)
class Message:
    """One message of the conversation in neutral form.

    ``user``: ``content``. ``assistant``: ``content`` and any ``tool_calls``. ``tool``: the
    ``tool_result`` of the call ``tool_call_id``; providers group consecutive tool messages.
    ``system``: a system or developer message a client placed in its history (``name`` says
    which). ``parts`` keeps a client's content parts in order, in Chat Completions form
    (``{"type": "text", ...}``, ``{"type": "image_url", ...}``); ``content`` is then their text.
    ``participant`` is a client's Chat Completions ``name`` for the message's author.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_result: ToolResult | None = None
    parts: tuple[Mapping[str, Any], ...] = ()
    name: str | None = None
    participant: str | None = None

    @classmethod
    def user(cls, text: str) -> Message:
        return cls(role="user", content=text)

    @classmethod
    def assistant(cls, text: str, tool_calls: tuple[ToolCall, ...] = ()) -> Message:
        return cls(role="assistant", content=text, tool_calls=tool_calls)

    @classmethod
    def tool(cls, call_id: str, result: ToolResult) -> Message:
        return cls(role="tool", tool_call_id=call_id, tool_result=result)


@dataclass(frozen=True)
class ChatRequest:
    """One request to a provider: history, system prompt and the routed tools in rank order.

    ``max_tokens`` is the output cap; None means the provider's configured default.
    ``options`` holds a client's Chat Completions fields beyond messages and tools, already
    checked against the provider (``gateway.compat.fields``): OpenAI-compatible providers send
    them as they are, Anthropic maps them. ``client_tools`` are the client's own function
    tools in Chat Completions form; the agent returns calls to them instead of running them.
    ``max_retries`` overrides the provider's retry count for this request.
    """

    messages: tuple[Message, ...]
    model: str | None = None
    system: str | None = None
    tools: tuple[Tool, ...] = ()
    max_tokens: int | None = None
    temperature: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    client_tools: tuple[Mapping[str, Any], ...] = ()
    # None: the provider's setting. The /v1 surface sets 0, as its clients retry themselves.
    max_retries: int | None = None

    def client_tool_names(self) -> frozenset[str]:
        return frozenset(t["function"]["name"] for t in self.client_tools)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input_per_mtok + usage.output_tokens * self.output_per_mtok
        ) / 1_000_000


@dataclass(frozen=True)
class ChatResponse:
    """A provider's answer to one request, or the agent's answer to a whole turn.

    For a turn, ``messages`` holds what the turn added to the history (assistant messages
    with their tool calls, and the tool results), ready to be stored; ``rounds`` counts
    model calls and ``usage``/``cost_usd`` are summed over them.
    """

    text: str
    provider: str
    model: str
    stop_reason: StopReason
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()
    latency_ms: float = 0.0
    rounds: int = 1
    cost_usd: float | None = None
    fallback_from: str | None = None
    messages: tuple[Message, ...] = ()
    # Calls to the client's own tools that end the turn; the client runs them.
    client_calls: tuple[ToolCall, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the message list) for the API and SSE ``done`` event."""
        return {
            "text": self.text,
            "provider": self.provider,
            "model": self.model,
            "stop_reason": self.stop_reason,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            },
            "latency_ms": round(self.latency_ms, 1),
            "rounds": self.rounds,
            "cost_usd": self.cost_usd,
            "fallback_from": self.fallback_from,
        } | (
            {"client_tool_calls": [call.as_function_call() for call in self.client_calls]}
            if self.client_calls
            else {}
        )


@dataclass(frozen=True)
class ChatEvent:
    """One event of a streamed turn; ``type`` says which fields are set.

    ``text_delta``: ``text``. ``tool_call_started``: ``tool_call``. ``tool_call_finished``:
    ``tool_call``, ``result``, ``summary``, ``duration_ms``. ``usage``: ``usage`` (per round).
    ``done``: ``response``. Every event carries its model-call ``round`` (1-based).
    """

    type: EventType
    round: int = 1
    text: str = ""
    tool_call: ToolCall | None = None
    result: ToolResult | None = None
    summary: str = ""
    duration_ms: float | None = None
    usage: Usage | None = None
    response: ChatResponse | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for an SSE ``data:`` line."""
        data: dict[str, Any] = {"type": self.type, "round": self.round}
        if self.type == "text_delta":
            data["text"] = self.text
        if self.tool_call is not None:
            data["tool_call"] = self.tool_call.as_dict()
        if self.type == "tool_call_finished":
            data["is_error"] = bool(self.result and self.result.is_error)
            data["summary"] = self.summary
            data["duration_ms"] = round(self.duration_ms or 0.0, 1)
        if self.usage is not None:
            data["usage"] = {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            }
        if self.response is not None:
            data["response"] = self.response.as_dict()
        return data


class Provider(Protocol):
    """An LLM backend: one request in, one answer out, whole or as a stream of events.

    ``stream`` yields ``text_delta`` events as the upstream sends them and ends with one
    ``done`` event whose response carries the tool calls, usage and stop reason. Both raise
    only ``UpstreamError`` or ``UpstreamTimeout``.
    """

    name: str
    default_model: str

    def complete(self, request: ChatRequest) -> ChatResponse: ...

    def stream(self, request: ChatRequest) -> Iterator[ChatEvent]: ...
