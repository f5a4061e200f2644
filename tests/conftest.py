"""Shared fixtures: a throwaway PostgreSQL database per run, the app, a client, clean tables."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy import text

from gateway import create_app
from gateway.database import upgrade_database
from gateway.extensions import db
from gateway.mcp import MCPHub
from gateway.runtime import close_runtime
from tests.fakes.fake_llm import FakeLLM
from tests.fakes.llm_settings import Providers

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_SECRET = "test-secret-" + "x" * 40

HOW_TO_GET_POSTGRES = """\
The test suite needs PostgreSQL and none answered at {url}
  ({reason})
Start one, then run `make test` again:
  - Debian/Ubuntu with the server installed:
      pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
  - Install it:  apt-get install postgresql
  - A container: docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15
  - Elsewhere:   TEST_DATABASE_URL=postgresql://user:password@host:port/dbname make test
The tests never fall back to SQLite."""


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database for this run, dropped at the end."""
    try:
        admin = psycopg2.connect(ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0]
        pytest.exit(HOW_TO_GET_POSTGRES.format(url=ADMIN_URL, reason=reason), returncode=3)
    admin.autocommit = True
    name = f"gateway_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        admin.close()


@pytest.fixture(scope="session")
def make_database(database_url: str) -> Iterator[callable]:
    """Creates extra empty databases (migration tests); all dropped at the end of the run."""
    admin = psycopg2.connect(ADMIN_URL)
    admin.autocommit = True
    created: list[str] = []

    def make() -> str:
        name = f"gateway_test_{uuid.uuid4().hex[:12]}"
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return _with_database(ADMIN_URL, name)

    yield make
    with admin.cursor() as cur:
        for name in created:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    admin.close()


def test_settings(database_url: str, **overrides: object) -> dict[str, object]:
    """Settings every test app starts from."""
    return {
        "environment": "test",
        "database_url": database_url,
        "jwt_secret_key": TEST_SECRET,
        "db_connect_deadline": 5.0,
        **overrides,
    }


test_settings.__test__ = False  # a helper, not a test


@pytest.fixture(scope="session")
def app(database_url: str):
    app = create_app(test_settings(database_url))
    upgrade_database(app)
    yield app
    close_runtime(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def fake():
    """The fake LLM upstream (Anthropic and OpenAI wire formats), one per test module."""
    with FakeLLM() as server:
        yield server


@pytest.fixture
def providers(fake):
    """Providers aimed at ``fake``; their SDK clients are closed afterwards."""
    fake.reset()
    made = Providers(fake)
    yield made
    made.close()


@pytest.fixture
def make_hub():
    """MCP hubs for tests that break their servers; all closed at the end."""
    hubs: list[MCPHub] = []

    def make(*configs, **options):
        options.setdefault("first_use_wait", 10)
        options.setdefault("backoff_initial", 0.1)
        hubs.append(MCPHub(configs, **options))
        return hubs[-1]

    yield make
    for hub in hubs:
        hub.close()


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """TRUNCATE every table after a test that used the shared app."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()
