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
    # The first stage decides plain chat alone when its own lead is at least this (1: the
    # transformer always checks): measured, 0.25 loses no offered recall on any dataset and runs
    # the transformer for 40 % of plain-chat prompts instead of 75-85 % (docs/routing.md).
    chat_sure: float = 0.25
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

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("ROUTING_THRESHOLD: must be within [0, 1]")
        if self.max_servers < 1 or self.tool_budget < 1:
            raise ValueError(
                "ROUTING_MAX_SERVERS: ROUTING_MAX_SERVERS and ROUTING_TOOL_BUDGET "
                "must be at least 1"
            )
        if self.semantic_backend not in ("local", "endpoint"):
            raise ValueError("ROUTING_SEMANTIC_BACKEND: must be 'local' or 'endpoint'")
        if self.local_model not in ("minilm", "wordllama", "minilm+wordllama"):
            raise ValueError("ROUTING_LOCAL_MODEL: must be minilm, wordllama or minilm+wordllama")
        if self.tools_per_server < 0:
            raise ValueError("ROUTING_TOOLS_PER_SERVER: must be >= 0")
        if self.first_stage not in ("wordllama", "none"):
            raise ValueError("ROUTING_FIRST_STAGE: must be wordllama or none")
        if not 0.0 <= self.semantic_weight <= 1.0:
            raise ValueError("ROUTING_SEMANTIC_WEIGHT: must be within [0, 1]")
        if self.search_results < 1 or self.search_max_added < 0:
            raise ValueError(
                "ROUTING_SEARCH_RESULTS: ROUTING_SEARCH_RESULTS must be >= 1 and "
                "ROUTING_SEARCH_MAX_ADDED >= 0"
            )
        # Weights given in part (ROUTING_LEXICAL_WEIGHTS) count over the defaults.
        weights = {**_default_field_weights(), **self.lexical_weights}
        object.__setattr__(self, "lexical_weights", MappingProxyType(weights))


# What each ROUTING_<FIELD> variable does, for README's configuration table (gateway.settings);
# every field of RoutingSettings can be set that way.
ROUTING_DOCS = {
    "threshold": "a server is offered when its fused score clears this",
    "relative_threshold": "... and is within this share of the best server's score",
    "max_servers": "servers offered per turn at most",
    "tool_budget": "tools offered per turn at most",
    "lexical_weights": 'JSON `{"field": weight}`: BM25F field weights, over the defaults',
    "server_doc_weight": "weight of a server's own document against its best tools",
    "second_tool_weight": "weight of a server's second-best tool",
    "tool_server_weight": "share of its server's score a tool inherits",
    "max_clauses": "parts of a multi-part prompt scored on their own (1: no splitting)",
    "clause_weight": "weight of such a part",
    "implied_needs": "score needs implied by file paths and URLs",
    "implied_weight": "weight of an implied need",
    "history_turns": "earlier user turns that count, newest first",
    "history_weight": "weight of an earlier turn",
    "semantic": "the embedding stage of the router (off: lexical only)",
    "semantic_backend": "`local` (bundled model) or `endpoint` (`ROUTING_EMBEDDINGS_URL`)",
    "local_model": "local embedding models: both blended (best measured), `minilm`, or "
    "`wordllama` alone (~0.1 ms per prompt, for high request rates)",
    "multilingual": "prompts that do not look English go to a multilingual encoder",
    "embeddings_url": "an OpenAI-compatible `/v1/embeddings` endpoint instead of the local "
    "model (sets `ROUTING_SEMANTIC_BACKEND=endpoint`)",
    "embeddings_model": "the model asked of that endpoint",
    "semantic_weight": "weight of the semantic score against the lexical one",
    "example_requests": "mix generic example requests into each tool's vector",
    "learned_examples": "learning from use: per tool, how many of the latest prompts whose turn "
    "called it successfully are mixed into its vector (0: off; deleted with their conversation)",
    "learn_refresh_seconds": "how often each worker re-reads the learned prompts",
    "tool_search": "offer the model a `find_tools` search when the catalog holds more tools "
    "than the turn got",
    "search_results": "tools listed per search",
    "search_max_added": "tools one turn can add through search in all",
    "tools_per_server": "tools offered per server at most (a server the user named: all, up to "
    "the budget)",
    "first_stage": "the cheap first stage scored for every English prompt (`wordllama`), the "
    "local model only when it is unsure; `none`: the local model for every prompt",
    "escalate_below": "the local model runs when the first stage's best server scores under this",
    "chat_margin": "plain chat gets no tool (only `find_tools`) when the prompt is this much "
    "closer to the plain-chat examples than to any tool ...",
    "chat_below": "... and no server scores this (`1`: off)",
    "chat_sure": "the first stage decides plain chat without the local model when the prompt "
    "leads by this much on its static vectors (`1`: the local model always checks)",
}
