"""Routing knobs in one frozen dataclass, so every stage can be switched and tuned from config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def _default_field_weights() -> Mapping[str, float]:
    return MappingProxyType(
        {
            "server_name": 2.0,
            "server_keywords": 2.0,
            "server_description": 1.0,
            "server_tools": 0.3,
            "tool_name": 2.0,
            "tool_description": 1.0,
            "tool_params": 0.4,
            "tool_server": 0.5,
        }
    )


@dataclass(frozen=True)
class RoutingSettings:
    """How the router ranks and selects; defaults are the shipped, measured configuration."""

    # Selection: a server is offered when its fused score clears ``threshold`` and is within
    # ``relative_threshold`` of the best one, at most ``max_servers`` and ``tool_budget`` tools.
    threshold: float = 0.2
    relative_threshold: float = 0.5
    max_servers: int = 3
    tool_budget: int = 40
    # Lexical stage (always on): BM25F field weights.
    lexical_weights: Mapping[str, float] = field(default_factory=_default_field_weights)
    # A server's score mixes its own document with its best tools: servers are rarely described
    # as well as the tools that do the work.
    server_doc_weight: float = 0.4
    second_tool_weight: float = 0.15
    # Tool ranking: a tool inherits this share of its server's score.
    tool_server_weight: float = 0.3
    # Multi-part prompts: up to ``max_clauses`` parts are also scored on their own and each
    # document keeps its best match, parts counting ``clause_weight`` (1 disables splitting).
    max_clauses: int = 4
    clause_weight: float = 0.9
    # Needs implied by file paths and URLs, scored as extra parts of the prompt.
    implied_needs: bool = True
    implied_weight: float = 0.45
    # Conversation context: earlier user turns, newest first, each counting less.
    history_turns: int = 3
    history_weight: float = 0.5
    # Semantic stage: "local" (bundled model) or "endpoint" (OpenAI-compatible /v1/embeddings).
    semantic: bool = True
    semantic_backend: str = "local"
    embeddings_url: str = ""
    embeddings_model: str = ""
    semantic_weight: float = 0.5
    # Mix generic example requests, built from each tool's own name and description, into its
    # vector; costs three encodes per tool once per catalog.
    example_requests: bool = True
    # Optional LLM router for low-confidence decisions, between these two fused scores.
    llm_router: bool = False
    llm_floor: float = 0.1
    llm_confident: float = 0.4
