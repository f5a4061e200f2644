"""BM25F over weighted fields, scores normalized to [0, 1] so one threshold fits any catalog."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.routing.text import tokens

Fields = Mapping[str, str]


@dataclass(frozen=True)
class BM25Params:
    """BM25 saturation ``k1`` and length normalization ``b``."""

    k1: float = 1.2
    b: float = 0.6


class LexicalIndex:
    """An inverted index of documents made of named, weighted text fields."""

    def __init__(
        self,
        documents: Sequence[Fields],
        *,
        field_weights: Mapping[str, float],
        params: BM25Params | None = None,
    ) -> None:
        self.params = params or BM25Params()
        self.size = len(documents)
        self._postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        lengths: list[float] = []
        for doc_id, doc in enumerate(documents):
            weighted: Counter[str] = Counter()
            length = 0.0
            for field, text in doc.items():
                weight = field_weights.get(field, 0.0)
                if weight <= 0 or not text:
                    continue
                terms = tokens(text)
                length += weight * len(terms)
                for term, count in Counter(terms).items():
                    weighted[term] += weight * count
            lengths.append(length)
            for term, tf in weighted.items():
                self._postings[term].append((doc_id, tf))
        average = (sum(lengths) / len(lengths)) if lengths else 1.0
        k1, b = self.params.k1, self.params.b
        # Per-document denominators precomputed: scoring is then one multiply-add per posting.
        self._norm = [k1 * (1 - b + b * (n / average if average else 1.0)) for n in lengths]
        self._idf = {term: self.idf(len(p)) for term, p in self._postings.items()}

    def idf(self, df: int) -> float:
        """Robertson–Spärck Jones idf, never negative."""
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def scores(self, query: Mapping[str, float]) -> dict[int, float]:
        """Normalized scores of matching documents for weighted query terms.

        A score is the BM25F score divided by what a document matching every query term once at
        average length would get, so 1.0 means "covers the whole query" whatever the catalog size;
        terms the catalog has never seen count in the denominator, which is what lets an
        unrelated prompt ("write me a poem") score low.
        """
        k1 = self.params.k1
        raw: dict[int, float] = defaultdict(float)
        total = 0.0
        unseen = self.idf(0)
        for term, q_weight in query.items():
            idf = self._idf.get(term)
            if idf is None:
                total += q_weight * unseen
                continue
            total += q_weight * idf
            factor = q_weight * idf * (k1 + 1)
            for doc_id, tf in self._postings[term]:
                raw[doc_id] += factor * tf / (tf + self._norm[doc_id])
        if total <= 0:
            return {}
        return {doc_id: min(1.0, s / total) for doc_id, s in raw.items()}
