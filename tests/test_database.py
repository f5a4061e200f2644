"""Start-up: waiting for the database, and migrating exactly once under a lock."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest

from gateway import create_app
from gateway.database import DatabaseUnavailable, upgrade_database
from tests.conftest import test_settings
from tests.fakes.tcp_proxy import TCPProxy

ROOT = Path(__file__).resolve().parent.parent


def _through(proxy: TCPProxy, url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(
        netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}", query=""
    ).geturl()


def _tables(url: str) -> set[str]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cur.fetchall()}


def test_start_up_waits_for_the_database_then_migrates(make_database, caplog):
    url = make_database()
    proxy = TCPProxy.for_database(url)
    app = create_app(test_settings(_through(proxy, url), db_connect_deadline=30.0))
    # The database "comes up" 2 s after start-up began.
    timer = threading.Timer(2.0, proxy.start)
    timer.start()
    try:
        with caplog.at_level(logging.INFO, logger="gateway.database"):
            assert upgrade_database(app) == "created"
    finally:
        timer.cancel()
        proxy.stop()
    waits = [r for r in caplog.records if "Database not reachable (attempt" in r.getMessage()]
    assert len(waits) >= 2
    assert any("Database tables created successfully" in r.getMessage() for r in caplog.records)
    assert {"users", "conversations", "messages", "tool_calls", "revoked_tokens"} <= _tables(url)


def test_start_up_gives_up_after_the_deadline_with_a_clear_error(make_database):
    url = make_database()
    proxy = TCPProxy.for_database(url)  # never started: nothing listens
    app = create_app(test_settings(_through(proxy, url), db_connect_deadline=1.5))
    with pytest.raises(DatabaseUnavailable, match=r"database not reachable after \d+ attempts"):
        upgrade_database(app)


MIGRATE = """
import logging, sys
from gateway import create_app
from gateway.database import upgrade_database
from gateway.settings import Settings
env = {"ENVIRONMENT": "test", "DATABASE_URL": sys.argv[1], "JWT_SECRET_KEY": "k" * 40}
app = create_app(Settings.from_env(env))
print("OUTCOME", upgrade_database(app))
"""


def test_two_processes_migrating_at_once_create_the_schema_once(make_database):
    url = make_database()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    outcomes = sorted(
        line.split(" ", 1)[1]
        for o in outputs
        for line in o.splitlines()
        if line.startswith("OUTCOME")
    )
    assert outcomes == ["created", "up to date"]
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM alembic_version")
        assert cur.fetchone()[0] == 1


def test_a_second_start_finds_the_schema_up_to_date(app):
    assert upgrade_database(app) == "up to date"


def test_migrations_run_on_the_embedded_postgresql_too(tmp_path):
    """`make run`'s database (PostgreSQL 18 from the wheel) takes the same schema as the
    server the suite runs on (PostgreSQL 15 in CI and compose)."""
    from gateway.embedded_postgres import EmbeddedPostgres

    embedded = EmbeddedPostgres(tmp_path / "instance")
    url = embedded.start()
    try:
        app = create_app(test_settings(url))
        assert upgrade_database(app) == "created"
        assert upgrade_database(app) == "up to date"
        assert {"users", "conversations", "messages", "tool_calls", "routing_examples"} <= _tables(
            url
        )
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            assert int(cur.fetchone()[0]) >= 180000
            cur.execute("SHOW listen_addresses")
            assert cur.fetchone()[0] == ""  # Unix socket only
    finally:
        embedded.stop()
