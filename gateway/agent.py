"""The agent loop: ask the model, run the tools it asks for, feed the results back, repeat."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Protocol

from gateway.llm.base import summarize
from gateway.llm.errors import UpstreamError, UpstreamTimeout
from gateway.llm.types import (
    ChatEvent,
    ChatRequest,
    ChatResponse,
    Message,
    ModelPrice,
    Provider,
    StopReason,
    ToolCall,
    Usage,
    wire_name,
)
from gateway.mcp.errors import ToolUnavailable
from gateway.tools import Tool, ToolResult

log = logging.getLogger(__name__)

ToolRunner = Callable[[ToolCall], ToolResult]
CancelCheck = Callable[[], bool]


class GatewayTool(Protocol):
    """A tool the gateway answers itself (e.g. ``find_tools``), offered beside the MCP tools.

    ``run`` returns the result for the model and the tools to offer from the next round on.
    """

    tool: Tool

    def run(self, call: ToolCall) -> tuple[ToolResult, tuple[Tool, ...]]: ...


DEFAULT_MAX_TOOL_ROUNDS = 8


def complete_turn(
    provider: Provider,
    request: ChatRequest,
    run_tool: ToolRunner,
    *,
    fallback: Provider | None = None,
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
    max_parallel_tools: int = 4,
    prices: Mapping[str, ModelPrice] | None = None,
    cancelled: CancelCheck | None = None,
    gateway_tools: Sequence[GatewayTool] = (),
) -> ChatResponse:
    """Run a whole turn without streaming (one non-streaming call per round); return the answer."""
    events = run_turn(
        provider,
        request,
        run_tool,
        stream=False,
        fallback=fallback,
        max_tool_rounds=max_tool_rounds,
        max_parallel_tools=max_parallel_tools,
        prices=prices,
        cancelled=cancelled,
        gateway_tools=gateway_tools,
    )
    response = None
    for event in events:
        if event.type == "done":
            response = event.response
    assert response is not None, "run_turn always ends with a done event"
    return response


def run_turn(
    provider: Provider,
    request: ChatRequest,
    run_tool: ToolRunner,
    *,
    stream: bool = True,
    fallback: Provider | None = None,
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
    max_parallel_tools: int = 4,
    prices: Mapping[str, ModelPrice] | None = None,
    cancelled: CancelCheck | None = None,
    gateway_tools: Sequence[GatewayTool] = (),
) -> Iterator[ChatEvent]:
    """Run one chat turn as a stream of events that always ends with one ``done`` event.

    The model gets at most ``max_tool_rounds`` rounds of tool calls; several calls in one
    round run concurrently. Tool failures and unusable arguments go back to the model as
    error results. ``cancelled`` is polled between chunks and rounds: once it returns true
    the turn stops and ends with ``stop_reason="cancelled"``. Upstream failures raise
    ``UpstreamError``/``UpstreamTimeout`` after one try of ``fallback``, if given.
    ``gateway_tools`` are offered too and answered in-process; the tools they return are
    offered from the next round on.
    """
    own = _OwnTools(run_tool, gateway_tools)
    if gateway_tools:
        request = replace(request, tools=request.tools + tuple(g.tool for g in gateway_tools))
    turn = _Turn(provider, request, fallback, prices or {}, time.perf_counter())
    is_cancelled = cancelled or (lambda: False)
    tools = {wire_name(t): t for t in request.tools}
    client_names = request.client_tool_names()
    for round_no in range(1, max_tool_rounds + 2):
        if is_cancelled():
            yield turn.done("", "cancelled")
            return
        response = yield from turn.call_model(round_no, stream, is_cancelled)
        if response is None:
            yield turn.done("".join(turn.partial), "cancelled", partial=True)
            return
        yield ChatEvent(type="usage", round=round_no, usage=response.usage)
        if not response.tool_calls:
            turn.add(Message.assistant(response.text))
            yield turn.done(response.text, response.stop_reason)
            return
        calls = tuple(
            call if call.name in client_names else _resolve(call, tools)
            for call in response.tool_calls
        )
        turn.add(Message.assistant(response.text, calls))
        # Calls to the client's own tools end the turn once the gateway's calls have run.
        client_calls = tuple(call for call in calls if call.name in client_names)
        calls = tuple(call for call in calls if call.name not in client_names)
        turn.tool_calls.extend(calls)
        if round_no > max_tool_rounds:
            # Keep the stored history valid: every tool call gets a result.
            for call in (*calls, *client_calls):
                turn.add(Message.tool(call.id, ToolResult.error("Not run: tool round limit.")))
            note = f"(Stopped after {max_tool_rounds} rounds of tool calls without a final answer.)"
            text = f"{response.text}\n\n{note}" if response.text else note
            yield turn.done(text, "max_tool_rounds")
            return
        for call in calls:
            yield ChatEvent(type="tool_call_started", round=round_no, tool_call=call)
        results: dict[str, ToolResult] = {}
        for call, result, duration in _run_tools(calls, own.run, max_parallel_tools):
            results[call.id] = result
            yield ChatEvent(
                type="tool_call_finished",
                round=round_no,
                tool_call=call,
                result=result,
                summary=summarize(result),
                duration_ms=duration,
            )
        for call in calls:
            turn.add(Message.tool(call.id, results[call.id]))
        if client_calls:
            yield turn.done(response.text, "client_tool_calls", client_calls=client_calls)
            return
        own.offer_found(turn, tools)
    raise AssertionError("unreachable: the last round always returns")


class _OwnTools:
    """Routes calls of gateway tools in-process and collects the tools they found."""

    def __init__(self, run_tool: ToolRunner, gateway_tools: Sequence[GatewayTool]) -> None:
        self._run_tool = run_tool
        self._own = {wire_name(g.tool): g for g in gateway_tools}
        self._found: list[Tool] = []

    def run(self, call: ToolCall) -> ToolResult:
        handler = self._own.get(call.name)
        if handler is None:
            return self._run_tool(call)
        result, found = handler.run(call)
        self._found.extend(found)  # list.extend is atomic: calls of a round may run in threads
        return result

    def offer_found(self, turn: _Turn, offered: dict[str, Tool]) -> None:
        """Offer the tools found since the last round that are not offered yet, from now on."""
        new = {wire_name(t): t for t in self._found if wire_name(t) not in offered}
        self._found.clear()
        if new:
            offered.update(new)
            turn.request = replace(turn.request, tools=turn.request.tools + tuple(new.values()))


@dataclass
class _Turn:
    """Running state of one turn: history, accounting and which provider is answering."""

    provider: Provider
    request: ChatRequest
    fallback: Provider | None
    prices: Mapping[str, ModelPrice]
    started: float
    added: list[Message] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = Usage()
    cost: float | None = None
    rounds: int = 0
    model: str = ""
    fallback_from: str | None = None
    partial: list[str] = field(default_factory=list)

    def add(self, message: Message) -> None:
        self.added.append(message)

    def call_model(
        self, round_no: int, stream: bool, is_cancelled: CancelCheck
    ) -> Generator[ChatEvent, None, ChatResponse | None]:
        """Ask the current provider (once falling back to the fallback); None when cancelled."""
        request = replace(self.request, messages=self.request.messages + tuple(self.added))
        if self.added and "tool_choice" in request.options:
            # The client's tool_choice shapes its own request, the first model call; the
            # rounds the gateway adds after running tools choose freely, or they never end.
            options = {k: v for k, v in request.options.items() if k != "tool_choice"}
            request = replace(request, options=options)
        if self.fallback_from is not None:
            request = replace(request, model=None)
        self.partial = []
        try:
            response = yield from self._ask(request, round_no, stream, is_cancelled)
        except (UpstreamError, UpstreamTimeout) as exc:
            if self.fallback is None or self.fallback_from is not None or self.partial:
                raise
            log.warning(
                "provider %s failed (%s); falling back to %s",
                self.provider.name,
                exc,
                self.fallback.name,
            )
            self.fallback_from, self.provider = self.provider.name, self.fallback
            response = yield from self._ask(
                replace(request, model=None), round_no, stream, is_cancelled
            )
        if response is not None:
            self.rounds += 1
            self.usage += response.usage
            self.model = response.model
            price = self.prices.get(response.model)
            if price is not None:
                self.cost = (self.cost or 0.0) + price.cost(response.usage)
        return response

    def _ask(
        self, request: ChatRequest, round_no: int, stream: bool, is_cancelled: CancelCheck
    ) -> Generator[ChatEvent, None, ChatResponse | None]:
        if not stream:
            response = self.provider.complete(request)
            if response.text:
                yield ChatEvent(type="text_delta", round=round_no, text=response.text)
            return response
        events = self.provider.stream(request)
        try:
            for event in events:
                if event.type == "done":
                    return event.response
                if is_cancelled():
                    return None
                if event.type == "text_delta":
                    self.partial.append(event.text)
                yield replace(event, round=round_no)
        finally:
            # Closing the provider's generator closes the upstream HTTP response.
            close = getattr(events, "close", None)
            if close is not None:
                close()
        raise UpstreamError(f"{self.provider.name} ended its stream without an answer.")

    def done(
        self,
        text: str,
        stop_reason: StopReason,
        *,
        partial: bool = False,
        client_calls: tuple[ToolCall, ...] = (),
    ) -> ChatEvent:
        if partial and text:
            self.add(Message.assistant(text))
        response = ChatResponse(
            text=text,
            provider=self.provider.name,
            model=self.model or self.request.model or self.provider.default_model,
            stop_reason=stop_reason,
            tool_calls=tuple(self.tool_calls),
            usage=self.usage,
            latency_ms=(time.perf_counter() - self.started) * 1000,
            rounds=self.rounds,
            cost_usd=self.cost,
            fallback_from=self.fallback_from,
            messages=tuple(self.added),
            client_calls=client_calls,
        )
        return ChatEvent(type="done", round=max(self.rounds, 1), response=response)


def _resolve(call: ToolCall, tools: Mapping[str, Tool]) -> ToolCall:
    """Map the wire name back to server and tool, and check the arguments against the schema."""
    tool = tools.get(call.name)
    if tool is None:
        return replace(call, error=call.error or f"unknown tool {call.name!r}")
    call = replace(call, server=tool.server, tool=tool.name)
    if call.error is not None:
        return call
    required = (tool.input_schema or {}).get("required") or ()
    missing = [name for name in required if name not in call.arguments]
    if missing:
        return replace(call, error=f"missing required argument(s): {', '.join(missing)}")
    return call


def _run_tools(
    calls: tuple[ToolCall, ...], run_tool: ToolRunner, max_parallel: int
) -> Iterator[tuple[ToolCall, ToolResult, float]]:
    """Run the calls, concurrently when there are several; yield each as it finishes."""
    runnable = []
    for call in calls:
        if call.error is None:
            runnable.append(call)
            continue
        message = (
            f"Invalid call to {call.name}: {call.error}. "
            "Call the tool again with a JSON object that matches its input schema."
        )
        yield call, ToolResult.error(message), 0.0
    if len(runnable) == 1:
        yield _timed(run_tool, runnable[0])
        return
    if not runnable:
        return
    with ThreadPoolExecutor(
        max_workers=min(len(runnable), max_parallel), thread_name_prefix="tool-call"
    ) as pool:
        # Each call gets a copy of the caller's context (Flask's app context lives there).
        futures = [
            pool.submit(contextvars.copy_context().run, _timed, run_tool, call) for call in runnable
        ]
        for future in as_completed(futures):
            yield future.result()


def _timed(run_tool: ToolRunner, call: ToolCall) -> tuple[ToolCall, ToolResult, float]:
    started = time.perf_counter()
    try:
        result = run_tool(call)
    except ToolUnavailable as exc:
        result = ToolResult.error(f"Tool {call.server}.{call.tool} is unavailable: {exc}")
    except Exception:
        # A failing tool is the model's problem to work around, not an HTTP error.
        log.exception("tool %s.%s raised", call.server, call.tool)
        result = ToolResult.error(f"Tool {call.server}.{call.tool} failed unexpectedly.")
    return call, result, (time.perf_counter() - started) * 1000
