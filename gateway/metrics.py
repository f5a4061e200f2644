"""Prometheus metrics, aggregated across gunicorn workers in multiprocess mode."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from gateway.openapi import Reply, operation
from gateway.services import get_services

HTTP_REQUESTS = Counter(
    "gateway_http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "gateway_http_request_duration_seconds",
    "Time to produce the response (streams: until the first byte).",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

MCP_CALLS = Counter(
    "gateway_mcp_tool_calls_total", "MCP tool calls.", ["server", "tool", "outcome"]
)
MCP_LATENCY = Histogram(
    "gateway_mcp_tool_call_duration_seconds",
    "MCP tool call time, as the gateway saw it.",
    ["server", "tool"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MCP_PROCESSES = Gauge(
    "gateway_mcp_server_processes",
    "Live stdio MCP server processes.",
    multiprocess_mode="livesum",
)
LLM_TOKENS = Counter(
    "gateway_llm_tokens_total", "Tokens used, by provider and model.", ["provider", "model", "kind"]
)
CHAT_TURNS = Counter(
    "gateway_chat_turns_total",
    "Chat turns, by provider and stop reason.",
    ["provider", "stop_reason"],
)

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@operation(
    "Prometheus metrics",
    responses={200: Reply(media={"text/plain": {"schema": {"type": "string"}}})},
    public=True,
)
def metrics() -> Response:
    """Every worker's samples when PROMETHEUS_MULTIPROC_DIR is set (gunicorn), else this one's."""
    if get_services().settings.http.metrics_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def observe_tool_call(server: str, tool: str, seconds: float, *, ok: bool, processes: int) -> None:
    MCP_CALLS.labels(server, tool, "ok" if ok else "error").inc()
    MCP_LATENCY.labels(server, tool).observe(seconds)
    MCP_PROCESSES.set(processes)


def observe_turn(
    provider: str, model: str, stop_reason: str, tokens_in: int, tokens_out: int
) -> None:
    CHAT_TURNS.labels(provider, stop_reason).inc()
    LLM_TOKENS.labels(provider, model, "input").inc(tokens_in)
    LLM_TOKENS.labels(provider, model, "output").inc(tokens_out)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


MCP_ENDPOINT_CALLS = Counter(
    "gateway_mcp_endpoint_calls_total",
    "Calls through the gateway's MCP endpoint (/mcp), by method, server and outcome.",
    ["method", "server", "outcome"],
)
MCP_ENDPOINT_LATENCY = Histogram(
    "gateway_mcp_endpoint_call_duration_seconds",
    "Time the gateway's MCP endpoint spent on a call, upstream included.",
    ["method", "server"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def observe_endpoint_call(method: str, server: str, outcome: str, seconds: float) -> None:
    MCP_ENDPOINT_CALLS.labels(method, server, outcome).inc()
    MCP_ENDPOINT_LATENCY.labels(method, server).observe(seconds)
