"""``find_tools``: a tool search the model can call when a turn was offered part of the catalog.

Routing offers the tools it ranks best; when it misses, the model would be stranded. With this
gateway tool the model can search the whole live catalog in its own words (models write tool
searches well, in English, whatever the user's language) and the tools found are offered from
the next round of the same turn. The same idea as the tool-search tools model vendors document
for large catalogs, built here once for every provider and every MCP server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from gateway.llm.types import ToolCall, wire_name
from gateway.routing import Router
from gateway.tools import GATEWAY_SERVER, Tool, ToolResult

SEARCH_SERVER = GATEWAY_SERVER
SEARCH_TOOL = "find_tools"
MAX_QUERY_CHARS = 500
MAX_DESCRIPTION_CHARS = 200

DESCRIPTION = (
    "Search every tool this gateway can use (not only the ones offered now) and make the best "
    "matches available from your next step. Call it when no offered tool fits the request. "
    "Describe the action you need in a few English words, e.g. 'current time in a time zone'."
)


@dataclass
class ToolSearch:
    """One turn's ``find_tools``: searches ``router``'s catalog, adds at most ``max_added`` tools.

    ``servers`` limits the search (a turn pinned to servers by the request or an ``@mention``
    searches only those); ``offered`` are the tools the turn already has. The catalog holds only
    approved tool definitions, so a withheld (unapproved) tool is never found. Every search is
    kept in ``searches`` for the routing record.
    """

    router: Router
    offered: Collection[str]
    servers: Collection[str] | None = None
    results: int = 8
    max_added: int = 16
    searches: list[dict[str, Any]] = field(default_factory=list)
    tool: Tool = field(init=False)
    _added: list[str] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.tool = Tool(
            server=SEARCH_SERVER,
            name=SEARCH_TOOL,
            description=DESCRIPTION,
            input_schema={
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "description": "What the tool should do, in a few words.",
                    }
                },
                "required": ["query"],
            },
            read_only=True,
            idempotent=True,
        )

    @classmethod
    def worth_offering(
        cls, router: Router, offered: Collection[str], servers: Collection[str] | None
    ) -> bool:
        """Whether the searchable catalog holds a tool the turn does not have yet."""
        return any(
            t.qualified_name not in offered and (servers is None or t.server in servers)
            for t in router.catalog.tools
        )

    @property
    def added(self) -> list[str]:
        """Qualified names of the tools this turn's searches made available, in order."""
        return list(self._added)

    def run(self, call: ToolCall) -> tuple[ToolResult, tuple[Tool, ...]]:
        """Search with ``call.arguments["query"]``; the result lists the matches as JSON."""
        query = call.arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            return ToolResult.error("find_tools needs a non-empty 'query' string."), ()
        query = " ".join(query.split())[:MAX_QUERY_CHARS]
        # The strongest ranking the router has: a search is rare and worth the transformer.
        ranking = self.router.rank(query, thorough=True)
        hits: list[Tool] = []
        for index in range(len(ranking.tools)):
            tool, score = ranking.tools[index]
            if score <= 0 or len(hits) >= self.results:
                break
            if self.servers is None or tool.server in self.servers:
                hits.append(tool)
        with self._lock:
            new: list[Tool] = []
            for tool in hits:
                name = tool.qualified_name
                if name in self.offered or name in self._added:
                    continue
                if len(self._added) >= self.max_added:
                    break
                self._added.append(name)
                new.append(tool)
            available = set(self.offered) | set(self._added)
            self.searches.append(
                {
                    "query": query,
                    "found": [t.qualified_name for t in hits],
                    "added": [t.qualified_name for t in new],
                }
            )
        listed = [
            {
                "name": wire_name(t),
                "server": t.server,
                "tool": t.name,
                "description": _one_line(t.description),
            }
            for t in hits
            if t.qualified_name in available
        ]
        if listed:
            note = "These tools are available to call from your next step."
        elif hits:
            note = f"No more tools can be added in this turn (at most {self.max_added})."
        else:
            note = "No tool matches; answer without one or search with other words."
        text = json.dumps({"tools": listed, "note": note}, ensure_ascii=False)
        return ToolResult(content=({"type": "text", "text": text},)), tuple(new)

    def record(self) -> dict[str, Any]:
        """The routing record's ``tool_search`` entry."""
        return {"offered": True, "searches": list(self.searches), "added": self.added}


def _one_line(text: str) -> str:
    line = " ".join((text or "").split())
    if len(line) > MAX_DESCRIPTION_CHARS:
        line = line[: MAX_DESCRIPTION_CHARS - 1] + "…"
    return line
