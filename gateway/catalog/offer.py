"""The tools offered on one turn: live MCP tools, pinned definitions only, ranked by the router."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.catalog.learned import LearnedExamples
from gateway.catalog.pins import PinCache
from gateway.catalog.reload import ConfigWatcher
from gateway.catalog.search import ToolSearch
from gateway.mcp import MCPHub, ServerConfig
from gateway.routing import Catalog, Router, RoutingDecision, RoutingSettings, ServerDescriptor
from gateway.tools import Tool


@dataclass(frozen=True)
class Offer:
    """The routing decision and the tools it selected, in rank order; ``search`` is the turn's
    ``find_tools`` when the searchable catalog holds more than was offered."""

    decision: RoutingDecision
    tools: tuple[Tool, ...]
    search: ToolSearch | None = None


class ToolOffer:
    """Per-process: the router, rebuilt only when the live catalog changes."""

    def __init__(self, hub: MCPHub, settings: RoutingSettings, watcher: ConfigWatcher) -> None:
        self.hub = hub
        self.settings = settings
        self.watcher = watcher
        self.pins = PinCache()
        self._lock = threading.Lock()
        self._key: object = None
        self._router: Router | None = None
        self.examples = LearnedExamples(settings.learned_examples, settings.learn_refresh_seconds)

    def router(self) -> Router:
        """The router over the tools that are usable now (ready servers, approved definitions)."""
        self.watcher.check()
        tools = self.pins.approved(self.hub.list_tools())
        configs = [c for c in self.hub.configs if c.enabled]
        examples, version = self.examples.current()
        key = (
            tuple((c.name, c.description, c.keywords, c.always) for c in configs),
            tuple((t.server, t.name, t.description) for t in tools),
            version,
        )
        with self._lock:
            if self._router is None or key != self._key:
                self._router = Router(
                    Catalog.build(map(_descriptor, configs), tools),
                    self.settings,
                    examples=examples,
                )
                self._key = key
            return self._router

    def offer(
        self, prompt: str, *, history: Sequence[str] = (), pinned: Sequence[str] = ()
    ) -> Offer:
        router = self.router()
        decision = router.route(prompt, history=history, pinned_servers=pinned)
        by_name = {t.qualified_name: t for t in router.catalog.tools}
        tools = tuple(by_name[n] for n in decision.tools if n in by_name)
        return Offer(decision, tools, self._search(router, decision, tools))

    def _search(
        self, router: Router, decision: RoutingDecision, tools: Sequence[Tool]
    ) -> ToolSearch | None:
        """The turn's tool search; a pinned turn (request or ``@mention``) searches only its
        own servers."""
        s = self.settings
        if not s.tool_search:
            return None
        offered = frozenset(t.qualified_name for t in tools)
        servers = frozenset(decision.servers) if decision.pinned else None
        if not ToolSearch.worth_offering(router, offered, servers):
            return None
        return ToolSearch(
            router, offered, servers, results=s.search_results, max_added=s.search_max_added
        )


def _descriptor(config: ServerConfig) -> ServerDescriptor:
    return ServerDescriptor(
        name=config.name,
        description=config.description or "",
        keywords=tuple(config.keywords),
        always=config.always,
    )
