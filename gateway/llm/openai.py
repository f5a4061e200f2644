"""OpenAI Chat Completions provider (official SDK); base_url reaches compatible servers."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion

from gateway.llm import base
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

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# What the SDK and its transport raise; anything else is our bug and must not become a 502.
_SDK_ERRORS = (openai.OpenAIError, httpx2.HTTPError)

# Otherwise OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment are sent as headers;
# the SDK drops headers set to ``omit`` (typed as str, hence Any).
_OMIT_ENV_HEADERS: dict[str, Any] = {
    "OpenAI-Organization": openai.omit,
    "OpenAI-Project": openai.omit,
}

_STOP_REASONS: dict[str | None, StopReason] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


class OpenAIProvider:
    """Chat Completions with tools; the SDK client is built on first use and then shared.

    ``base_url`` (with ``/v1``) points it at Ollama, vLLM, LM Studio or any compatible
    server; those often need no key, so a placeholder is sent when none is configured.
    """

    def __init__(
        self,
        *,
        api_key: str | None,
        default_model: str,
        base_url: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        max_retry_wait: float = base.DEFAULT_MAX_RETRY_WAIT,
        keepalive_connections: int = base.SDK_KEEPALIVE_CONNECTIONS,
        max_tokens_param: str | None = None,
        default_max_tokens: int | None = None,
        name: str = "openai",
        label: str | None = None,
    ) -> None:
        self.name = name
        self.default_model = default_model
        self.label = label or ("OpenAI" if base_url is None else f"OpenAI-compatible ({name})")
        self._api_key = api_key or "unused"
        self._base_url = base_url or DEFAULT_BASE_URL
        # OpenAI's newer models reject max_tokens; many compatible servers only know it.
        self._max_tokens_param = max_tokens_param or (
            "max_completion_tokens" if base_url is None else "max_tokens"
        )
        # The cap sent when a request has none; None leaves it to the upstream.
        self._default_max_tokens = default_max_tokens
        self._timeout = httpx2.Timeout(timeout, connect=connect_timeout)
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._limits = base.connection_limits(keepalive_connections)
        self._client: openai.OpenAI | None = None
        # Copies of the client with another retry count (the /v1 surface asks for none): the
        # SDK's with_options builds a whole client each call, so each count is built once.
        self._retry_variants: dict[int, openai.OpenAI] = {}
        self._lock = threading.Lock()

    def client(self) -> openai.OpenAI:
        """The SDK client, created once, with every setting explicit so no env var leaks in."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = openai.OpenAI(
                        api_key=self._api_key,
                        base_url=self._base_url,
                        timeout=self._timeout,
                        max_retries=self._max_retries,
                        default_headers=_OMIT_ENV_HEADERS,
                        http_client=openai.DefaultHttpxClient(
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
            completion = self._client_for(request).chat.completions.create(**params)
        except _SDK_ERRORS as exc:
            raise self._failure(exc) from exc
        # The SDK hands back the raw text when a 200 is not JSON (a proxy's HTML page).
        if not isinstance(completion, ChatCompletion):
            raise base.protocol_failure(self.label, f"a 200 that is not JSON: {completion!r:.200}")
        try:
            return self._response(completion, params, started)
        except (AttributeError, TypeError, KeyError) as exc:
            raise base.protocol_failure(self.label, f"a malformed completion ({exc})") from exc

    def _response(
        self, completion: ChatCompletion, params: dict[str, Any], started: float
    ) -> ChatResponse:
        if not completion.choices:
            raise base.protocol_failure(self.label, "no choices in the completion")
        choice = completion.choices[0]
        calls = tuple(
            _tool_call(c.id, i, c.function.name, c.function.arguments)
            for i, c in enumerate(choice.message.tool_calls or ())
            if getattr(c, "function", None) is not None
        )
        usage = completion.usage
        return ChatResponse(
            text=choice.message.content or "",
            provider=self.name,
            model=completion.model or params["model"],
            stop_reason=_stop_reason(choice.finish_reason, calls),
            tool_calls=calls,
            usage=Usage(
                (usage.prompt_tokens or 0) if usage else 0,
                (usage.completion_tokens or 0) if usage else 0,
            ),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def stream(self, request: ChatRequest) -> Iterator[ChatEvent]:
        params = self._params(request)
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        started = time.perf_counter()
        try:
            raw = self._client_for(request).chat.completions.with_raw_response.create(**params)
            # Chunks as the JSON they arrived in: the SDK still decodes the events, raises an
            # error event as APIError and closes the response; only its per-chunk pydantic
            # construction (a fifth of a streaming worker's CPU, py-spy) is skipped.
            sdk_stream = raw.parse(to=openai.Stream[object])
        except _SDK_ERRORS as exc:
            raise self._failure(exc) from exc
        state = _StreamState(model=params["model"])
        try:
            for chunk in sdk_stream:
                delta = state.apply(chunk)
                if delta:
                    yield ChatEvent(type="text_delta", text=delta)
        except _SDK_ERRORS as exc:
            raise self._failure(exc) from exc
        except (AttributeError, TypeError, KeyError, ValueError) as exc:  # ValueError: not JSON
            raise base.protocol_failure(self.label, f"a malformed chunk ({exc})") from exc
        finally:
            sdk_stream.close()
        if state.finish_reason is None:
            raise base.protocol_failure(self.label, "stream ended without a finish_reason")
        calls = state.tool_calls()
        yield ChatEvent(
            type="done",
            response=ChatResponse(
                text="".join(state.text),
                provider=self.name,
                model=state.model,
                stop_reason=_stop_reason(state.finish_reason, calls),
                tool_calls=calls,
                usage=Usage(state.input_tokens, state.output_tokens),
                latency_ms=(time.perf_counter() - started) * 1000,
            ),
        )

    def _client_for(self, request: ChatRequest) -> openai.OpenAI:
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
        """SDK arguments; a client's own fields (``options``) go out as it sent them."""
        params: dict[str, Any] = {
            "model": request.model or self.default_model,
            "messages": render_messages(request.messages, request.system),
        }
        options = dict(request.options)
        has_cap = "max_tokens" in options or "max_completion_tokens" in options
        cap = request.max_tokens or (None if has_cap else self._default_max_tokens)
        if cap is not None:
            params[self._max_tokens_param] = cap
        tools = [render_tool(t) for t in request.tools] + [dict(t) for t in request.client_tools]
        if tools:
            params["tools"] = tools
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if options:
            # Unknown to this SDK version or not: the body carries them unchanged.
            params["extra_body"] = options
        return params

    def _failure(self, exc: Exception) -> ProviderError:
        if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
            return base.timeout_failure(self.label, exc)
        if isinstance(exc, openai.APIConnectionError):
            return base.connection_failure(self.label, exc)
        if isinstance(exc, openai.APIStatusError):
            return base.status_failure(self.label, exc.status_code, str(exc), exc.response.headers)
        return base.protocol_failure(self.label, exc)


class _StreamState:
    """Accumulates chat.completion.chunk objects (decoded JSON) into text, tool calls, usage
    and finish reason.

    Tool-call fragments belong to the call open at their ``index``; a fragment with a new
    ``id`` at an index in use starts another call, as some servers (and proxies in front of
    them) send every parallel call at index 0. A chunk of the wrong shape raises
    AttributeError, TypeError or KeyError (a protocol failure for the caller).
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.text: list[str] = []
        self.calls: list[dict[str, str]] = []
        self._open: dict[int, dict[str, str]] = {}
        self.input_tokens = 0
        self.output_tokens = 0
        self.finish_reason: str | None = None

    def apply(self, chunk: Any) -> str:
        """Take one chunk (a dict); return its text delta, if any."""
        self.model = chunk.get("model") or self.model
        usage = chunk.get("usage")
        if usage is not None:
            self.input_tokens = usage.get("prompt_tokens") or 0
            self.output_tokens = usage.get("completion_tokens") or 0
        text = ""
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                text += content
            for fragment in delta.get("tool_calls") or ():
                index, fragment_id = fragment.get("index"), fragment.get("id")
                call = self._open.get(index)
                if call is None or (fragment_id and call["id"] and fragment_id != call["id"]):
                    call = {"id": "", "name": "", "args": ""}
                    self.calls.append(call)
                    self._open[index] = call
                call["id"] = fragment_id or call["id"]
                function = fragment.get("function")
                if function is not None:
                    call["name"] += function.get("name") or ""
                    call["args"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if text:
            self.text.append(text)
        return text

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            _tool_call(c["id"], index, c["name"], c["args"]) for index, c in enumerate(self.calls)
        )


def _stop_reason(finish_reason: str | None, calls: tuple[ToolCall, ...]) -> StopReason:
    # Some compatible servers say "stop" even when they return tool calls.
    if calls:
        return "tool_use"
    return _STOP_REASONS.get(finish_reason, "other")


def _tool_call(call_id: str | None, index: int, name: str, raw: str | None) -> ToolCall:
    arguments, error = base.parse_arguments(raw)
    return ToolCall(
        id=call_id or f"call_{index}",
        name=name,
        arguments=arguments,
        raw_arguments=raw,
        error=error,
    )


def render_tool(tool: Tool) -> dict[str, Any]:
    """Our tool as a Chat Completions function tool."""
    schema = dict(tool.input_schema or {})
    schema.setdefault("type", "object")
    function = {"name": wire_name(tool), "description": tool.description, "parameters": schema}
    return {"type": "function", "function": function}


def render_messages(messages: tuple[Message, ...], system: str | None) -> list[dict[str, Any]]:
    """Neutral history as Chat Completions messages; tool results become ``role: tool`` text."""
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    for message in messages:
        size = len(out)
        if message.role == "system":
            out.append({"role": message.name or "system", "content": message.content})
        elif message.role == "tool":
            result = message.tool_result or ToolResult.error("No result.")
            text = base.result_text(result)
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": message.tool_call_id or "",
                    "content": f"Error: {text}" if result.is_error else text,
                }
            )
        elif message.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": message.content or None}
            if message.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.name,
                            # Unusable arguments are not echoed: some servers reject bad JSON here.
                            "arguments": json.dumps(dict(call.arguments), ensure_ascii=False),
                        },
                    }
                    for call in message.tool_calls
                ]
            elif not message.content:
                item["content"] = ""
            out.append(item)
        else:
            # Content parts go out as the client sent them (text, image_url, ...), in order.
            content = [dict(p) for p in message.parts] if message.parts else message.content
            out.append({"role": "user", "content": content})
        if message.participant and len(out) > size:
            out[-1]["name"] = message.participant
    return out
