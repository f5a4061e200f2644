"""Anthropic Messages API provider, through the official SDK."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import anthropic
import httpx2

from gateway.llm import base
from gateway.llm.anthropic_options import ANTHROPIC_EFFORTS, ANTHROPIC_SERVICE_TIERS
from gateway.llm.errors import ProviderError
from gateway.llm.types import (
    ChatEvent,
    ChatRequest,
    ChatResponse,
    Message,
    StopReason,
    ToolCall,
    Usage,
    wire_name,
)
from gateway.tools import Tool, ToolResult

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.anthropic.com"

# What the SDK and its transport raise; anything else is our bug and must not become a 502.
_SDK_ERRORS = (anthropic.AnthropicError, httpx2.HTTPError)

_STOP_REASONS: dict[str | None, StopReason] = {
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "refusal": "refusal",
}


class AnthropicProvider:
    """Messages API with tools; the SDK client is built on first use and then shared."""

    label = "Anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        default_model: str,
        base_url: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        max_retry_wait: float = base.DEFAULT_MAX_RETRY_WAIT,
        keepalive_connections: int = base.SDK_KEEPALIVE_CONNECTIONS,
        default_max_tokens: int = 4096,
        custom_headers: str = "",
        name: str = "anthropic",
    ) -> None:
        self.name = name
        # ANTHROPIC_CUSTOM_HEADERS as the settings read it: the SDK reads it too, we cancel it.
        self._custom_headers = custom_headers
        # The Messages API requires a cap: this one when the request has none.
        self._default_max_tokens = default_max_tokens
        self.default_model = default_model
        self._api_key = api_key
        self._base_url = base_url or DEFAULT_BASE_URL
        self._timeout = httpx2.Timeout(timeout, connect=connect_timeout)
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._limits = base.connection_limits(keepalive_connections)
        self._client: anthropic.Anthropic | None = None
        # with_options builds a whole client each call: each other retry count is built once.
        self._retry_variants: dict[int, anthropic.Anthropic] = {}
        self._lock = threading.Lock()

    def client(self) -> anthropic.Anthropic:
        """The SDK client, created once, with every setting explicit so no env var leaks in."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = anthropic.Anthropic(
                        api_key=self._api_key,
                        base_url=self._base_url,
                        timeout=self._timeout,
                        max_retries=self._max_retries,
                        # An explicit option stops ANTHROPIC_OPEN_TELEMETRY_* from turning on
                        # prompt capture in traces.
                        open_telemetry={},
                        default_headers=_omit_env_headers(self._custom_headers),
                        http_client=anthropic.DefaultHttpxClient(
                            limits=self._limits,
                            event_hooks={"response": [base.retry_after_hook(self._max_retry_wait)]},
                        ),
                    )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def complete(self, request: ChatRequest) -> ChatResponse:
        params = self._params(request)
        started = time.perf_counter()
        try:
            message = self._client_for(request).messages.create(**params)
        except _SDK_ERRORS as exc:
            raise self._failure(exc) from exc
        if not isinstance(message, anthropic.types.Message):
            raise base.protocol_failure(self.label, f"a 200 that is not JSON: {message!r:.200}")
        try:
            return self._response(message, params, started)
        except (AttributeError, TypeError, KeyError) as exc:
            raise base.protocol_failure(self.label, f"a malformed message ({exc})") from exc

    def _response(
        self, message: anthropic.types.Message, params: dict[str, Any], started: float
    ) -> ChatResponse:
        text = "".join(b.text for b in message.content if b.type == "text")
        calls = tuple(
            _tool_call(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"
        )
        return ChatResponse(
            text=text,
            provider=self.name,
            model=message.model or params["model"],
            stop_reason=_STOP_REASONS.get(message.stop_reason, "other"),
            tool_calls=calls,
            usage=Usage(message.usage.input_tokens or 0, message.usage.output_tokens or 0),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def stream(self, request: ChatRequest) -> Iterator[ChatEvent]:
        params = self._params(request)
        started = time.perf_counter()
        try:
            raw = self._client_for(request).messages.with_raw_response.create(**params, stream=True)
            # Events as the JSON they arrived in (see the OpenAI provider): the SDK decodes
            # the stream and raises its error events; no pydantic model per event.
            sdk_stream = raw.parse(to=anthropic.Stream[object])
        except _SDK_ERRORS as exc:
            raise self._failure(exc) from exc
        state = _StreamState(model=params["model"])
        try:
            for event in sdk_stream:
                delta = state.apply(event)
                if delta:
                    yield ChatEvent(type="text_delta", text=delta)
        except _SDK_ERRORS as exc:
            raise self._failure(exc) from exc
        except (AttributeError, TypeError, KeyError, ValueError) as exc:  # ValueError: not JSON
            raise base.protocol_failure(self.label, f"a malformed event ({exc})") from exc
        finally:
            sdk_stream.close()
        if not state.finished:
            raise base.protocol_failure(self.label, "stream ended before message_stop")
        yield ChatEvent(
            type="done",
            response=ChatResponse(
                text="".join(state.text),
                provider=self.name,
                model=state.model,
                stop_reason=_STOP_REASONS.get(state.stop_reason, "other"),
                tool_calls=state.tool_calls(),
                usage=Usage(state.input_tokens, state.output_tokens),
                latency_ms=(time.perf_counter() - started) * 1000,
            ),
        )

    def _client_for(self, request: ChatRequest) -> anthropic.Anthropic:
        retries = request.max_retries
        if retries is None or retries == self._max_retries:
            return self.client()
        variant = self._retry_variants.get(retries)
        if variant is None:
            variant = self._retry_variants.setdefault(
                retries, self.client().with_options(max_retries=retries)
            )
        return variant

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model or self.default_model,
            "max_tokens": request.max_tokens or self._default_max_tokens,
            "messages": render_messages(request.messages),
        }
        # Anthropic has one system prompt: system messages from the history join it, in order.
        system = [request.system or ""] + [
            m.content for m in request.messages if m.role == "system"
        ]
        if any(system):
            params["system"] = "\n\n".join(part for part in system if part)
        tools = [render_tool(t) for t in request.tools]
        tools += [render_client_tool(t) for t in request.client_tools]
        if tools:
            params["tools"] = tools
        if request.temperature is not None:
            params["temperature"] = request.temperature
        params.update(map_options(request.options))
        return params

    def _failure(self, exc: Exception) -> ProviderError:
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
            return base.timeout_failure(self.label, exc)
        if isinstance(exc, anthropic.APIConnectionError):
            return base.connection_failure(self.label, exc)
        if isinstance(exc, anthropic.APIStatusError):
            return base.status_failure(self.label, exc.status_code, str(exc), exc.response.headers)
        return base.protocol_failure(self.label, exc)


class _StreamState:
    """Accumulates raw Messages stream events (decoded JSON) into text, tool calls, usage and
    stop reason; an event of the wrong shape raises AttributeError, TypeError or KeyError."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.text: list[str] = []
        self.blocks: dict[int, dict[str, Any]] = {}
        self.input_tokens = 0
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.finished = False

    def apply(self, event: Any) -> str:
        """Take one event (a dict); return its text delta, if any."""
        kind = event.get("type")
        if kind == "message_start":
            message = event["message"]
            usage = message.get("usage") or {}
            self.model = message.get("model") or self.model
            self.input_tokens = usage.get("input_tokens") or 0
            self.output_tokens = usage.get("output_tokens") or 0
        elif kind == "content_block_start":
            block = event["content_block"]
            self.blocks[event["index"]] = {
                "type": block.get("type"),
                "id": block.get("id") or "",
                "name": block.get("name") or "",
                "json": "",
            }
        elif kind == "content_block_delta":
            delta, index = event["delta"], event.get("index")
            if delta.get("type") == "text_delta":
                text = str(delta.get("text") or "")
                self.text.append(text)
                return text
            if delta.get("type") == "input_json_delta" and index in self.blocks:
                self.blocks[index]["json"] += str(delta.get("partial_json") or "")
        elif kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason")
            usage = event.get("usage") or {}
            self.output_tokens = usage.get("output_tokens") or self.output_tokens
            if usage.get("input_tokens"):
                self.input_tokens = usage["input_tokens"]
        elif kind == "message_stop":
            self.finished = True
        return ""

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            _tool_call(b["id"], b["name"], b["json"])
            for _, b in sorted(self.blocks.items())
            if b["type"] == "tool_use"
        )


def _tool_call(call_id: str, name: str, raw: Any) -> ToolCall:
    arguments, error = base.parse_arguments(raw)
    return ToolCall(
        id=call_id,
        name=name,
        arguments=arguments,
        raw_arguments=raw if isinstance(raw, str) else None,
        error=error,
    )


def render_tool(tool: Tool) -> dict[str, Any]:
    """Our tool as an Anthropic tool definition."""
    schema = dict(tool.input_schema or {})
    schema.setdefault("type", "object")
    return {"name": wire_name(tool), "description": tool.description, "input_schema": schema}


def render_client_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A client's Chat Completions function tool as an Anthropic tool definition."""
    function = tool["function"]
    schema = dict(function.get("parameters") or {})
    schema.setdefault("type", "object")
    rendered = {"name": function["name"], "input_schema": schema}
    if function.get("description"):
        rendered["description"] = function["description"]
    return rendered


def map_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A client's Chat Completions fields as Messages API parameters.

    Only fields ``gateway.compat.fields`` let through for Anthropic arrive here; the mapping
    is the one documented in docs/openai-compatibility.md.
    """
    params: dict[str, Any] = {}
    cap = options.get("max_completion_tokens") or options.get("max_tokens")
    if cap:
        params["max_tokens"] = cap
    stop = options.get("stop")
    if stop:
        params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if options.get("user"):
        params["metadata"] = {"user_id": options["user"]}
    if options.get("service_tier"):
        params["service_tier"] = ANTHROPIC_SERVICE_TIERS[options["service_tier"]]
    output: dict[str, Any] = {}
    effort = options.get("reasoning_effort")
    if effort and effort != "none":
        output["effort"] = ANTHROPIC_EFFORTS[effort]
    response_format = options.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        output["format"] = {"type": "json_schema", "schema": schema}
    if output:
        params["output_config"] = output
    choice = _tool_choice(options.get("tool_choice"))
    if options.get("parallel_tool_calls") is False:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        params["tool_choice"] = choice
    return params


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    """OpenAI's tool_choice as Anthropic's: auto, none, required → any, a function → tool."""
    if choice is None:
        return None
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name", "") if isinstance(function, Mapping) else ""
        return {"type": "tool", "name": str(name)}
    return {"type": {"required": "any"}.get(choice, choice)}


def render_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Neutral history as Messages API turns; consecutive tool results share one user turn."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue  # joined into the system prompt by _params
        if message.role == "tool":
            block = _tool_result_block(message)
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif message.role == "assistant":
            content: list[dict[str, Any]] = []
            if message.content:
                content.append({"type": "text", "text": message.content})
            for call in message.tool_calls:
                content.append(
                    {
                        "type": "tool_use",
                        "id": _safe_id(call.id),
                        "name": call.name,
                        "input": dict(call.arguments),
                    }
                )
            out.append({"role": "assistant", "content": content or "(no answer)"})
        elif message.parts:
            out.append({"role": "user", "content": [_content_block(p) for p in message.parts]})
        else:
            out.append({"role": "user", "content": message.content})
    return out


def _content_block(part: Mapping[str, Any]) -> dict[str, Any]:
    """A Chat Completions content part as a Messages API block (text, or an image).

    Only ``text`` and ``image_url`` parts reach here (gateway.compat.messages refuses others
    for Anthropic); a ``data:`` URL becomes a base64 source (RFC 2397), any other an URL source.
    """
    if part.get("type") != "image_url":
        return {"type": "text", "text": str(part.get("text", ""))}
    url = str((part.get("image_url") or {}).get("url", ""))
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type = header.split(";")[0] or "image/png"
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _tool_result_block(message: Message) -> dict[str, Any]:
    result = message.tool_result or ToolResult.error("No result.")
    return {
        "type": "tool_result",
        "tool_use_id": _safe_id(message.tool_call_id or ""),
        "content": render_result_content(result),
        "is_error": result.is_error,
    }


def render_result_content(result: ToolResult) -> list[dict[str, Any]]:
    """MCP content blocks as Anthropic tool_result content: text and image blocks."""
    blocks: list[dict[str, Any]] = []
    for block in result.content:
        if block.get("type") == "image" and block.get("data"):
            blocks.append(
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": block.get("mimeType", "image/png"),
                        "data": block["data"],
                    },
                }
            )
        else:
            blocks.append({"type": "text", "text": base.block_text(block) or "(empty)"})
    has_text = any(b.get("type") == "text" for b in result.content)
    if result.structured_content is not None and not has_text:
        structured = ToolResult(structured_content=result.structured_content)
        blocks.append({"type": "text", "text": base.result_text(structured)})
    if not blocks:
        blocks.append({"type": "text", "text": "(no output)"})
    if result.truncated:
        blocks.append({"type": "text", "text": "[result truncated]"})
    return blocks


def _safe_id(call_id: str) -> str:
    """Tool-use ids must match ``^[a-zA-Z0-9_-]+$``; ids from other providers may not."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in call_id)
    return cleaned or "call"


def _omit_env_headers(raw: str) -> dict[str, Any]:
    """Cancel headers the SDK would add from ANTHROPIC_CUSTOM_HEADERS (``raw``, as the settings
    read it): config comes from us."""
    names = [line.split(":", 1)[0].strip() for line in raw.splitlines() if ":" in line]
    return {name: anthropic.omit for name in names if name}
