"""A deterministic bag-of-words encoder so the dense stage can be tested without a model."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from gateway.routing.text import tokens


class HashingEncoder:
    """Hashes stemmed words into a fixed-size vector; counts calls to prove caching."""

    name = "hashing-test"
    floor = 0.0
    ceiling = 1.0

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls: list[tuple[int, bool]] = []

    def encode(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        self.calls.append((len(texts), query))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for term in tokens(text):
                out[row, int(hashlib.md5(term.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
