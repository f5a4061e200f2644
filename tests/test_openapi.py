"""/openapi.json describes every route, and schemathesis finds no 500s or schema mismatches."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from gateway import create_app
from gateway.auth.passwords import UnusablePassword, prepare
from gateway.database import upgrade_database
from gateway.services import close_services
from tests.conftest import test_settings
from tests.factories import create_account

NONE_MCP = "tests/fixtures/mcp_none.json"


@pytest.fixture(scope="module")
def api_app(database_url, app):
    api = create_app(
        test_settings(database_url, mcp_config=NONE_MCP, routing_env={"ROUTING_SEMANTIC": "false"})
    )
    upgrade_database(api)
    yield api
    close_services(api)


def test_every_route_is_documented(api_app):
    documented = set(api_app.test_client().get("/openapi.json").get_json()["paths"])
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule) for rule in api_app.url_map.iter_rules()
    }
    assert routes == documented


def test_the_document_is_valid_openapi_3_1(api_app):
    document = api_app.test_client().get("/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document)  # raises on an invalid document


def _password_is_preparable(case) -> bool:
    """JSON Schema cannot express RFC 8265's code point classes (unassigned, controls...): the
    document says so in words, and generated passwords are the ones the profile accepts."""
    body = case.body if isinstance(case.body, dict) else {}
    password = body.get("password")
    if not isinstance(password, str):
        return True
    try:
        prepare(password)
    except UnusablePassword:
        return False
    return True


def test_api_conforms_to_its_schema(api_app, app):
    """Generated requests for every operation: no 500s, responses match the document."""
    headers = create_account(app).headers
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api_app)
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:

        @given(case=operation.as_strategy().filter(_password_is_preparable))
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers=headers)

        try:
            check()
        except Exception as exc:  # collect every failing operation, not just the first
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
