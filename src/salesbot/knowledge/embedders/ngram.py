"""The n-gram embedder (`EMBEDDING_MODEL=offline`): hashed character n-grams and words, no model files.

Deterministic and language-agnostic, fast enough for tests that embed the catalog many times; it matches
shared spellings only (no synonyms, no translation), so it is not the default for customers.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from salesbot.knowledge.embedders.base import Matrix, Vector
from salesbot.knowledge.text import content_words

_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_NGRAM_SIZES = (3, 4, 5)
_WORD_WEIGHT = 2.0
_BIGRAM_WEIGHT = 1.0
# Documents embedded inline on the event loop below this count; larger batches go to a thread.
_INLINE_BATCH = 32


def _mix(values: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finalizer: spreads polynomial hashes over all 64 bits (numpy wraps on overflow)."""
    values = (values ^ (values >> np.uint64(30))) * _MIX1
    values = (values ^ (values >> np.uint64(27))) * _MIX2
    return values ^ (values >> np.uint64(31))


def _stable_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


class OfflineEmbedder:
    """Hashed character n-grams (3-5, within words) plus whole words and word pairs, signed, L2-normalized.

    Text is normalized first (NFKC, case folding, Arabic letter variants, stopwords of EN/AR/RU removed), so
    "Ноутбуки Lenovo" and "ноутбук lenovo" share most n-grams and "الطابعة" meets "طابعة". Identical input
    gives identical vectors on every machine (no randomness, no Python `hash()`).
    """

    VERSION = "v1"

    def __init__(self, dim: int) -> None:
        if dim < 8:
            raise ValueError("the offline embedder needs at least 8 dimensions")
        self._dim = dim

    @property
    def name(self) -> str:
        return f"offline-ngram-{self.VERSION}-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed_one(self, text: str) -> Vector:
        words = content_words(text)
        if not words:
            return np.zeros(self._dim, dtype=np.float32)
        buckets: list[NDArray[np.uint64]] = []
        stream = " " + " ".join(words) + " "
        codes = np.frombuffer(stream.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        spaces = np.concatenate(([0], np.cumsum(codes == 32)))
        for size in _NGRAM_SIZES:
            count = len(codes) - size + 1
            if count <= 0:
                continue
            hashed = np.full(count, np.uint64(size), dtype=np.uint64)
            for offset in range(size):
                hashed = hashed * _PRIME + codes[offset : offset + count]
            # Only n-grams inside one word (a space may open or close it, as fastText's < and >).
            inner_spaces = spaces[size - 1 : size - 1 + count] - spaces[1 : 1 + count]
            buckets.append(hashed[inner_spaces == 0])
        hashes = _mix(np.concatenate(buckets)) if buckets else np.zeros(0, dtype=np.uint64)
        weights = np.ones(len(hashes), dtype=np.float64)
        extra = [_stable_hash("w:" + word) for word in words]
        extra_weights = [_WORD_WEIGHT] * len(extra)
        for first, second in itertools.pairwise(words):
            extra.append(_stable_hash(f"b:{first} {second}"))
            extra_weights.append(_BIGRAM_WEIGHT)
        all_hashes = np.concatenate((hashes, np.array(extra, dtype=np.uint64)))
        all_weights = np.concatenate((weights, np.array(extra_weights, dtype=np.float64)))
        index = (all_hashes % np.uint64(self._dim)).astype(np.int64)
        signs = np.where((all_hashes >> np.uint64(47)) & np.uint64(1), 1.0, -1.0)
        counts = np.bincount(index, weights=signs * all_weights, minlength=self._dim).astype(np.float64)
        # Sublinear term frequency: a word repeated ten times is not ten times as relevant.
        scaled = np.sign(counts) * np.log1p(np.abs(counts))
        norm = float(np.linalg.norm(scaled))
        if norm > 0:
            scaled /= norm
        return scaled.astype(np.float32)

    def embed_many(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self.embed_one(text) for text in texts])

    async def embed_documents(self, texts: Sequence[str]) -> Matrix:
        if len(texts) <= _INLINE_BATCH:
            return self.embed_many(texts)
        return await asyncio.to_thread(self.embed_many, list(texts))

    async def embed_query(self, text: str) -> Vector:
        return self.embed_one(text)
