"""Intelligent routing: which MCP servers and tools to offer the model for a prompt."""

from __future__ import annotations

from gateway.routing.catalog import Catalog, ServerDescriptor
from gateway.routing.decision import RoutingDecision, format_decision, log_decision
from gateway.routing.router import Ranking, Router, ServerScore
from gateway.routing.settings import RoutingSettings

__all__ = [
    "Catalog",
    "Ranking",
    "Router",
    "RoutingDecision",
    "RoutingSettings",
    "ServerDescriptor",
    "ServerScore",
    "explain",
    "format_decision",
    "log_decision",
]


def explain(router: Router, prompt: str) -> str:
    """The ranking table that ``flask routing explain`` prints."""
    return router.explain(prompt)
