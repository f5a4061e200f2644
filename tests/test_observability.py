"""Request ids, the access log line, and Prometheus metrics across gunicorn workers."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import TEST_SECRET
from tests.live_server import gunicorn


def test_incoming_request_id_is_returned(client):
    response = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize("incoming", [None, "", "has spaces", "x" * 200, "<script>", "a;b"])
def test_missing_or_unsafe_request_id_is_replaced(client, incoming):
    headers = {"X-Request-ID": incoming} if incoming is not None else {}
    returned = client.get("/health", headers=headers).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", returned)


def test_one_access_log_line_per_request_with_its_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        client.get("/nope", headers={"X-Request-ID": "req-42"})
    lines = [r for r in caplog.records if r.name == "gateway.access"]
    assert len(lines) == 1
    record = lines[0]
    assert record.getMessage().startswith("GET /nope 404 ")
    assert (record.method, record.path, record.status) == ("GET", "/nope", 404)
    assert record.request_id == "req-42"


def test_json_log_format_emits_one_object_per_line(database_url):
    import json

    from gateway.logs import JsonFormatter, RequestIdFilter

    record = logging.LogRecord("gateway.access", logging.INFO, __file__, 1, "GET / 200", None, None)
    RequestIdFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "GET / 200"
    assert entry["request_id"] == "-"


SERVED_BY = r"\[(\d+)\] gateway\.access: GET /health/ready 200"


@pytest.mark.slow
def test_two_gunicorn_workers_create_the_schema_once_and_share_metrics(make_database):
    url = make_database()
    env = {"ENVIRONMENT": "test", "DATABASE_URL": url, "JWT_SECRET_KEY": TEST_SECRET}
    served_by: set[str] = set()
    sent = 0
    with gunicorn(env, workers=2) as server:

        def hit(_: int) -> int:
            with requests.Session() as session:
                return session.get(server.url + "/health/ready", timeout=10).status_code

        # One worker may win every accept() on a quiet machine: send batches until both served.
        with ThreadPoolExecutor(8) as pool:
            for _ in range(25):
                statuses = list(pool.map(hit, range(40)))
                assert statuses == [200] * 40
                sent += 40
                served_by = set(re.findall(SERVED_BY, server.log()))
                if len(served_by) == 2:
                    break
        metrics = requests.get(server.url + "/metrics", timeout=10).text
        log = server.log()

    assert len(served_by) == 2, "both workers should have served requests"
    match = re.search(
        r'gateway_http_requests_total\{method="GET",route="/health/ready",status="200"\} (\d+)',
        metrics,
    )
    assert match and float(match.group(1)) == sent
    assert log.count("Database tables created successfully") == 1
    assert "Booting worker" in log


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_line_with_text_utf8_cannot_encode_is_written_escaped(fmt):
    """A lone surrogate from a client (the routing line logs the prompt) is written as an
    escape, not lost to a logging error; a JSON line stays JSON."""
    from gateway.logs import TEXT_FORMAT, EscapingStreamHandler, JsonFormatter, RequestIdFilter

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    handler = EscapingStreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    errors: list[object] = []
    handler.handleError = lambda record: errors.append(sys.exc_info()[1])  # type: ignore[method-assign]
    prompt = "hi \ud800 there"
    handler.handle(logging.LogRecord("gateway.routing", logging.INFO, "", 1, "%s", (prompt,), None))
    assert errors == []
    line = raw.getvalue().decode("utf-8")
    assert "hi \\ud800 there" in line
    if fmt == "json":
        assert json.loads(line)["message"] == prompt  # a JSON escape: the exact text
