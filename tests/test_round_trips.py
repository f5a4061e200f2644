"""Database round trips per turn, counted statement by statement.

The rule (issue #20, docs/STYLE "Data"): one commit for the user's message, one for the answer,
nothing else on the hot path; authentication by API key is one read.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import event, text

from gateway.extensions import db
from gateway.services import get_services
from tests.chat_setup import chat_gateway, write_mcp_config
from tests.factories import create_account


@pytest.fixture(scope="module")
def chat_app(database_url, fake, tmp_path_factory, app):
    # The MCP server is not waited for: the counts are of the turn's own statements.
    config = write_mcp_config(tmp_path_factory.mktemp("mcp"))
    with chat_gateway(database_url, fake.url, config, start_mcp=False) as chat:
        yield chat


@pytest.fixture
def api_key(chat_app, fake, app):
    fake.reset()
    account = create_account(app)
    client = chat_app.test_client()
    response = client.post("/auth/keys", headers=account.headers, json={"name": "trips"})
    assert response.status_code == 201, response.text
    key = {"Authorization": f"Bearer {response.get_json()['key']}"}
    # The first use of a key reads it and records it (last_used_at, at most once a minute);
    # later ones find it in the worker's cache, here for as long as the test runs.
    get_services(chat_app).api_key_cache.seconds = 3600
    assert client.get("/v1/models", headers=key).status_code == 200
    return key


# The router's own state (the config generation, tool pins, learned examples) is re-read every
# few seconds per worker, not per turn: left out of the counts.
PERIODIC = ("runtime_state", "tool_pins", "routing_examples")


def _label(sql: str) -> str:
    """``SELECT api_keys``, ``INSERT messages``, ``UPDATE conversations``: verb and table."""
    words = sql.replace('"', "").split()
    verb = words[0].upper()
    lowered = [w.lower() for w in words]
    for keyword in ("into", "update", "from"):
        if keyword in lowered[: len(lowered) - 1] and (keyword != "update" or verb == "UPDATE"):
            table = lowered[lowered.index(keyword) + 1]
            return f"{verb} {table.split('.')[0].strip('(')}"
    return verb


@contextmanager
def counted(app) -> Iterator[list[str]]:
    """Every round trip to PostgreSQL meanwhile: statements, COMMITs and ROLLBACKs."""
    sent: list[str] = []
    with app.app_context():
        engine = db.engine

    def statement(conn, cursor, sql, params, context, executemany):
        periodic = any(table in sql for table in PERIODIC)
        sent.append("periodic" if periodic else _label(sql))

    def commit(conn):
        sent.append("COMMIT")

    def rollback(conn):
        # SQLAlchemy ends every transaction with a rollback call; psycopg2 sends one only when
        # a transaction is open, i.e. after a statement.
        if sent and sent[-1] not in ("COMMIT", "ROLLBACK"):
            sent.append("ROLLBACK")

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    event.listen(engine, "rollback", rollback)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
        event.remove(engine, "rollback", rollback)
    # Drop the router's own transactions (reads, and pins recorded when a server's tools
    # appear): all their statements periodic, with the COMMIT or ROLLBACK that ends them.
    kept: list[str] = []
    transaction: list[str] = []
    for item in sent:
        transaction.append(item)
        if item in ("COMMIT", "ROLLBACK"):
            if any(s != "periodic" for s in transaction[:-1]):
                kept += [s for s in transaction if s != "periodic"]
            transaction = []
    sent[:] = kept + [s for s in transaction if s != "periodic"]


def test_stored_chat_turn_commits_the_prompt_then_the_answer(chat_app, api_key):
    client = chat_app.test_client()
    with counted(chat_app) as sent:
        response = client.post("/chat", headers=api_key, json={"message": "hello"})
    assert response.status_code == 200, response.text
    assert sent == [
        # The caller's API key was read by an earlier request (see ``api_key``).
        # The per-user limits (CHAT_RATE_LIMIT, CHAT_MAX_CONCURRENT), in PostgreSQL when no
        # Redis is configured: one transaction each to count and to take a slot.
        "INSERT rate_windows",
        "COMMIT",
        "SELECT",  # pg_advisory_xact_lock
        "DELETE turn_leases",
        "SELECT turn_leases",
        "INSERT turn_leases",
        "COMMIT",
        # The prompt, with its new conversation: one commit before anything calls out.
        "INSERT conversations",
        "INSERT messages",
        "COMMIT",
        # The answer, the prompt's status and the conversation's time: one commit.
        "INSERT messages",
        "UPDATE messages",
        "UPDATE conversations",
        "COMMIT",
        # The slot given back.
        "DELETE turn_leases",
        "COMMIT",
    ]


def test_stored_turn_in_an_existing_conversation_reads_it_once(chat_app, api_key):
    client = chat_app.test_client()
    first = client.post("/chat", headers=api_key, json={"message": "hello"}).get_json()
    body = {"message": "and again", "conversation_id": first["conversation_id"]}
    with counted(chat_app) as sent:
        response = client.post("/chat", headers=api_key, json=body)
    assert response.status_code == 200, response.text
    # After the limits' two transactions: the conversation read (and leased), then the prompt.
    commits = [i for i, s in enumerate(sent) if s == "COMMIT"]
    assert len(commits) == 5
    prompt = sent[commits[1] + 1 : commits[2] + 1]
    assert prompt[0] == "SELECT conversations"
    assert prompt[-3:] == ["INSERT messages", "UPDATE conversations", "COMMIT"]


def test_unstored_completion_stores_nothing(chat_app, api_key):
    client = chat_app.test_client()
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]}
    with counted(chat_app) as sent:
        response = client.post("/v1/chat/completions", headers=api_key, json=body)
    assert response.status_code == 200, response.text
    # The limits; nothing is stored without the conversation header.
    assert sent == [
        "INSERT rate_windows",
        "COMMIT",
        "SELECT",  # pg_advisory_xact_lock
        "DELETE turn_leases",
        "SELECT turn_leases",
        "INSERT turn_leases",
        "COMMIT",
        "DELETE turn_leases",
        "COMMIT",
    ]


def test_a_key_is_read_once_per_cache_period(chat_app, api_key):
    client = chat_app.test_client()
    with counted(chat_app) as sent:
        assert client.get("/v1/models", headers=api_key).status_code == 200
    assert sent == []
    get_services(chat_app).api_key_cache.seconds = 0
    with counted(chat_app) as sent:
        assert client.get("/v1/models", headers=api_key).status_code == 200
    assert sent == ["SELECT api_keys", "COMMIT"]


def test_a_key_revoked_elsewhere_stops_working_when_its_cache_entry_ages(chat_app, api_key):
    client = chat_app.test_client()
    # Revoked as another worker would: in the database only.
    with chat_app.app_context():
        db.session.execute(text("UPDATE api_keys SET revoked_at = now()"))
        db.session.commit()
    assert client.get("/v1/models", headers=api_key).status_code == 200
    get_services(chat_app).api_key_cache.seconds = 0
    assert client.get("/v1/models", headers=api_key).status_code == 401


def test_a_busy_worker_reuses_its_database_connections(chat_app, app):
    """Connections past the pool are closed when given back: with the defaults a worker keeps
    every connection it may open, so a second burst of turns opens none (no backend forked
    per transaction under load)."""
    # One user per thread: a user's turns run one at a time (CHAT_MAX_CONCURRENT).
    users = [create_account(app).headers for _ in range(16)]
    with chat_app.app_context():
        engine = db.engine
    opened: list[object] = []

    def count(dbapi_connection, record):
        opened.append(dbapi_connection)

    def burst() -> int:
        before = len(opened)
        with ThreadPoolExecutor(len(users)) as pool:
            statuses = list(pool.map(lambda headers: _turn(chat_app, headers), users * 2))
        assert statuses == [200] * len(users) * 2
        return len(opened) - before

    event.listen(engine, "connect", count)
    try:
        burst()
        assert burst() == 0
    finally:
        event.remove(engine, "connect", count)


def _turn(app, headers: dict[str, str]) -> int:
    return app.test_client().post("/chat", headers=headers, json={"message": "hi"}).status_code
