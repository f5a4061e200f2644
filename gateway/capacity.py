"""Connection arithmetic: the pools of every worker must fit in PostgreSQL's max_connections.

DB_POOL_SIZE and DB_MAX_OVERFLOW are per worker process, so the gateway may open
workers x (pool_size + max_overflow) connections; more than the server allows gives
"too many clients" errors under load, on every endpoint at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine

from gateway.settings import ConfigError, Settings

log = logging.getLogger(__name__)

# Above this share of the server's connections there is no room for a second replica,
# migrations or an operator's psql.
WARN_SHARE = 0.8
# A request holds a connection only around its database work, never while the model or a
# tool answers (seconds), so many threads share one connection; past this many they queue.
THREADS_PER_CONNECTION = 8


@dataclass(frozen=True)
class Capacity:
    workers: int
    threads: int
    pool_size: int
    max_overflow: int
    max_connections: int
    reserved: int

    @property
    def per_worker(self) -> int:
        return self.pool_size + self.max_overflow

    @property
    def needed(self) -> int:
        return self.workers * self.per_worker

    @property
    def available(self) -> int:
        """Connections ordinary roles may open: superusers keep a reserve of their own."""
        return self.max_connections - self.reserved

    def problems(self) -> tuple[list[str], list[str]]:
        """(errors, warnings) in one line each, naming the settings to change."""
        errors, warnings = [], []
        if self.needed > self.available:
            errors.append(
                f"GUNICORN_WORKERS x (DB_POOL_SIZE + DB_MAX_OVERFLOW) = {self.workers} x "
                f"{self.per_worker} = {self.needed} connections, but PostgreSQL allows "
                f"{self.available} (max_connections {self.max_connections} - "
                f"{self.reserved} reserved)"
            )
        elif self.needed > WARN_SHARE * self.available:
            warnings.append(
                f"the workers' pools may use {self.needed} of PostgreSQL's {self.available} "
                "connections: little room for replicas, migrations or psql"
            )
        if self.threads > THREADS_PER_CONNECTION * self.per_worker:
            warnings.append(
                f"GUNICORN_THREADS={self.threads} exceeds {THREADS_PER_CONNECTION} x "
                f"(DB_POOL_SIZE + DB_MAX_OVERFLOW) = {THREADS_PER_CONNECTION * self.per_worker}: "
                "under load, requests wait DB_POOL_TIMEOUT for a connection and then answer 503"
            )
        return errors, warnings


def server_limits(engine: Engine) -> tuple[int, int]:
    """PostgreSQL's max_connections and superuser_reserved_connections."""
    with engine.connect() as conn:
        max_connections = int(conn.execute(text("SHOW max_connections")).scalar_one())
        reserved = int(conn.execute(text("SHOW superuser_reserved_connections")).scalar_one())
    return max_connections, reserved


def check_capacity(engine: Engine, settings: Settings, *, workers: int, threads: int) -> Capacity:
    """Refuse to start when the pools cannot fit; warn when they barely do or threads queue."""
    max_connections, reserved = server_limits(engine)
    capacity = Capacity(
        workers=workers,
        threads=threads,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        max_connections=max_connections,
        reserved=reserved,
    )
    errors, warnings = capacity.problems()
    for warning in warnings:
        log.warning("capacity: %s", warning)
    if errors:
        raise ConfigError(errors[0])
    log.info(
        "capacity: %d workers x %d connections = %d of PostgreSQL's %d",
        workers,
        capacity.per_worker,
        capacity.needed,
        capacity.available,
    )
    return capacity
