"""Re-reading the mcpServers file without a restart, in every worker and replica."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from gateway.database import unit_of_work
from gateway.errors import ValidationFailed
from gateway.extensions import db
from gateway.mcp import MCPConfigError, MCPHub, load_mcp_config
from gateway.models import RuntimeState

log = logging.getLogger(__name__)

GENERATION_KEY = "mcp_config_generation"
CHECK_SECONDS = 5.0


@unit_of_work()
def bump_generation() -> int:
    """Tell every worker (through the database) that the config file changed."""
    statement = (
        postgresql.insert(RuntimeState)
        .values(key=GENERATION_KEY, value=1)
        .on_conflict_do_update(
            index_elements=[RuntimeState.key], set_={"value": RuntimeState.value + 1}
        )
    )
    db.session.execute(statement)
    return current_generation()


@unit_of_work()
def current_generation() -> int:
    value = db.session.scalar(select(RuntimeState.value).where(RuntimeState.key == GENERATION_KEY))
    return value or 0


def read_config(path: str, environ: Mapping[str, str]) -> list:
    """The file as it is now, ``${VAR}`` expanded from ``environ``; a bad file is a 422 naming
    the server and field."""
    try:
        return load_mcp_config(path, environ)
    except MCPConfigError as exc:
        raise ValidationFailed(f"The MCP config is invalid: {exc}") from None


class ConfigWatcher:
    """Applies a reload asked for through another worker, checking at most every few seconds."""

    def __init__(self, hub: MCPHub, path: str, environ: Mapping[str, str]) -> None:
        self.hub = hub
        self.path = path
        self.environ = environ
        self.generation: int | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def reload_now(self) -> None:
        """Re-read the file here and tell the other workers."""
        configs = read_config(self.path, self.environ)
        with self._lock:
            self.hub.reload(configs)
            self.generation = bump_generation()
        log.info("MCP config reloaded from %s: %d servers", self.path, len(configs))

    def check(self) -> None:
        if time.monotonic() - self._checked_at < CHECK_SECONDS:
            return
        with self._lock:
            self._checked_at = time.monotonic()
            generation = current_generation()
            if self.generation is None:
                self.generation = generation
            elif generation != self.generation:
                self.generation = generation
                try:
                    self.hub.reload(load_mcp_config(self.path, self.environ))
                except MCPConfigError as exc:
                    log.error("MCP config reload skipped: %s", exc)
                    return
                log.info("MCP config reloaded (generation %d)", generation)
