"""Database start-up: connection options, waiting for the server, migrations once under a lock."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flask_migrate
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from gateway.extensions import db

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import scoped_session

    from gateway.settings import DatabaseSettings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")
# Any constant works; it only has to be the same in every process that migrates.
MIGRATION_LOCK_KEY = 0x6D6370677731  # "mcpgw1"
MAX_RETRY_DELAY = 5.0
# Session.info key: how many unit_of_work blocks are open on this session.
_DEPTH = "gateway.unit_of_work_depth"


class DatabaseUnavailable(Exception):
    """The database did not answer before the start-up deadline."""


@contextmanager
def unit_of_work() -> Iterator[scoped_session]:
    """The block's database work as one transaction that ends with the block.

    Commits when the block ends, rolls back when it raises (and re-raises); either way the
    session is closed, so its pooled connection is back in the pool before anything waits on
    the network: the model, an MCP tool, the client. Objects loaded inside are detached after
    it; keep plain values. A block inside another joins the outer one, which ends it.
    Also a decorator: ``@unit_of_work()``.
    """
    session = db.session
    depth = session.info.get(_DEPTH, 0)
    session.info[_DEPTH] = depth + 1
    if depth:
        try:
            yield session
        finally:
            session.info[_DEPTH] = depth
        return
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info[_DEPTH] = 0
        session.close()


def engine_options(settings: DatabaseSettings, database_url: str) -> dict[str, Any]:
    """Pool sized to the threads of one worker.

    Capacity: workers x (pool_size + max_overflow) must stay below PostgreSQL's
    max_connections (default 100); the defaults, 2 x (10 + 0) = 20, leave room for replicas.
    """
    return {
        "pool_pre_ping": True,
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": 1800,
        "connect_args": {
            "connect_timeout": settings.connect_timeout,
            "application_name": "mcp-gateway",
        },
    }


def _reason(exc: OperationalError) -> str:
    """The first line of the driver's message: host and port, never the password."""
    lines = str(exc.orig or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def wait_for_database(
    engine: Engine, *, deadline: float, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Retry with capped exponential backoff, one log line per attempt, until ``deadline`` s."""
    started = time.monotonic()
    delay = 0.5
    attempt = 0
    while True:
        attempt += 1
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            remaining = deadline - (time.monotonic() - started)
            if remaining <= 0:
                raise DatabaseUnavailable(
                    f"database not reachable after {attempt} attempts in {deadline:g} s: "
                    f"{_reason(exc)}"
                ) from None
            wait = min(delay, remaining)
            log.warning(
                "⏳ Database not reachable (attempt %d): %s; retrying in %.1f s",
                attempt,
                _reason(exc),
                wait,
            )
            sleep(wait)
            delay = min(delay * 2, MAX_RETRY_DELAY)
            continue
        if attempt > 1:
            log.info("Database reachable after %d attempts", attempt)
        return


def _current_revision(conn: Connection) -> str | None:
    revision = MigrationContext.configure(conn).get_current_revision()
    conn.rollback()
    return revision


def upgrade_database(app: Flask) -> str:
    """Apply pending migrations once, whichever of several starting processes gets the lock.

    Returns "created", "migrated" or "up to date".
    """
    from gateway.services import get_services  # services import the database layer

    settings = get_services(app).settings.database
    with app.app_context():
        engine = db.engine
        wait_for_database(engine, deadline=settings.connect_deadline)
        head = ScriptDirectory(MIGRATIONS_DIR).get_current_head()
        with engine.connect() as conn:
            # Session-level lock: other processes wait here until the schema is at head.
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                current = _current_revision(conn)
                if current == head:
                    outcome = "up to date"
                else:
                    flask_migrate.upgrade(directory=MIGRATIONS_DIR)
                    outcome = "created" if current is None else "migrated"
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                conn.commit()
        engine.dispose()
    if outcome == "created":
        log.info("✅ Database tables created successfully")
    elif outcome == "migrated":
        log.info("✅ Database migrated from %s to %s", current, head)
    else:
        log.info("✅ Database tables up to date")
    return outcome


def database_ready(timeout_ms: int = 2000) -> bool:
    """True when the database answers a trivial query within ``timeout_ms``."""
    try:
        with db.engine.connect() as conn:
            conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
            conn.execute(text("SELECT 1"))
            conn.rollback()
    except Exception:  # any failure means "not ready"; the log says why
        log.warning("readiness: database check failed", exc_info=True)
        return False
    return True
