"""Hostile input by hand: every case is a clear 4xx in the envelope, never a 500."""

from __future__ import annotations

import pytest

from tests.factories import create_account

NESTED = b'{"message": "hi", "servers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.fixture
def alice(app):
    return create_account(app)


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/chat", b'{"message": "caf\xe9"}', 400),  # invalid UTF-8
        ("/chat", b'{"message": "\xff\xfe"}', 400),
        ("/chat", NESTED, 400),  # deeper than the parser's recursion limit
        ("/chat", b'{"message": "hi", "servers": ' + b"[" * 70 + b"]" * 70 + b"}", 400),
        ("/chat", b'{"message": "hi\\u0000there"}', 400),  # PostgreSQL cannot store U+0000
        ("/chat", b'{"message": "hi", "model\\u0000": "x"}', 400),
        ("/conversations/00000000-0000-0000-0000-000000000000", b'{"title": "a\\u0000"}', 400),
        ("/auth/keys", b'{"name": "k\\u0000"}', 400),
        # A lone surrogate is valid JSON and no Unicode character: refused on every surface.
        ("/chat", b'{"message": "hi \\ud800 there"}', 400),
        ("/chat", b'{"message": "hi", "model": "\\udfff"}', 400),
        (
            "/v1/chat/completions",
            b'{"model": "m", "messages": [{"role": "user", "content": "a\\ud800"}]}',
            400,
        ),
        ("/chat", b'{"message": "hi", "conversation_id": ' + b"9" * 5000 + b"}", 400),
        ("/chat", b'{"message": 1e999999}', 422),  # parsed as inf: not a string
        ("/chat", b'{"message": "hi", "stream": 1e400}', 422),
        ("/chat", b'{"message": "' + b"x" * 40_000 + b'"}', 422),  # MAX_MESSAGE_CHARS
        ("/chat", b'{"message": " \\n\\t "}', 422),  # only whitespace: nothing to answer
        ("/chat", b"[]", 422),
        ("/chat", b'"just a string"', 422),
        ("/chat", b"null", 422),
        ("/chat", b"", 400),
    ],
)
def test_malformed_bodies_are_client_errors(client, alice, path, body, status):
    method = client.patch if path.startswith("/conversations") else client.post
    response = method(path, headers=alice.headers, data=body, content_type="application/json")
    _error(response, status)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_a_body_that_is_not_json_is_a_415(client, alice, content_type):
    headers = dict(alice.headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/chat", headers=headers, data=b'{"message": "hi"}')
    _error(response, 415)


def test_a_json_subtype_is_accepted_as_json(client, alice):
    response = client.post(
        "/auth/keys",
        headers={**alice.headers, "Content-Type": "application/vnd.api+json"},
        data=b'{"name": "k"}',
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "value",
    # (A value with CR/LF cannot even be sent: HTTP clients and servers refuse it first.)
    [
        "abc; Set-Cookie: stolen=1",
        "x" * 129,
        "<script>alert(1)</script>",
        "id with spaces",
        "ünïcode",
        "a\x00b",
    ],
)
def test_a_hostile_request_id_is_replaced_not_echoed(client, value):
    response = client.get("/health", headers={"X-Request-ID": value})
    echoed = response.headers["X-Request-ID"]
    assert echoed != value
    assert len(echoed) == 32 and echoed.isalnum()
    assert "Set-Cookie" not in response.headers


def test_a_plain_request_id_is_echoed(client):
    assert client.get("/health", headers={"X-Request-ID": "req-42.a:b"}).headers[
        "X-Request-ID"
    ] == ("req-42.a:b")


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert('x')</script><img src=x onerror=alert(1)>",
        "'; DROP TABLE users; --",
        "Robert'); DELETE FROM messages WHERE ('1'='1",
        '{"$ne": null}',
        "${jndi:ldap://127.0.0.1/a}",
        "🙂 \u202e RTL and emoji",
    ],
)
def test_html_and_sql_looking_text_is_stored_verbatim_and_returned_as_json(client, alice, text):
    response = client.post("/auth/keys", headers=alice.headers, json={"name": text[:100]})
    assert response.status_code == 201
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    [key] = client.get("/auth/keys", headers=alice.headers).get_json()["keys"]
    assert key["name"] == text[:100]
    # The users table is still there.
    assert client.get("/auth/me", headers=alice.headers).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "limit=99999999999999999999999999",
        "limit=-1",
        "limit=1e3",
        "cursor=%00",
        "cursor=" + "A" * 5000,
        "cursor=%FF%FE",
        "limit=%00",
    ],
)
def test_hostile_query_strings_are_client_errors(client, alice, query):
    response = client.get(f"/conversations?{query}", headers=alice.headers)
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer " + "a" * 10_000,
        "Bearer a.b.c",
        "Bearer \x00",
        "Bearer mgw_" + "\u00e9" * 50,
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "bearer  ",
    ],
)
def test_hostile_authorization_headers_are_401(client, header):
    try:
        response = client.get("/auth/me", headers={"Authorization": header})
    except ValueError:
        pytest.skip("the test client itself refuses this header value")
    _error(response, 401)
