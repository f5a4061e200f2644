"""Abuse limits: per-user chat rate and concurrent turns, shared by workers; the capacity sums."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select

from gateway import create_app
from gateway.capacity import THREADS_PER_CONNECTION, Capacity, check_capacity, server_limits
from gateway.database import upgrade_database
from gateway.extensions import db
from gateway.models import ConversationMessage, TurnLease, utcnow
from gateway.services import close_services
from gateway.settings import ConfigError, Settings
from tests.chat_setup import chat_settings, write_mcp_config
from tests.conftest import test_settings
from tests.factories import create_account
from tests.fakes.fake_llm import reply
from tests.live_server import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def mcp_config(tmp_path_factory):
    return write_mcp_config(tmp_path_factory.mktemp("mcp"))


@pytest.fixture
def make_worker(database_url, fake, mcp_config, app):
    """Apps over the same database, standing in for gunicorn workers or replicas."""
    built = []

    def make(**overrides):
        worker = create_app(
            test_settings(database_url, **chat_settings(fake.url, mcp_config), **overrides)
        )
        upgrade_database(worker)
        built.append(worker)
        return worker.test_client()

    fake.reset()
    yield make
    for worker in built:
        close_services(worker)


def _chat(client, account, message="hello", **fields):
    return client.post("/chat", headers=account.headers, json={"message": message, **fields})


def _user_messages(app) -> list[str]:
    with app.app_context():
        rows = db.session.scalars(
            select(ConversationMessage).where(ConversationMessage.role == "user")
        ).all()
        return [m.content[0]["text"] for m in rows]


@pytest.mark.parametrize("backend", ["postgresql", "redis"])
def test_the_chat_rate_limit_is_shared_by_workers_and_says_when_to_retry(
    make_worker, fake, app, backend
):
    if backend == "redis" and not _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    options = {"chat_rate_limit": 2, "chat_rate_window_seconds": 60}
    if backend == "redis":
        options["redis_url"] = REDIS_URL
    first, second = make_worker(**options), make_worker(**options)
    alice, bob = create_account(app), create_account(app)
    fake.script(*(reply("ok") for _ in range(4)))
    assert _chat(first, alice, "one").status_code == 200
    assert _chat(second, alice, "two").status_code == 200
    refused = _chat(first, alice, "three")
    assert refused.status_code == 429
    assert refused.get_json()["error"]["type"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another user is not affected, and the refused message was never stored.
    assert _chat(second, bob, "four").status_code == 200
    assert sorted(_user_messages(app)) == ["four", "one", "two"]


@pytest.mark.parametrize("backend", ["postgresql", "redis"])
def test_concurrent_turns_are_capped_per_user_across_workers(make_worker, fake, app, backend):
    if backend == "redis" and not _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    options = {"chat_max_concurrent": 1}
    if backend == "redis":
        options["redis_url"] = REDIS_URL
    first, second = make_worker(**options), make_worker(**options)
    alice, bob = create_account(app), create_account(app)
    fake.script(reply("slow", delay=1.5), reply("bob"), reply("after"))
    results = {}
    running = threading.Thread(
        target=lambda: results.update(slow=_chat(first, alice, "slow", stream=True).get_data())
    )
    running.start()
    try:
        threading.Event().wait(0.5)
        refused = _chat(second, alice, "meanwhile")
        assert refused.status_code == 429
        assert refused.get_json()["error"]["type"] == "too_many_concurrent_turns"
        assert refused.headers["Retry-After"] == "5"
        assert _chat(second, bob, "bob").status_code == 200
    finally:
        running.join(10)
    assert b"event: done" in results["slow"]
    # The stream's end released its slot.
    assert _chat(second, alice, "after").status_code == 200


def test_a_lease_left_by_a_killed_worker_expires(make_worker, fake, app):
    client = make_worker(chat_max_concurrent=1)
    alice = create_account(app)
    with app.app_context():
        db.session.add(TurnLease(user_id=alice.id, expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    fake.script(reply("ok"))
    assert _chat(client, alice).status_code == 200


def test_an_unreachable_redis_skips_the_limits_instead_of_failing_chat(make_worker, fake, app):
    client = make_worker(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", chat_rate_limit=1, chat_max_concurrent=1
    )
    alice = create_account(app)
    fake.script(reply("a"), reply("b"))
    assert _chat(client, alice).status_code == 200
    assert _chat(client, alice).status_code == 200


def test_the_openai_compatible_endpoint_shares_the_rate_limit(make_worker, fake, app):
    client = make_worker(chat_rate_limit=1)
    alice = create_account(app)
    fake.script(reply("ok"))
    assert _chat(client, alice).status_code == 200
    response = client.post(
        "/v1/chat/completions",
        headers=alice.headers,
        json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 429
    assert "Retry-After" in response.headers
    # OpenAI's type and code, so its SDKs raise RateLimitError.
    error = response.get_json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")


# --- capacity ------------------------------------------------------------------------------


def test_the_default_configuration_fits_the_real_postgresql(app):
    settings = Settings.from_env({})
    workers, threads = settings.http.workers, settings.http.threads
    with app.app_context():
        max_connections, reserved = server_limits(db.engine)
        capacity = check_capacity(db.engine, settings, workers=workers, threads=threads)
    assert capacity.max_connections == max_connections
    per_worker = settings.database.pool_size + settings.database.max_overflow
    assert workers * per_worker <= (max_connections - reserved)
    # Connections are held only around database work, so threads share them.
    assert threads <= THREADS_PER_CONNECTION * per_worker


def test_pools_larger_than_the_server_refuse_to_start(app):
    settings = Settings.from_env({"DB_POOL_SIZE": 40, "DB_MAX_OVERFLOW": 40})
    with app.app_context(), pytest.raises(ConfigError, match="GUNICORN_WORKERS x"):
        check_capacity(db.engine, settings, workers=4, threads=8)


def test_more_threads_than_connections_is_a_warning(app, caplog):
    settings = Settings.from_env({"DB_POOL_SIZE": 2, "DB_MAX_OVERFLOW": 0})
    with app.app_context(), caplog.at_level(logging.WARNING, logger="gateway.capacity"):
        check_capacity(db.engine, settings, workers=2, threads=32)
    assert any("GUNICORN_THREADS=32 exceeds" in r.getMessage() for r in caplog.records)


def test_capacity_arithmetic():
    capacity = Capacity(
        workers=3, threads=4, pool_size=10, max_overflow=20, max_connections=100, reserved=3
    )
    assert (capacity.needed, capacity.available) == (90, 97)
    errors, warnings = capacity.problems()
    assert errors == [] and len(warnings) == 1  # 90 of 97: no room for a second replica


def test_gunicorn_refuses_to_start_with_a_configuration_that_cannot_fit(make_database):

    from tests.live_server import ROOT, gunicorn_start_up

    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": make_database(),
        "JWT_SECRET_KEY": "k" * 40,
        "GUNICORN_WORKERS": "50",
        "DB_POOL_SIZE": "5",
        "DB_MAX_OVERFLOW": "5",
        "BIND": f"127.0.0.1:{free_port()}",
        "MCP_CONFIG": str(ROOT / "tests" / "fixtures" / "mcp_none.json"),
        "PATH": "/usr/bin:/bin",
    }
    done = gunicorn_start_up(env)
    assert done.returncode != 0
    assert "50 x 10 = 500 connections" in done.stdout + done.stderr
