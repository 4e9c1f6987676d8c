"""Text embeddings: which embedder the settings choose, one per process, and the query-vector cache.

- `UniversalSentenceEncoder` (the default, `EMBEDDING_MODEL=use-multilingual-v3`): Google's multilingual USE
  v3, installed by pip with its weights, 512 dimensions, EN/AR/RU and 13 more languages in one space.
- `FastEmbedEmbedder`: an ONNX model through fastembed; `BAAI/bge-m3` (1024 dimensions, registered as a custom
  model) is the production recommendation where its weights can be downloaded or copied in.
- `OfflineEmbedder` (`EMBEDDING_MODEL=offline`): hashed character n-grams into `EMBEDDING_DIM` buckets;
  deterministic and fast, for tests; it matches spellings, not meanings.
- `get_embedder(settings)` returns the process-wide embedder; `embedding_dimension(config)` the dimension the
  configured model produces, known without loading it (the vector columns are declared with it);
  `QueryEmbeddingCache` keeps query vectors in Redis keyed by model and text hash; `embedding_memo` keeps the
  vectors of recently embedded texts in the process (a model such as USE takes tens of milliseconds of CPU a call).

Vectors are float32 numpy arrays: one row per text from `embed_documents`, a single row from `embed_query`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Literal

import numpy as np
from redis.asyncio import Redis
from redis.exceptions import RedisError

from salesbot.kit.logging import get_logger
from salesbot.knowledge.embedders.base import Embedder, EmbeddingError, Matrix, Vector, WarmUp
from salesbot.knowledge.embedders.ngram import OfflineEmbedder
from salesbot.knowledge.embedders.onnx import (
    BGE_M3,
    CUSTOM_MODELS,
    HUB_PROBE_TIMEOUT_SECONDS,
    CustomModelSpec,
    FastEmbedEmbedder,
    model_description,
    register_custom_model,
)
from salesbot.knowledge.embedders.use import USE_DIM, USE_MODEL, UniversalSentenceEncoder, is_use_model

if TYPE_CHECKING:
    from salesbot.settings import EmbeddingSettings, Settings

__all__ = [
    "BGE_M3",
    "CUSTOM_MODELS",
    "HUB_PROBE_TIMEOUT_SECONDS",
    "OFFLINE_MODEL",
    "USE_MODEL",
    "CustomModelSpec",
    "Embedder",
    "EmbeddingError",
    "EmbeddingMemo",
    "FastEmbedEmbedder",
    "Matrix",
    "OfflineEmbedder",
    "QueryEmbeddingCache",
    "UniversalSentenceEncoder",
    "Vector",
    "build_embedder",
    "embedding_dimension",
    "embedding_memo",
    "fastembed_cache_dir",
    "get_embedder",
    "register_custom_model",
    "warm_up",
]

log = get_logger(__name__)

OFFLINE_MODEL = "offline"


def embedding_dimension(config: EmbeddingSettings) -> int:
    """The dimension of the vectors the configured model makes, without loading it (fastembed's built-in
    models are looked up in fastembed's model list)."""
    name = config.model.strip()
    if name.lower() == OFFLINE_MODEL:
        return config.dim
    if is_use_model(name):
        return USE_DIM
    spec = CUSTOM_MODELS.get(name.lower())
    if spec is not None:
        return spec.dim
    return int(model_description(name)["dim"])


# --------------------------------------------------------------------------------------------------------------
# The process-wide embedder and the query cache
# --------------------------------------------------------------------------------------------------------------

_embedders: dict[tuple[object, ...], Embedder] = {}
_embedders_lock = threading.Lock()


def fastembed_cache_dir(settings: Settings) -> str | None:
    """EMBEDDING_CACHE_DIR, else $FASTEMBED_CACHE_PATH (None lets fastembed read it), else a folder in
    SALESBOT_DATA_DIR (not fastembed's default in the temp dir, which is wiped on reboot)."""
    if settings.embedding.cache_dir:
        return settings.embedding.cache_dir
    if os.environ.get("FASTEMBED_CACHE_PATH"):
        return None
    return str((settings.data_dir / "models").resolve())


def build_embedder(settings: Settings) -> Embedder:
    """A new embedder for `settings.embedding` (use `get_embedder` to share one per process)."""
    config = settings.embedding
    if config.model.strip().lower() == OFFLINE_MODEL:
        return OfflineEmbedder(config.dim)
    if is_use_model(config.model):
        return UniversalSentenceEncoder(batch_size=config.batch_size, threads=config.threads)
    embedder = FastEmbedEmbedder(
        model_name=config.model.strip(),
        model_path=config.model_path,
        cache_dir=fastembed_cache_dir(settings),
        batch_size=config.batch_size,
        threads=config.threads,
    )
    if "dim" in config.model_fields_set and config.dim != embedder.dim:
        log.warning(
            "knowledge.embedding_dim_ignored", model=embedder.name, configured=config.dim, model_dim=embedder.dim
        )
    return embedder


def get_embedder(settings: Settings) -> Embedder:
    """The process-wide embedder for these settings: built once, so a model is loaded once per process."""
    config = settings.embedding
    # What `fastembed_cache_dir` depends on, not its answer: resolving the path costs system calls on every
    # search, and a process looks its embedder up several times a turn.
    key = (
        config.model.strip().lower(),
        config.model_path,
        config.dim,
        config.batch_size,
        config.threads,
        config.cache_dir,
        settings.data_dir,
        os.environ.get("FASTEMBED_CACHE_PATH"),
    )
    with _embedders_lock:
        embedder = _embedders.get(key)
        if embedder is None:
            embedder = _embedders[key] = build_embedder(settings)
        return embedder


async def warm_up(embedder: Embedder) -> None:
    """Load the model now (worker startup), so a missing model fails the start instead of a customer's turn."""
    if isinstance(embedder, WarmUp):
        await embedder.warm_up()


# Texts whose vectors the process keeps (the most recently used), and the longest text kept.
MEMO_TEXTS = 4096
MEMO_MAX_CHARS = 2000
# Embedder instances the memo keeps vectors for; one more clears it (a process has one, tests make many).
MEMO_EMBEDDERS = 8


class EmbeddingMemo:
    """The vectors of texts embedded recently in this process, per embedder instance and mode (query or document:
    some models embed them differently). The same texts come back on many turns: a product fact ("Asked about
    <product>") is remembered for every customer who asks about that product, a search for every customer who
    types it. Vectors are returned as copies."""

    def __init__(self, *, size: int = MEMO_TEXTS) -> None:
        self.size = size
        self._vectors: OrderedDict[tuple[int, str, str], Vector] = OrderedDict()
        # Held so that an instance's id is never reused for another embedder while its vectors are kept.
        self._embedders: dict[int, Embedder] = {}
        self._lock = threading.Lock()

    def _key(self, embedder: Embedder, mode: Literal["query", "document"], text: str) -> tuple[int, str, str]:
        if self._embedders.get(id(embedder)) is not embedder:
            if len(self._embedders) >= MEMO_EMBEDDERS:
                self._embedders.clear()
                self._vectors.clear()
            self._embedders[id(embedder)] = embedder
        return (id(embedder), mode, text)

    def _get(self, key: tuple[int, str, str]) -> Vector | None:
        vector = self._vectors.get(key)
        if vector is not None:
            self._vectors.move_to_end(key)
        return vector

    def _put(self, key: tuple[int, str, str], vector: Vector) -> None:
        if len(key[2]) > MEMO_MAX_CHARS:
            return
        self._vectors[key] = np.array(vector, dtype=np.float32)
        while len(self._vectors) > self.size:
            self._vectors.popitem(last=False)

    async def query(
        self, embedder: Embedder, text: str, *, embed: Callable[[str], Awaitable[Vector]] | None = None
    ) -> Vector:
        """The query vector of `text`; `embed` makes it when it is not kept (default: `embedder.embed_query`)."""
        with self._lock:
            key = self._key(embedder, "query", text)
            vector = self._get(key)
        if vector is None:
            vector = np.asarray(await (embed or embedder.embed_query)(text), dtype=np.float32)
            with self._lock:
                self._put(key, vector)
        return vector.copy()

    async def documents(self, embedder: Embedder, texts: Sequence[str]) -> Matrix:
        """One row per text; only the texts not kept are embedded (in one batch)."""
        with self._lock:
            keys = [self._key(embedder, "document", text) for text in texts]
            found = {key: vector for key in keys if (vector := self._get(key)) is not None}
        missing = list(dict.fromkeys(key for key in keys if key not in found))
        if missing:
            matrix = np.asarray(await embedder.embed_documents([key[2] for key in missing]), dtype=np.float32)
            with self._lock:
                for key, row in zip(missing, matrix, strict=True):
                    found[key] = row
                    self._put(key, row)
        if not keys:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()
            self._embedders.clear()


embedding_memo = EmbeddingMemo()


class QueryEmbeddingCache:
    """Query vectors in Redis under `knowledge:qemb:<model>:<dim>:<sha256(text)>`; Redis errors only cost a miss."""

    def __init__(self, redis: Redis, *, ttl_seconds: int = 7 * 24 * 3600) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def key(embedder: Embedder, text: str) -> str:
        model = hashlib.sha256(embedder.name.encode()).hexdigest()[:16]
        digest = hashlib.sha256(text.encode()).hexdigest()
        return f"knowledge:qemb:{model}:{embedder.dim}:{digest}"

    async def embed_query(self, embedder: Embedder, text: str) -> Vector:
        """The vector of `text`: kept in the process, else from Redis, else made (and stored in both)."""
        return await embedding_memo.query(embedder, " ".join(text.split()), embed=partial(self._embed_query, embedder))

    async def _embed_query(self, embedder: Embedder, text: str) -> Vector:
        key = self.key(embedder, text)
        try:
            cached = await self.redis.get(key)
        except (RedisError, OSError) as exc:
            log.warning("knowledge.query_cache_unavailable", error=type(exc).__name__)
            cached = None
        if isinstance(cached, bytes) and len(cached) == embedder.dim * 4:
            return np.frombuffer(cached, dtype=np.float32).copy()
        vector = np.asarray(await embedder.embed_query(text), dtype=np.float32)
        try:
            await self.redis.set(key, vector.tobytes(), ex=self.ttl_seconds)
        except (RedisError, OSError) as exc:
            log.warning("knowledge.query_cache_unavailable", error=type(exc).__name__)
        return vector
