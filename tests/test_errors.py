"""Every error is the one JSON envelope with the right status, never HTML or a traceback."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from flask import Blueprint, request
from pydantic import BaseModel, ConfigDict
from werkzeug.exceptions import Forbidden, TooManyRequests, Unauthorized

import gateway
from gateway import create_app
from gateway.errors import ServiceUnavailable
from gateway.llm.errors import (
    ProviderNotConfigured,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from gateway.mcp.errors import ToolUnavailable
from tests.conftest import test_settings


class Greeting(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


def _failing_routes() -> Blueprint:
    bp = Blueprint("failing", __name__)

    @bp.post("/echo")
    def echo():
        return {"name": Greeting.model_validate(request.get_json()).name}

    @bp.get("/raise/<kind>")
    def raise_(kind: str):
        raise {
            "401": Unauthorized("Missing token."),
            "403": Forbidden("Admins only."),
            "429": TooManyRequests("Slow down."),
            "502": UpstreamError("The provider 'openai' returned an error."),
            "503": ServiceUnavailable(),
            "504": UpstreamTimeout(),
            "upstream-429": UpstreamRateLimited("Slow down, says the provider.", retry_after=30),
            "no-provider": ProviderNotConfigured("The LLM provider 'x' is not configured."),
            "tool": ToolUnavailable("MCP server 'time' is not running"),
            "500": RuntimeError("secret internals: password=hunter2"),
        }[kind]

    @bp.get("/v1/raise/<kind>")
    def raise_v1(kind: str):
        return raise_(kind)

    return bp


@pytest.fixture(scope="module")
def error_app(database_url):
    app = create_app(test_settings(database_url, max_request_bytes=1024))
    app.register_blueprint(_failing_routes())
    return app


@pytest.fixture
def error_client(error_app):
    return error_app.test_client()


def assert_envelope(response, status: int, error_type: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(
    ("kind", "status", "error_type"),
    [
        ("401", 401, "unauthorized"),
        ("403", 403, "forbidden"),
        ("429", 429, "too_many_requests"),
        ("502", 502, "upstream_error"),
        ("503", 503, "service_unavailable"),
        ("504", 504, "upstream_timeout"),
    ],
)
def test_raised_errors_use_the_envelope(error_client, kind, status, error_type):
    assert_envelope(error_client.get(f"/raise/{kind}"), status, error_type)


def test_unhandled_exception_is_a_500_envelope_without_internals(error_client):
    response = error_client.get("/raise/500")
    error = assert_envelope(response, 500, "internal_server_error")
    assert "hunter2" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert error["message"] == "The server could not complete the request."


def test_service_unavailable_says_when_to_retry(error_client):
    assert error_client.get("/raise/503").headers["Retry-After"] == "5"


def test_unknown_url_is_a_404_envelope(client):
    assert_envelope(client.get("/nope"), 404, "not_found")


def test_wrong_method_is_a_405_envelope_with_allow(client):
    response = client.post("/health")
    assert_envelope(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_malformed_json_is_a_400(error_client):
    response = error_client.post("/echo", data="{nope", content_type="application/json")
    error = assert_envelope(response, 400, "bad_request")
    assert error["message"] == "The request body is not valid JSON."


def test_non_json_body_is_a_415(error_client):
    response = error_client.post("/echo", data="name=x", content_type="text/plain")
    error = assert_envelope(response, 415, "unsupported_media_type")
    assert "application/json" in error["message"]


def test_invalid_fields_are_a_422_with_details(error_client):
    response = error_client.post("/echo", json={"name": 3, "extra": True})
    error = assert_envelope(response, 422, "validation_error")
    fields = {d["field"] for d in error["details"]}
    assert fields == {"name", "extra"}


def test_body_over_the_limit_is_a_413(error_client):
    response = error_client.post("/echo", json={"name": "x" * 2000})
    assert_envelope(response, 413, "request_entity_too_large")


def test_body_under_the_limit_is_served(error_client):
    assert error_client.post("/echo", json={"name": "ada"}).get_json() == {"name": "ada"}


@pytest.mark.parametrize(
    ("kind", "status", "error_type", "message"),
    [
        ("502", 502, "upstream_error", "The provider 'openai' returned an error."),
        ("504", 504, "upstream_timeout", "The language model provider did not answer in time."),
        ("upstream-429", 429, "rate_limit_exceeded", "Slow down, says the provider."),
        ("no-provider", 422, "validation_error", "The LLM provider 'x' is not configured."),
        ("tool", 503, "tool_unavailable", "MCP server 'time' is not running"),
    ],
)
def test_domain_exceptions_get_their_status(error_client, kind, status, error_type, message):
    """llm/ and mcp/ raise their own exceptions; the web layer gives each its status."""
    error = assert_envelope(error_client.get(f"/raise/{kind}"), status, error_type)
    assert error["message"] == message


def test_upstream_retry_after_is_passed_on(error_client):
    assert error_client.get("/raise/upstream-429").headers["Retry-After"] == "30"


@pytest.mark.parametrize(
    ("kind", "status", "openai_type", "code"),
    [
        ("401", 401, "invalid_request_error", "invalid_api_key"),
        ("403", 403, "permission_error", "forbidden"),
        ("upstream-429", 429, "rate_limit_error", "rate_limit_exceeded"),
        ("502", 502, "server_error", "upstream_error"),
        ("504", 504, "server_error", "upstream_timeout"),
        ("500", 500, "server_error", "internal_server_error"),
    ],
)
def test_the_same_path_writes_openai_errors_under_v1(error_client, kind, status, openai_type, code):
    response = error_client.get(f"/v1/raise/{kind}")
    assert response.status_code == status
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == (openai_type, code)
    assert "hunter2" not in response.get_data(as_text=True)


@pytest.mark.parametrize("package", ["llm", "mcp"])
def test_domain_layers_do_not_import_the_web_error_module(package):
    """Exceptions below the web are their own: only the web layer knows HTTP statuses."""
    imported = set()
    for path in (Path(gateway.__file__).parent / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert "gateway.errors" not in imported
    assert "gateway.compat.errors" not in imported
