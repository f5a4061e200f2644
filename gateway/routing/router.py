"""Rank servers and tools for a prompt, then choose what to offer the model."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from gateway.routing.catalog import Catalog, ServerDescriptor
from gateway.routing.decision import RoutingDecision
from gateway.routing.encoders import encoder_for, first_stage_encoder, multilingual_encoder
from gateway.routing.lexical import LexicalIndex
from gateway.routing.semantic import EmbeddingCache, Encoder, SemanticIndex, plain_chat_examples
from gateway.routing.settings import RoutingSettings
from gateway.routing.text import (
    clauses,
    example_requests,
    implied_needs,
    looks_english,
    mentions,
    query_terms,
    schema_text,
    slug,
    split_identifier,
    without_closing_punctuation,
)
from gateway.tools import Tool


@dataclass(frozen=True)
class ServerScore:
    """A server's fused score and the parts it was made from (for ``explain``)."""

    name: str
    score: float
    lexical: float
    semantic: float | None
    best_tool: str | None


class RankedTools(Sequence[tuple[Tool, float]]):
    """Tools in rank order with their scores, materialized only as far as they are read."""

    def __init__(self, tools: Sequence[Tool], order: np.ndarray, scores: np.ndarray) -> None:
        self._tools = tools
        self.order = order
        self.scores = scores

    def __len__(self) -> int:
        return len(self.order)

    @overload
    def __getitem__(self, index: int) -> tuple[Tool, float]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[Tool, float]]: ...

    def __getitem__(self, index: int | slice) -> tuple[Tool, float] | list[tuple[Tool, float]]:
        if isinstance(index, slice):
            return [(self._tools[i], float(self.scores[i])) for i in self.order[index]]
        i = self.order[index]
        return self._tools[i], float(self.scores[i])


class RankedServers(Sequence[ServerScore]):
    """Servers in rank order with their scores; a ``ServerScore`` is built only when read (a
    decision reads a handful, and building all of them cost a fifth of a cheap decision)."""

    def __init__(
        self,
        names: Sequence[str],
        tools: Sequence[Tool],
        scores: np.ndarray,
        lexical: np.ndarray,
        semantic: np.ndarray | None,
        best: np.ndarray,
    ) -> None:
        self._names = names
        self._tools = tools
        self.scores = scores
        self._lexical = lexical
        self._semantic = semantic
        self._best = best
        self.order = np.argsort(-scores, kind="stable")

    def __len__(self) -> int:
        return len(self.order)

    @overload
    def __getitem__(self, index: int) -> ServerScore: ...

    @overload
    def __getitem__(self, index: slice) -> list[ServerScore]: ...

    def __getitem__(self, index: int | slice) -> ServerScore | list[ServerScore]:
        if isinstance(index, slice):
            return [self._make(j) for j in self.order[index]]
        return self._make(self.order[index])

    def _make(self, j: int) -> ServerScore:
        best = int(self._best[j])
        return ServerScore(
            name=self._names[j],
            score=float(self.scores[j]),
            lexical=float(self._lexical[j]),
            semantic=float(self._semantic[j]) if self._semantic is not None else None,
            best_tool=self._tools[best].name if best >= 0 else None,
        )

    def names(self, limit: int | None = None) -> list[str]:
        """Server names in rank order, the first ``limit`` of them."""
        return [self._names[j] for j in self.order[:limit]]

    def above(self, floor: float, limit: int) -> list[str]:
        """Up to ``limit`` names, in rank order, of the servers scoring at least ``floor``."""
        top = self.order[:limit]
        return [self._names[j] for j in top[self.scores[top] >= floor]]


@dataclass(frozen=True)
class Ranking:
    """Every server and tool in score order, before any selection."""

    query: str
    servers: RankedServers
    tools: RankedTools
    mentioned: tuple[str, ...]
    latency_ms: dict[str, float]
    # How much closer the prompt is to plain chat than to the best tool (dense scores on [0, 1];
    # None without a dense stage): the no-tool evidence ``decide`` weighs.
    chat_lead: float | None = None


# One prompt for the English stages and one for the multilingual encoder (``Router.warm``).
WARM_PROMPTS = (
    "What can you do for me today?",
    "¿Qué puedes hacer por mí hoy? 今日は何ができますか",
)


class Router:
    """Ranks a catalog's servers and tools against a prompt and selects what to offer."""

    def __init__(
        self,
        catalog: Catalog,
        settings: RoutingSettings | None = None,
        *,
        encoder: Encoder | None = None,
        embedding_cache: EmbeddingCache | None = None,
        examples: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings or RoutingSettings()
        # Prompts that earlier led to a successful call of a tool, by qualified tool name: mixed
        # into the tool's vector, they move it to where real prompts for it land.
        self.examples = {
            name: tuple(mentions(p)[1] for p in prompts[: self.settings.learned_examples])
            for name, prompts in (examples or {}).items()
            if prompts and self.settings.learned_examples > 0
        }
        self.fingerprint = catalog.fingerprint()
        self._servers = [s.name for s in catalog.servers]
        self._tools = [t for s in catalog.servers for t in catalog.tools_of(s.name)]
        self._position = position = {name: j for j, name in enumerate(self._servers)}
        self._server_ids = np.array([position[t.server] for t in self._tools], dtype=np.int64)
        self._tool_counts = np.bincount(self._server_ids, minlength=len(self._servers))
        self._tool_starts = np.concatenate(([0], np.cumsum(self._tool_counts)[:-1])).astype(
            np.int64
        )
        self._slugs = {slug(name): name for name in self._servers}
        weights = self.settings.lexical_weights
        self._server_index = LexicalIndex(
            [self._server_fields(s) for s in catalog.servers], field_weights=weights
        )
        self._tool_index = LexicalIndex(
            [self._tool_fields(t) for t in self._tools], field_weights=weights
        )
        own_encoders = encoder is None
        if encoder is None and self.settings.semantic:
            encoder = encoder_for(self.settings)
        self._chat = plain_chat_examples() if self.settings.chat_margin < 1 else ()
        self._semantic: SemanticIndex | None = None
        self._first: SemanticIndex | None = None
        self._multilingual: SemanticIndex | None = None
        if self.settings.semantic and encoder is not None:
            self._semantic = self._index(encoder, embedding_cache)
            s = self.settings
            if own_encoders and s.semantic_backend == "local":
                first = first_stage_encoder(s)
                if first is not None:
                    self._first = self._index(first, embedding_cache)
                if s.multilingual:
                    other = multilingual_encoder()
                    if other is not None:
                        self._multilingual = self._index(other, embedding_cache)

    def _index(self, encoder: Encoder, embedding_cache: EmbeddingCache | None) -> SemanticIndex:
        return SemanticIndex(
            encoder,
            # Plain-chat examples ride along as one-text "servers" after the real ones.
            servers=[[self._server_text(s)] for s in self.catalog.servers]
            + [[text] for text in self._chat],
            tools=[self._tool_texts(t) for t in self._tools],
            # Document texts depend on settings too: key the vectors by both.
            fingerprint=":".join(
                [
                    self.fingerprint,
                    str(int(self.settings.example_requests)),
                    _digest(self.examples),
                    str(len(self._chat)),
                ]
            ),
            embedding_cache=embedding_cache,
        )

    def _server_fields(self, server: ServerDescriptor) -> dict[str, str]:
        return {
            "server_name": split_identifier(server.name),
            "server_keywords": " ".join(server.keywords),
            "server_description": server.description,
            "server_tools": " ".join(
                split_identifier(t.name) for t in self.catalog.tools_of(server.name)
            ),
        }

    @staticmethod
    def _tool_fields(tool: Tool) -> dict[str, str]:
        return {
            "tool_name": split_identifier(tool.name),
            "tool_description": tool.description,
            "tool_params": schema_text(tool.input_schema),
            "tool_server": split_identifier(tool.server),
        }

    @staticmethod
    def _server_text(server: ServerDescriptor) -> str:
        keywords = f" ({', '.join(server.keywords)})" if server.keywords else ""
        return f"{split_identifier(server.name)}{keywords}: {server.description}"

    def _tool_texts(self, tool: Tool) -> list[str]:
        """The tool's document plus generic example requests made from its own name and text.

        Mixing request-shaped sentences into a tool's vector (Tool2Vec style) moves it towards
        where prompts land; they are generated from the tool itself, never from user data.
        """
        name = split_identifier(tool.name)
        texts = [f"{name}: {tool.description}"]
        if self.settings.example_requests:
            texts += example_requests(name, tool.description)
        texts += self.examples.get(tool.qualified_name, ())
        return texts

    def warm(self) -> None:
        """Encode the catalog now (e.g. in a background thread after a catalog change), and
        score one prompt per stage: a worker's first prompt otherwise pays for what the
        first query touches (in a forked worker, copy-on-write faults on the shared models)."""
        for index in (self._first, self._semantic, self._multilingual):
            if index is not None:
                index.warm()
        for prompt in WARM_PROMPTS:
            self.rank(prompt, thorough=True)

    def forget_queries(self) -> None:
        """Drop cached prompt vectors, so a benchmark times the encoder and not the cache."""
        for index in (self._first, self._semantic, self._multilingual):
            if index is not None:
                index.cache.clear_queries()

    @property
    def semantic_enabled(self) -> bool:
        """Whether the dense stage takes part in ranking."""
        return self._semantic is not None

    def resolve(self, name: str) -> str | None:
        """The catalog's server for a user-typed name (``@git-hub`` → ``GitHub``)."""
        return self._slugs.get(slug(name.strip(".-")))

    def rank(self, prompt: str, *, history: Sequence[str] = (), thorough: bool = False) -> Ranking:
        """Score every server and tool; no selection, no overrides applied.

        With a first stage configured, English prompts are scored by it (static vectors, a
        fraction of a millisecond) and by the transformer encoder only when it is unsure (see
        ``RoutingSettings.escalate_below``) or when ``thorough`` is set (the tool search).
        """
        started = time.perf_counter()
        s = self.settings
        raw_mentions, query = mentions(prompt)
        query = without_closing_punctuation(query)
        mentioned = tuple(dict.fromkeys(n for n in map(self.resolve, raw_mentions) if n))
        # A turn pinned by an @mention offers its server whatever the scores: only the order of
        # that server's tools is left to rank, and it gets the strongest model.
        thorough = thorough or bool(mentioned)
        terms = query_terms(query)
        recent = [h for h in reversed(history) if h.strip()][: s.history_turns]
        for age, turn in enumerate(recent):
            for term, weight in query_terms(
                mentions(turn)[1], weight=s.history_weight ** (age + 1)
            ).items():
                terms[term] = max(terms.get(term, 0.0), weight)
        server_lex = _dense(self._server_index.scores(terms), len(self._servers))
        tool_lex = _dense(self._tool_index.scores(terms), len(self._tools))
        latency = {"lexical": _ms(started)}

        stages: list[tuple[SemanticIndex, str]] = []
        if self._multilingual is not None and not looks_english(query):
            stages.append((self._multilingual, "multilingual"))
        elif terms:
            if self._first is not None:
                stages.append((self._first, "first_stage"))
            if self._semantic is not None:
                stages.append((self._semantic, "semantic"))
        # Parts are scored by the dense stage only: BM25 normalized over a two-word clause
        # overrates accidental matches (measured: lexical-only recall fell with it).
        parts = clauses(query, limit=s.max_clauses) if s.max_clauses > 1 else []
        needs = implied_needs(query) if s.implied_needs else []
        fuse_started = time.perf_counter()
        fused = self._fuse(server_lex, tool_lex, None, None) if not stages else None
        latency["fusion"] = _ms(fuse_started)
        chat_lead: float | None = None
        real = len(self._servers)
        for position, (index, stage) in enumerate(stages):
            # The first stage is sure of a confident match, or of plain chat by a wide lead;
            # a narrow "plain chat" is checked by the transformer (static vectors mistake short
            # questions for chat).
            if position and not thorough and fused is not None:
                best = fused[0].max(initial=0.0)
                sure_match = best >= s.escalate_below and (
                    chat_lead is None or chat_lead < s.chat_margin
                )
                sure_chat = s.chat_sure < 1 and chat_lead is not None and chat_lead >= s.chat_sure
                if sure_match or (sure_chat and best < s.chat_below):
                    break
            sem_started = time.perf_counter()
            server_sem, tool_sem = index.scores(
                query,
                recent,
                s.history_weight,
                clauses=parts,
                clause_weight=s.clause_weight,
                extras=needs,
                extra_weight=s.implied_weight,
            )
            latency[stage] = _ms(sem_started)
            if len(server_sem) > real:
                best_tool = float(tool_sem.max(initial=0.0))
                chat_lead = float(server_sem[real:].max()) - best_tool
                server_sem = server_sem[:real]
            fuse_started = time.perf_counter()
            if stage == "multilingual":
                # BM25 over English documents cannot read the prompt: the dense scores alone.
                fused = self._fuse(server_sem, tool_sem, server_sem, tool_sem)
            else:
                fused = self._fuse(server_lex, tool_lex, server_sem, tool_sem)
            latency["fusion"] += _ms(fuse_started)
        assert fused is not None  # the loop ran at least once when there were stages
        server_scores, final, best_index, server_sem = fused
        ranked_tools = RankedTools(self._tools, np.argsort(-final, kind="stable"), final)
        servers = RankedServers(
            self._servers, self._tools, server_scores, server_lex, server_sem, best_index
        )
        latency["total"] = _ms(started)
        return Ranking(
            query=query,
            servers=servers,
            tools=ranked_tools,
            mentioned=mentioned,
            latency_ms=latency,
            chat_lead=chat_lead,
        )

    def _fuse(
        self,
        doc_lex: np.ndarray,
        tool_lex: np.ndarray,
        server_sem: np.ndarray | None,
        tool_sem: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Server scores, final tool scores, each server's best tool (-1: none) and the dense
        server scores, from the lexical and (optional) dense scores; all vectorised."""
        s = self.settings
        server_ids = self._server_ids
        tool_scores = tool_lex if tool_sem is None else _mix_arrays(tool_lex, tool_sem, s)
        docs = doc_lex if server_sem is None else _mix_arrays(doc_lex, server_sem, s)
        # Tools are stored grouped by server: sort each group by score, read its top two.
        order = np.lexsort((-tool_scores, server_ids))
        first = np.zeros(len(self._servers), dtype=np.float64)
        second = np.zeros(len(self._servers), dtype=np.float64)
        best_index = np.full(len(self._servers), -1)
        has = self._tool_counts > 0
        starts = self._tool_starts[has]
        first[has] = tool_scores[order[starts]]
        best_index[has] = np.where(first[has] > 0, order[starts], -1)
        two = self._tool_counts > 1
        second[two] = tool_scores[order[self._tool_starts[two] + 1]]
        mixed = s.server_doc_weight * docs + (1 - s.server_doc_weight) * first
        mixed += s.second_tool_weight * second
        server_scores = np.minimum(1.0, np.where(has, mixed, docs))
        final = tool_scores + s.tool_server_weight * server_scores[server_ids]
        return server_scores, final, best_index, server_sem

    def route(
        self,
        prompt: str,
        *,
        history: Sequence[str] = (),
        pinned_servers: Sequence[str] = (),
    ) -> RoutingDecision:
        """Choose the servers and tools to offer for ``prompt``."""
        ranking = self.rank(prompt, history=history, thorough=bool(pinned_servers))
        return self.decide(prompt, ranking, pinned_servers)

    def decide(
        self, prompt: str, ranking: Ranking, pinned_servers: Sequence[str] = ()
    ) -> RoutingDecision:
        """Apply overrides, threshold and budget to a ranking."""
        s = self.settings
        started = time.perf_counter()
        latency = dict(ranking.latency_ms)
        pinned = tuple(
            dict.fromkeys(
                [n for n in map(self.resolve, pinned_servers) if n] + list(ranking.mentioned)
            )
        )
        always = tuple(x.name for x in self.catalog.servers if x.always and x.name not in pinned)
        if pinned:
            chosen: list[str] = list(pinned)
            method = "pinned"
        elif (
            ranking.chat_lead is not None
            and ranking.chat_lead >= s.chat_margin
            and (not ranking.servers or ranking.servers[0].score < s.chat_below)
        ):
            chosen, method = [], "plain_chat"
        else:
            chosen = self._select(ranking)
            method = ("hybrid" if self.semantic_enabled else "lexical") if chosen else "none"
        servers = tuple(dict.fromkeys(chosen + [a for a in always if a not in chosen]))
        # A server the user named gets all its tools (up to the budget), not only its best few.
        tools = self._budget(ranking, servers, capped=not pinned)
        latency["selection"] = _ms(started)
        latency["total"] = ranking.latency_ms["total"] + latency["selection"]
        return RoutingDecision(
            prompt=prompt,
            servers=servers,
            tools=tools,
            scores={x.name: x.score for x in ranking.servers[:5] if x.score > 0},
            method=method,
            latency_ms=latency,
            pinned=pinned,
        )

    def _select(self, ranking: Ranking) -> list[str]:
        s = self.settings
        if not ranking.servers or ranking.servers[0].score < s.threshold:
            return []
        floor = max(s.threshold, s.relative_threshold * ranking.servers[0].score)
        return ranking.servers.above(floor, s.max_servers)

    def _budget(
        self, ranking: Ranking, servers: Sequence[str], *, capped: bool = True
    ) -> tuple[str, ...]:
        """Tools of the chosen servers in rank order, servers taken in order until the budget,
        each at most ``tools_per_server`` when ``capped``."""
        room = self.settings.tool_budget
        cap = (self.settings.tools_per_server if capped else 0) or room
        position = self._position
        order = ranking.tools.order
        offered: set[int] = set()
        for name in servers:
            if room <= 0:
                break
            ids = order[self._server_ids[order] == position[name]][: min(room, cap)]
            offered.update(ids.tolist())
            room -= len(ids)
        kept = order[np.isin(order, np.fromiter(offered, dtype=np.int64, count=len(offered)))]
        return tuple(self._tools[i].qualified_name for i in kept)

    def explain(self, prompt: str, *, history: Sequence[str] = (), limit: int = 10) -> str:
        """A plain-text table of the ranking and the decision, for the CLI."""
        ranking = self.rank(prompt, history=history)
        decision = self.decide(prompt, ranking)
        lines = [
            f"query: {ranking.query!r}",
            f"decision: {', '.join(decision.servers) or 'none'} (method: {decision.method})",
            "",
            f"{'':2}{'server':<36} {'score':>6} {'lexical':>8} {'semantic':>9}  best tool",
        ]
        for x in ranking.servers[:limit]:
            mark = "* " if x.name in decision.servers else "  "
            sem = f"{x.semantic:9.3f}" if x.semantic is not None else f"{'-':>9}"
            best = x.best_tool or "-"
            lines.append(f"{mark}{x.name[:36]:<36} {x.score:6.3f} {x.lexical:8.3f} {sem}  {best}")
        lines += ["", f"{'':2}{'tool':<56} {'score':>6}"]
        for tool, score in ranking.tools[:limit]:
            mark = "* " if tool.qualified_name in decision.tools else "  "
            lines.append(f"{mark}{tool.server[:24] + '/' + tool.name[:31]:<56} {score:6.3f}")
        timing = ", ".join(f"{k} {v:.2f} ms" for k, v in decision.latency_ms.items())
        lines += ["", f"latency: {timing}"]
        return "\n".join(lines)


def _dense(scores: dict[int, float], size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.float64)
    if scores:
        out[np.fromiter(scores.keys(), dtype=np.int64)] = np.fromiter(scores.values(), float)
    return out


def _mix_arrays(lexical: np.ndarray, semantic: np.ndarray, s: RoutingSettings) -> np.ndarray:
    return (1 - s.semantic_weight) * lexical + s.semantic_weight * np.asarray(semantic, float)


def _digest(examples: Mapping[str, Sequence[str]]) -> str:
    """A short, stable fingerprint of the learned examples (they change the tool vectors)."""
    if not examples:
        return "-"
    blob = json.dumps(sorted((k, list(v)) for k, v in examples.items()), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
