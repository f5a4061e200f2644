"""Routing knobs in one frozen dataclass, so every stage can be switched and tuned from config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any


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

    # Selection, recall first: a server is offered when its fused score clears ``threshold`` and
    # is within ``relative_threshold`` of the best one, at most ``max_servers`` and
    # ``tool_budget`` tools (chosen from the recall/tools curve on the datasets' even halves;
    # docs/routing.md).
    threshold: float = 0.15
    relative_threshold: float = 0.5
    max_servers: int = 8
    tool_budget: int = 15
    # At most this many tools per offered server, its best-ranked ones (0: no cap): more servers
    # for the same budget, and ``find_tools`` reaches the rest.
    tools_per_server: int = 3
    # Plain chat: no tool (only the tool search) when the prompt's dense similarity to the
    # plain-chat examples (data/plain-chat.txt) leads its best tool's by this much (1 disables),
    # unless a server scores ``chat_below`` or more (a confident match is not chat).
    chat_margin: float = -0.1
    chat_below: float = 0.5
    # Lexical stage (always on): BM25F field weights.
    lexical_weights: Mapping[str, float] = field(default_factory=_default_field_weights)
    # A server's score mixes its own document with its best tools: servers are rarely described
    # as well as the tools that do the work.
    server_doc_weight: float = 0.4
    second_tool_weight: float = 0.15
    # Tool ranking: a tool inherits this share of its server's score.
    tool_server_weight: float = 0.3
    # Multi-part prompts: up to ``max_clauses`` parts are also scored on their own by the dense
    # stage and each document keeps its best match, parts counting ``clause_weight`` (1 disables
    # splitting).
    max_clauses: int = 4
    clause_weight: float = 0.9
    # Needs implied by file paths and URLs, scored as extra parts of the prompt (dense stage).
    implied_needs: bool = True
    implied_weight: float = 0.9
    # Conversation context: earlier user turns, newest first, each counting less.
    history_turns: int = 3
    history_weight: float = 0.5
    # Semantic stage: "local" (bundled model) or "endpoint" (OpenAI-compatible /v1/embeddings).
    semantic: bool = True
    semantic_backend: str = "local"
    # Local models: "minilm" (~0.26 ms per prompt token here), "wordllama" (~0.1 ms per prompt,
    # weaker) or both blended (the measured best, at MiniLM's cost).
    local_model: str = "minilm+wordllama"
    # Cheaper first stage (local backend): English prompts are scored with this static model
    # ("wordllama", ~0.1 ms) and the local model runs only when the first stage's best server
    # scores under ``escalate_below`` ("none": the local model for every prompt).
    first_stage: str = "wordllama"
    escalate_below: float = 0.35
    # Prompts that do not look English are scored by a multilingual encoder instead of the local
    # model (local backend only; an embeddings endpoint is assumed to pick its own model).
    multilingual: bool = True
    embeddings_url: str = ""
    embeddings_model: str = ""
    semantic_weight: float = 0.5
    # Mix generic example requests, built from each tool's own name and description, into its
    # vector; costs three encodes per tool once per catalog.
    example_requests: bool = True
    # Learning from use: the latest prompts whose turn called a tool successfully are mixed into
    # that tool's vector, at most this many per tool (0 turns it off); re-read this often (s).
    learned_examples: int = 20
    learn_refresh_seconds: float = 60.0
    # The model's own tool search (``find_tools``), offered when the catalog holds more tools
    # than the turn got: tools listed per search, and tools one turn can add in all.
    tool_search: bool = True
    search_results: int = 8
    search_max_added: int = 16
    # Optional LLM router for low-confidence decisions, between these two fused scores.
    llm_router: bool = False
    llm_floor: float = 0.1
    llm_confident: float = 0.4

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("routing threshold must be within [0, 1]")
        if self.max_servers < 1 or self.tool_budget < 1:
            raise ValueError("routing max_servers and tool_budget must be at least 1")
        if self.semantic_backend not in ("local", "endpoint"):
            raise ValueError("routing semantic_backend must be 'local' or 'endpoint'")
        if self.local_model not in ("minilm", "wordllama", "minilm+wordllama"):
            raise ValueError("routing local_model must be minilm, wordllama or minilm+wordllama")
        if self.tools_per_server < 0:
            raise ValueError("routing tools_per_server must be >= 0")
        if self.first_stage not in ("wordllama", "none"):
            raise ValueError("routing first_stage must be wordllama or none")
        if not 0.0 <= self.semantic_weight <= 1.0:
            raise ValueError("routing semantic_weight must be within [0, 1]")
        if self.search_results < 1 or self.search_max_added < 0:
            raise ValueError("routing search_results must be >= 1 and search_max_added >= 0")

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], *, prefix: str = "ROUTING_"
    ) -> RoutingSettings:
        """Settings from config keys such as ``ROUTING_THRESHOLD``; strings are converted."""
        known = {f.name: f for f in fields(cls)}
        changes: dict[str, Any] = {}
        if values.get(f"{prefix}EMBEDDINGS_URL") and f"{prefix}SEMANTIC_BACKEND" not in values:
            changes["semantic_backend"] = "endpoint"  # a URL alone means "use it"
        for key, raw in values.items():
            if not key.upper().startswith(prefix):
                continue
            name = key[len(prefix) :].lower()
            if name not in known:
                raise ValueError(f"unknown routing setting {key}")
            default = getattr(cls(), name)
            changes[name] = _convert(raw, default, key)
        return replace(cls(), **changes)


def _convert(raw: Any, default: Any, key: str) -> Any:
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key} must be a boolean")
    if isinstance(default, Mapping):
        if not isinstance(raw, Mapping):
            raise ValueError(f"{key} must be a mapping of field weights")
        return MappingProxyType({**default, **{k: float(v) for k, v in raw.items()}})
    try:
        return type(default)(raw)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{key} must be a {type(default).__name__}") from error
