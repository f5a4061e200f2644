"""Dense stage: an encoder interface, a per-catalog vector cache and cosine scoring."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import requests

from gateway.routing.text import without_closing_punctuation


class Encoder(Protocol):
    """Turns texts into L2-normalized vectors; ``name`` identifies the model for caching."""

    name: str
    # Cosine below ``floor`` means unrelated and above ``ceiling`` a near paraphrase: the pair
    # maps raw similarities onto [0, 1] so the lexical and dense scores can be added.
    floor: float
    ceiling: float

    def encode(self, texts: Sequence[str], *, query: bool) -> np.ndarray: ...


class EmbeddingCache:
    """Document vectors per (encoder, catalog fingerprint), the vectors of each document text so
    that a changed catalog encodes only its new texts, and a small LRU of query vectors."""

    def __init__(
        self, *, max_catalogs: int = 8, max_queries: int = 2048, max_texts: int = 20_000
    ) -> None:
        self._lock = threading.Lock()
        self._catalogs: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._queries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._texts: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self.max_catalogs = max_catalogs
        self.max_queries = max_queries
        self.max_texts = max_texts
        self.document_encodes = 0
        self.texts_encoded = 0

    def documents(
        self, encoder: Encoder, fingerprint: str, groups: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """One row per group (a document and its example requests), built once per catalog from
        text vectors that are encoded once per text."""
        key = (encoder.name, fingerprint)
        with self._lock:
            if key in self._catalogs:
                self._catalogs.move_to_end(key)
                return self._catalogs[key]
            known = {
                t: self._texts[(encoder.name, t)]
                for group in groups
                for t in group
                if (encoder.name, t) in self._texts
            }
        missing = list(dict.fromkeys(t for group in groups for t in group if t not in known))
        if missing:
            known.update(zip(missing, encoder.encode(missing, query=False), strict=True))
        width = len(next(iter(known.values()))) if known else 1
        rows = np.zeros((len(groups), width), dtype=np.float32)
        for row, group in enumerate(groups):
            for text in group:
                rows[row] += known[text]
        matrix = _normalize(rows)
        with self._lock:
            self.document_encodes += 1
            self.texts_encoded += len(missing)
            self._catalogs[key] = matrix
            while len(self._catalogs) > self.max_catalogs:
                self._catalogs.popitem(last=False)
            for text, vector in known.items():
                self._texts[(encoder.name, text)] = vector
                self._texts.move_to_end((encoder.name, text))
            while len(self._texts) > self.max_texts:
                self._texts.popitem(last=False)
        return matrix

    def clear_queries(self) -> None:
        """Forget query vectors (benchmarks measure the encoder, not the cache)."""
        with self._lock:
            self._queries.clear()

    def queries(self, encoder: Encoder, texts: Sequence[str]) -> list[np.ndarray]:
        """Vectors for several query texts, the missing ones encoded in one batch."""
        with self._lock:
            found = {
                t: self._queries[(encoder.name, t)]
                for t in texts
                if (encoder.name, t) in self._queries
            }
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            for text, vector in zip(missing, encoder.encode(missing, query=True), strict=True):
                found[text] = vector
            with self._lock:
                for text in missing:
                    self._queries[(encoder.name, text)] = found[text]
                while len(self._queries) > self.max_queries:
                    self._queries.popitem(last=False)
        return [found[t] for t in texts]

    def query(self, encoder: Encoder, text: str) -> np.ndarray:
        """A query vector; follow-ups reuse the previous turns' vectors from here."""
        key = (encoder.name, text)
        with self._lock:
            if key in self._queries:
                self._queries.move_to_end(key)
                return self._queries[key]
        vector = encoder.encode([text], query=True)[0]
        with self._lock:
            self._queries[key] = vector
            while len(self._queries) > self.max_queries:
                self._queries.popitem(last=False)
        return vector


PLAIN_CHAT = Path(__file__).parent / "data" / "plain-chat.txt"


@cache
def plain_chat_examples() -> tuple[str, ...]:
    """Requests a model answers without tools (``data/plain-chat.txt``, written for the router)."""
    lines = PLAIN_CHAT.read_text(encoding="utf-8").splitlines()
    # Without their closing "?" or ".", as prompts are compared (text.without_closing_punctuation).
    return tuple(
        without_closing_punctuation(line.strip())
        for line in lines
        if line.strip() and not line.startswith("#")
    )


@cache
def default_cache() -> EmbeddingCache:
    """The per-process cache, created on first use (after any fork)."""
    return EmbeddingCache()


class SemanticIndex:
    """Cosine similarities of a query (and its recent context) to every server and tool."""

    def __init__(
        self,
        encoder: Encoder,
        *,
        servers: Sequence[Sequence[str]],
        tools: Sequence[Sequence[str]],
        fingerprint: str,
        embedding_cache: EmbeddingCache | None = None,
    ) -> None:
        self.encoder = encoder
        self.cache = embedding_cache or default_cache()
        self._groups = [list(g) for g in servers] + [list(g) for g in tools]
        self._split = len(servers)
        self.fingerprint = fingerprint

    def _vectors(self) -> tuple[np.ndarray, np.ndarray]:
        matrix = self.cache.documents(self.encoder, self.fingerprint, self._groups)
        return matrix[: self._split], matrix[self._split :]

    def warm(self) -> None:
        """Encode the catalog now rather than on the first prompt, and load the encoder's model:
        cached document vectors alone would leave it to load on the first prompt (seconds)."""
        self._vectors()
        self.encoder.encode(["warm"], query=True)

    def scores(
        self,
        query: str,
        history: Sequence[str],
        history_weight: float,
        *,
        clauses: Sequence[str] = (),
        clause_weight: float = 1.0,
        extras: Sequence[str] = (),
        extra_weight: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-server and per-tool similarities mapped onto [0, 1].

        The whole prompt (with its recent context mixed in), each of its ``clauses`` and each
        ``extras`` request are compared; a document keeps its best, weighted match. With clauses,
        the prompt's own vector is their length-weighted mean: the model mean-pools tokens, so
        this is close to encoding the prompt again at half the cost.
        """
        servers, tools = self._vectors()
        own = list(clauses) if clauses else [query]
        vectors = self.cache.queries(self.encoder, [*own, *history, *extras])
        parts = vectors[: len(own)]
        sizes = np.array([max(1, len(text.split())) for text in own], dtype=np.float32)
        vector = (sizes[:, None] * np.vstack(parts)).sum(axis=0)
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        for age in range(len(history)):
            vector = vector + (history_weight ** (age + 1)) * vectors[len(own) + age]
        rows = [vector / max(float(np.linalg.norm(vector)), 1e-12)]
        weights = [1.0]
        if clauses:
            rows += parts
            weights += [clause_weight] * len(parts)
        rows += vectors[len(own) + len(history) :]
        weights += [extra_weight] * len(extras)
        span = max(1e-6, self.encoder.ceiling - self.encoder.floor)
        weight_row = np.array(weights, dtype=np.float32)
        out = []
        for matrix in (servers, tools):
            if not len(matrix):
                out.append(np.zeros(0, dtype=np.float32))
                continue
            sims = (matrix @ np.vstack(rows).T - self.encoder.floor) / span
            out.append((np.clip(sims, 0.0, 1.0) * weight_row).max(axis=1))
        return out[0], out[1]


class EndpointEncoder:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint (a local server or a hosted API)."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str = "",
        timeout: float = 10.0,
        batch: int = 64,
        floor: float = 0.2,
        ceiling: float = 0.8,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        if not self.url.endswith("/embeddings"):
            self.url += "/embeddings"
        self.model = model
        self.name = f"endpoint:{self.url}:{model}"
        self.api_key = api_key
        self.timeout = timeout
        self.batch = batch
        self.floor = floor
        self.ceiling = ceiling
        self.session = session or requests.Session()

    def encode(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch):
            chunk = list(texts[start : start + self.batch])
            response = self.session.post(
                self.url,
                json={"model": self.model, "input": chunk},
                headers=headers,
                timeout=self.timeout,
            )
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            rows.extend(item["embedding"] for item in data)
        return _normalize(np.asarray(rows, dtype=np.float32).reshape(len(rows), -1))


def _normalize(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
