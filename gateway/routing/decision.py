"""The routing outcome as data: what was offered, why, and how long each stage took."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutingDecision:
    """Servers and tools offered for one prompt, with the evidence behind the choice."""

    prompt: str
    servers: tuple[str, ...]
    tools: tuple[str, ...]
    scores: Mapping[str, float]
    method: str
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    pinned: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for API responses and stored turns."""
        return {
            "servers": list(self.servers),
            "tools": list(self.tools),
            "scores": {name: round(score, 4) for name, score in self.scores.items()},
            "method": self.method,
            "latency_ms": {stage: round(ms, 3) for stage, ms in self.latency_ms.items()},
            "pinned": list(self.pinned),
        }


def format_decision(decision: RoutingDecision, *, width: int = 80, top: int = 3) -> str:
    """The one-line summary operators grep for."""
    prompt = " ".join(decision.prompt.split())
    if len(prompt) > width:
        prompt = prompt[: width - 1] + "…"
    target = ", ".join(decision.servers) if decision.servers else "none"
    ranked = sorted(decision.scores.items(), key=lambda item: -item[1])[:top]
    scores = ", ".join(f"{name}={score:.2f}" for name, score in ranked) or "-"
    total = decision.latency_ms.get("total", sum(decision.latency_ms.values()))
    return (
        f"🧠 Intelligent routing: '{prompt}' → {target} "
        f"(scores: {scores}; method: {decision.method}; {total:.1f} ms)"
    )


def log_decision(decision: RoutingDecision, *, log: logging.Logger | None = None) -> None:
    """Log the decision at info level; the prompt is truncated, never logged whole."""
    (log or logger).info("%s", format_decision(decision))
