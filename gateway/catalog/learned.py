"""Routing examples learned from use, read from PostgreSQL at most once per refresh interval."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway.extensions import db

logger = logging.getLogger(__name__)

# The latest prompts per tool, newest first; identical prompts count once.
LATEST_PER_TOOL = text(
    """
    SELECT server, tool, prompt FROM (
        SELECT server, tool, prompt,
               row_number() OVER (PARTITION BY server, tool ORDER BY id DESC) AS rank
        FROM routing_examples
    ) AS latest
    WHERE rank <= :limit
    ORDER BY server, tool, rank
    """
)


class LearnedExamples:
    """Per process: the examples every worker records, as ``{server__tool: [prompts]}``."""

    def __init__(self, per_tool: int, refresh_seconds: float) -> None:
        self.per_tool = per_tool
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._examples: Mapping[str, Sequence[str]] = {}
        self._version = 0
        self._checked = float("-inf")

    def current(self) -> tuple[Mapping[str, Sequence[str]], int]:
        """The examples and a version that changes when they do."""
        if self.per_tool <= 0:
            return {}, 0
        with self._lock:
            if time.monotonic() - self._checked >= self.refresh_seconds:
                self._checked = time.monotonic()
                self._reload()
            return self._examples, self._version

    def _reload(self) -> None:
        # Its own short connection: never part of (or left open in) a request's transaction.
        try:
            with db.engine.connect() as connection:
                rows = connection.execute(LATEST_PER_TOOL, {"limit": self.per_tool * 2}).all()
        except (SQLAlchemyError, RuntimeError) as error:  # DB down, or no app context
            logger.warning("routing: learned examples not read (%s); keeping the last ones", error)
            return
        examples: dict[str, list[str]] = {}
        for server, tool, prompt in rows:
            prompts = examples.setdefault(f"{server}__{tool}", [])
            if prompt not in prompts and len(prompts) < self.per_tool:
                prompts.append(prompt)
        if examples != self._examples:
            self._examples = examples
            self._version += 1
