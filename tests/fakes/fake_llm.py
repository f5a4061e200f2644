"""A fake Anthropic + OpenAI upstream on the stdlib HTTP server, speaking the real wire formats.

In-process: ``with FakeLLM() as fake: fake.script(reply("hi"))`` and point the SDKs at
``fake.anthropic_url`` / ``fake.openai_url``. Standalone: ``python -m tests.fakes.fake_llm
--port 8099`` (scripts can then be queued with ``POST /_script``; requests read at
``GET /_requests``). With an empty script queue it follows a default rule: when tools are
offered and the last message is not a tool result, call the first tool; otherwise answer,
quoting the tool result.
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    """One scripted upstream response.

    ``tool_calls`` holds ``(name, arguments)`` pairs: a None name means the first offered
    tool; arguments given as a string are sent verbatim (to script malformed JSON).
    ``cut_after`` drops a streamed response after that many events. ``raw_body`` answers
    200 with that text as ``text/html`` (a proxy's error page). ``same_index`` streams every
    OpenAI tool call at index 0, as some servers behind proxies do. ``raw_events`` streams
    those SSE events verbatim (malformed chunks) to a streaming request.
    """

    text: str = ""
    tool_calls: list[tuple[str | None, Any]] = field(default_factory=list)
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = "fake upstream failure"
    delay: float = 0.0
    cut_after: int | None = None
    stop_reason: str | None = None
    input_tokens: int = 12
    output_tokens: int = 7
    raw_body: str | None = None
    same_index: bool = False
    raw_events: list[str] | None = None


def reply(text: str, **options: Any) -> Script:
    return Script(text=text, **options)


def call_tool(name: str | None = None, arguments: Any = None, **options: Any) -> Script:
    return Script(tool_calls=[(name, {} if arguments is None else arguments)], **options)


def call_tools(*calls: tuple[str | None, Any], **options: Any) -> Script:
    return Script(tool_calls=list(calls), **options)


def fail(status: int, *, retry_after: float | None = None, **options: Any) -> Script:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return Script(status=status, headers=headers, **options)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float


class FakeLLM:
    """The fake server; ``latency`` delays every response, ``chunk_delay`` paces stream events."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        chunk_words: int = 2,
    ) -> None:
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.chunk_words = chunk_words
        self.requests: list[Recorded] = []
        self.connections = 0  # TCP connections accepted so far
        # Called with each model request's path in the handler's thread, before it answers.
        self.on_request: Callable[[str], None] | None = None
        self._scripts: deque[Script] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.fake = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def anthropic_url(self) -> str:
        return self.url

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FakeLLM:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *scripts: Script) -> None:
        with self._lock:
            self._scripts.extend(scripts)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
        self.latency = self.chunk_delay = 0.0
        self.on_request = None

    def next_script(self, api: str, body: dict[str, Any]) -> Script:
        with self._lock:
            if self._scripts:
                return self._scripts.popleft()
        return _default_script(api, body)

    def record(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(Recorded(path, headers, body, time.monotonic()))

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Hundreds of clients may connect at once (connection-pool tests); socketserver's 5 would
    # drop SYNs and add seconds of retransmits.
    request_queue_size = 1024
    fake: FakeLLM

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hang up mid-response on purpose in tests (timeouts, cancellation)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle plus the client's
        # delayed ACK adds ~40 ms to every keep-alive response.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.fake._lock:
            self.server.fake.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on recorded requests instead."""

    def do_GET(self) -> None:
        if self.path != "/_requests":
            self._json(404, {"error": "not found"})
            return
        self._json(200, [asdict(r) for r in self.server.fake.requests])

    def do_POST(self) -> None:
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _post(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": "invalid JSON"})
            return
        if self.path == "/_script":
            fake.script(*(Script(**item) for item in body))
            self._json(200, {"queued": len(body)})
            return
        if self.path.endswith("/v1/messages"):
            api = "anthropic"
        elif self.path.endswith("/v1/chat/completions"):
            api = "openai"
        else:
            self._json(404, {"error": "not found"})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake.record(self.path, headers, body)
        if fake.on_request is not None:
            fake.on_request(self.path)
        if not headers.get("x-api-key") and not headers.get("authorization", "").startswith(
            "Bearer "
        ):
            self._error(api, Script(status=401, error_message="missing API key"))
            return
        script = fake.next_script(api, body)
        fake.sleep(fake.latency + script.delay)
        if script.status is not None:
            self._error(api, script)
            return
        if script.raw_body is not None:
            data = script.raw_body.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        calls = _resolve_calls(script, body, api)
        model = body.get("model", "fake-model")
        if body.get("stream"):
            events = script.raw_events
            if events is None:
                events = (
                    _anthropic_events(fake, script, calls, model)
                    if api == "anthropic"
                    else _openai_chunks(fake, script, calls, model, body)
                )
            self._stream(events, script.cut_after)
        elif api == "anthropic":
            self._json(200, _anthropic_message(fake, script, calls, model))
        else:
            self._json(200, _openai_completion(fake, script, calls, model))

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, api: str, script: Script) -> None:
        status = script.status or 500
        if api == "anthropic":
            kind = {429: "rate_limit_error", 529: "overloaded_error", 401: "authentication_error"}
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": kind.get(status, "api_error"), "message": script.error_message},
                "request_id": "req_fake",
            }
        else:
            payload = {
                "error": {
                    "message": script.error_message,
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        self._json(status, payload, script.headers)

    def _stream(self, events: Any, cut_after: int | None) -> None:
        fake = self.server.fake
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for count, event in enumerate(events):
            if cut_after is not None and count >= cut_after:
                return
            if count:
                fake.sleep(fake.chunk_delay)
            self.wfile.write(event.encode())
            self.wfile.flush()


# The gateway's own tool search: the default model never calls it (tests script it).
GATEWAY_SEARCH = "gateway__find_tools"


def _default_script(api: str, body: dict[str, Any]) -> Script:
    tools = [t for t in body.get("tools") or [] if _tool_name(t) != GATEWAY_SEARCH]
    last = (body.get("messages") or [{}])[-1]
    results = _tool_results(api, last)
    if tools and not results:
        return Script(tool_calls=[(None, None)])
    if results:
        return Script(text="The tool said: " + " | ".join(results))
    return Script(text=f"Fake answer to: {_text_of(last.get('content'))}")


def _tool_name(tool: dict[str, Any]) -> str:
    return tool.get("name") or (tool.get("function") or {}).get("name", "")


def _tool_results(api: str, message: dict[str, Any]) -> list[str]:
    if api == "openai":
        return [_text_of(message.get("content"))] if message.get("role") == "tool" else []
    content = message.get("content")
    if message.get("role") != "user" or not isinstance(content, list):
        return []
    return [_text_of(b.get("content")) for b in content if b.get("type") == "tool_result"]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def _resolve_calls(script: Script, body: dict[str, Any], api: str) -> list[tuple[str, Any]]:
    """Scripted calls with names and default arguments filled in from the offered tools."""
    tools = body.get("tools") or []
    schemas = {
        (t["name"] if api == "anthropic" else t["function"]["name"]): (
            t.get("input_schema") if api == "anthropic" else t["function"].get("parameters")
        )
        or {}
        for t in tools
    }
    first = next((n for n in schemas if n != GATEWAY_SEARCH), "missing_tool")
    resolved = []
    for name, arguments in script.tool_calls:
        name = name or first
        if arguments is None:
            arguments = _sample_arguments(schemas.get(name, {}))
        resolved.append((name, arguments))
    return resolved


def _sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    samples = {"string": "test", "integer": 1, "number": 1.0, "boolean": True}
    out: dict[str, Any] = {}
    for name in schema.get("required") or ():
        spec = (schema.get("properties") or {}).get(name) or {}
        if "default" in spec:
            out[name] = spec["default"]
        elif spec.get("enum"):
            out[name] = spec["enum"][0]
        else:
            out[name] = samples.get(spec.get("type", "string"), "test")
    return out


def _arguments_json(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _pieces(text: str, words: int) -> list[str]:
    parts = text.split(" ")
    return [
        " ".join(parts[i : i + words]) + (" " if i + words < len(parts) else "")
        for i in range(0, len(parts), words)
    ]


def _anthropic_message(
    fake: FakeLLM, script: Script, calls: list[tuple[str, Any]], model: str
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if script.text:
        content.append({"type": "text", "text": script.text})
    for name, arguments in calls:
        content.append(
            {"type": "tool_use", "id": fake.new_id("toolu_"), "name": name, "input": arguments}
        )
    return {
        "id": fake.new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": script.stop_reason or ("tool_use" if calls else "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": script.input_tokens, "output_tokens": script.output_tokens},
    }


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _anthropic_events(fake: FakeLLM, script: Script, calls: list[tuple[str, Any]], model: str):
    message = _anthropic_message(fake, script, calls, model)
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": script.input_tokens, "output_tokens": 1},
    }
    yield _sse("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            first = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": piece}
                for piece in _pieces(block["text"], fake.chunk_words)
            ]
        else:
            first = {**block, "input": {}}
            raw = _arguments_json(block["input"])
            half = len(raw) // 2
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in (raw[:half], raw[half:])
                if part
            ]
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": first},
        )
        if index == 0:
            yield _sse("ping", {"type": "ping"})
        for delta in deltas:
            yield _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": script.output_tokens},
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


def _openai_completion(
    fake: FakeLLM, script: Script, calls: list[tuple[str, Any]], model: str
) -> dict[str, Any]:
    tool_calls = [
        {
            "id": fake.new_id("call_"),
            "type": "function",
            "function": {"name": name, "arguments": _arguments_json(arguments)},
        }
        for name, arguments in calls
    ]
    message: dict[str, Any] = {"role": "assistant", "content": script.text or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": fake.new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": script.stop_reason or ("tool_calls" if calls else "stop"),
                "logprobs": None,
                "message": message,
            }
        ],
        "usage": {
            "prompt_tokens": script.input_tokens,
            "completion_tokens": script.output_tokens,
            "total_tokens": script.input_tokens + script.output_tokens,
        },
    }


def _openai_chunks(
    fake: FakeLLM, script: Script, calls: list[tuple[str, Any]], model: str, body: dict[str, Any]
):
    completion = _openai_completion(fake, script, calls, model)
    head = {k: completion[k] for k in ("id", "created", "model")} | {
        "object": "chat.completion.chunk"
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return f"data: {json.dumps(head | {'choices': [choice]})}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    if script.text:
        for piece in _pieces(script.text, fake.chunk_words):
            yield chunk({"content": piece})
    message = completion["choices"][0]["message"]
    for position, call in enumerate(message.get("tool_calls") or ()):
        index = 0 if script.same_index else position
        function = call["function"]
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": function["name"], "arguments": ""},
                    }
                ]
            }
        )
        raw = function["arguments"]
        half = len(raw) // 2
        for part in (raw[:half], raw[half:]):
            if part:
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    yield chunk({}, completion["choices"][0]["finish_reason"])
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = head | {"choices": [], "usage": completion["usage"]}
        yield f"data: {json.dumps(usage)}\n\n"
    yield "data: [DONE]\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeLLM(args.host, args.port, latency=args.latency, chunk_delay=args.chunk_delay)
    print(f"fake LLM upstream on {fake.url}", flush=True)  # noqa: T201
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
