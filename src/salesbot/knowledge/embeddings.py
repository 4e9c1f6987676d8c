"""Text embeddings: the `Embedder` interface, fastembed (BGE-M3 and fastembed's built-ins) and an offline embedder.

- `FastEmbedEmbedder` runs an ONNX model through fastembed. `BAAI/bge-m3` is not one of fastembed's built-in
  models, so it is registered as a custom model (`register_custom_model`, CLS pooling, normalized, 1024 dims);
  the same function registers any other ONNX export (the tests register a tiny model built at test time).
  The model is loaded once per process, lazily, in a worker thread; inference runs off the event loop in
  batches, one batch at a time per process (onnxruntime already uses every core for one batch).
- `OfflineEmbedder` (`EMBEDDING_MODEL=offline`) hashes character n-grams and words into `EMBEDDING_DIM`
  buckets: deterministic, no model files, language-agnostic; good enough for lexical-semantic matching in
  development and CI, not a replacement for a real model.
- `get_embedder(settings)` returns the process-wide embedder; `QueryEmbeddingCache` keeps query vectors in
  Redis keyed by model and text hash, so repeated customer questions skip the model.

Vectors are float32 numpy arrays: one row per text from `embed_documents`, a single row from `embed_query`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from redis.asyncio import Redis
from redis.exceptions import RedisError

from salesbot.kit.logging import get_logger
from salesbot.knowledge.text import content_words

if TYPE_CHECKING:
    from salesbot.settings import Settings

log = get_logger(__name__)

Vector = NDArray[np.float32]
Matrix = NDArray[np.float32]

OFFLINE_MODEL = "offline"
# How long a hub reachability probe may take before loading gives up with a clear error.
HUB_PROBE_TIMEOUT_SECONDS = 3.0


class EmbeddingError(RuntimeError):
    """The embedding model cannot be used (unknown, missing files, not downloadable)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns text into vectors of a fixed dimension; `name` is stored with every vector it produced."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    async def embed_documents(self, texts: Sequence[str]) -> Matrix: ...

    async def embed_query(self, text: str) -> Vector: ...


# --------------------------------------------------------------------------------------------------------------
# Offline embedder
# --------------------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------------------
# fastembed
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomModelSpec:
    """An ONNX text-embedding export that fastembed does not know: how to find it and how to pool it."""

    name: str
    dim: int
    hf_repo: str
    pooling: Literal["CLS", "MEAN", "LAST_TOKEN"]
    normalization: bool = True
    model_file: str = "onnx/model.onnx"
    additional_files: tuple[str, ...] = ()
    description: str = ""
    license: str = ""
    size_in_gb: float = 0.0


BGE_M3 = CustomModelSpec(
    name="BAAI/bge-m3",
    dim=1024,
    hf_repo="BAAI/bge-m3",
    pooling="CLS",
    normalization=True,
    model_file="onnx/model.onnx",
    additional_files=("onnx/model.onnx_data",),
    description="BGE-M3 dense vectors: multilingual (100+ languages), 8192-token context",
    license="mit",
    size_in_gb=2.27,
)

# Custom models salesbot registers with fastembed by name (lower-cased).
CUSTOM_MODELS: dict[str, CustomModelSpec] = {BGE_M3.name.lower(): BGE_M3}
_registration_lock = threading.Lock()


def register_custom_model(spec: CustomModelSpec) -> None:
    """Register `spec` with fastembed's `TextEmbedding` (idempotent; a name fastembed already has is kept)."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    with _registration_lock:
        known = {description["model"].lower() for description in TextEmbedding.list_supported_models()}
        if spec.name.lower() in known:
            return
        TextEmbedding.add_custom_model(
            model=spec.name,
            pooling=PoolingType(spec.pooling),
            normalization=spec.normalization,
            sources=ModelSource(hf=spec.hf_repo),
            dim=spec.dim,
            model_file=spec.model_file,
            description=spec.description,
            license=spec.license,
            size_in_gb=spec.size_in_gb,
            additional_files=list(spec.additional_files),
        )
        CUSTOM_MODELS.setdefault(spec.name.lower(), spec)


def _model_description(model_name: str) -> dict[str, Any]:
    from fastembed import TextEmbedding

    spec = CUSTOM_MODELS.get(model_name.lower())
    if spec is not None:
        register_custom_model(spec)
    for description in TextEmbedding.list_supported_models():
        if description["model"].lower() == model_name.lower():
            return description
    raise EmbeddingError(
        f"unknown embedding model {model_name!r}: use {BGE_M3.name}, one of fastembed's built-in models "
        "(TextEmbedding.list_supported_models()), or EMBEDDING_MODEL=offline"
    )


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "TRUE", "YES", "ON"}


def _hub_reachable(repo: str) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    request = urllib.request.Request(f"{endpoint}/api/models/{repo}", method="HEAD")  # noqa: S310  (https or HF_ENDPOINT)
    try:
        with urllib.request.urlopen(request, timeout=HUB_PROBE_TIMEOUT_SECONDS):  # noqa: S310
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500  # the hub answered (401/404 are reported by fastembed itself)
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class FastEmbedEmbedder:
    """A fastembed `TextEmbedding`, loaded on first use from `model_path`, fastembed's cache, or the hub."""

    model_name: str
    model_path: str = ""
    cache_dir: str | None = None
    batch_size: int = 32
    threads: int | None = None
    _dim: int = field(init=False)
    _hf_repo: str | None = field(init=False)
    _model: Any = field(init=False, default=None)
    _load_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _run_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        description = _model_description(self.model_name)
        self._dim = int(description["dim"])
        self._hf_repo = (description.get("sources") or {}).get("hf")
        if self.model_path:
            self._check_local_files(Path(self.model_path), str(description["model_file"]))

    @property
    def name(self) -> str:
        return self.model_name

    @property
    def dim(self) -> int:
        return self._dim

    @staticmethod
    def _check_local_files(folder: Path, model_file: str) -> None:
        missing = [
            name for name in (model_file, "tokenizer.json", "tokenizer_config.json") if not (folder / name).exists()
        ]
        if not folder.is_dir() or missing:
            raise EmbeddingError(
                f"EMBEDDING_MODEL_PATH={folder} does not hold the model: missing {', '.join(missing) or 'the folder'}"
            )

    def _construct(self, **kwargs: Any) -> Any:
        from fastembed import TextEmbedding

        return TextEmbedding(
            model_name=self.model_name, cache_dir=self.cache_dir, threads=self.threads, cuda=False, **kwargs
        )

    def load(self) -> Any:
        """Load the model (once per process; blocking: call it from a thread or at startup)."""
        with self._load_lock:
            if self._model is None:
                if self.model_path:
                    self._model = self._construct(specific_model_path=self.model_path)
                else:
                    self._model = self._load_cached_or_download()
                log.info("knowledge.embedder_loaded", model=self.model_name, dim=self._dim)
            return self._model

    def _load_cached_or_download(self) -> Any:
        try:
            return self._quietly(lambda: self._construct(local_files_only=True))
        except (ValueError, OSError) as exc:
            cached_error = exc
        hint = (
            f"set EMBEDDING_MODEL_PATH to a local copy of {self._hf_repo or self.model_name}, "
            "download it once where the hub is reachable, or use EMBEDDING_MODEL=offline"
        )
        if _hub_offline():
            raise EmbeddingError(
                f"embedding model {self.model_name} is not in the cache {self.cache_dir or '(fastembed default)'} "
                f"and HF_HUB_OFFLINE is set: {hint}"
            ) from cached_error
        if self._hf_repo and not _hub_reachable(self._hf_repo):
            raise EmbeddingError(
                f"embedding model {self.model_name} is not cached and the Hugging Face hub is unreachable: {hint}"
            ) from cached_error
        log.info("knowledge.embedder_downloading", model=self.model_name)
        try:
            return self._construct()
        except (ValueError, OSError) as exc:
            raise EmbeddingError(f"embedding model {self.model_name} could not be downloaded: {exc}; {hint}") from exc

    @staticmethod
    def _quietly(load: Callable[[], Any]) -> Any:
        """Run `load` with fastembed's loguru output off: it logs a cache miss as an ERROR, which here is the
        expected way to a download (loguru comes with fastembed; without it there is nothing to silence)."""
        try:
            from loguru import logger
        except ImportError:
            return load()
        logger.disable("fastembed")
        try:
            return load()
        finally:
            logger.enable("fastembed")

    def _embed_sync(self, texts: Sequence[str], *, query: bool) -> Matrix:
        model = self.load()
        with self._run_lock:
            if query:
                rows = list(model.query_embed(list(texts), batch_size=self.batch_size))
            else:
                rows = list(model.passage_embed(list(texts), batch_size=self.batch_size))
        if not rows:
            return np.zeros((0, self._dim), dtype=np.float32)
        matrix = np.asarray(np.stack(rows), dtype=np.float32)
        if matrix.shape[1] != self._dim:
            raise EmbeddingError(f"{self.model_name} produced {matrix.shape[1]} dimensions, expected {self._dim}")
        return matrix

    async def warm_up(self) -> None:
        await asyncio.to_thread(self.load)

    async def embed_documents(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return await asyncio.to_thread(self._embed_sync, list(texts), query=False)

    async def embed_query(self, text: str) -> Vector:
        matrix = await asyncio.to_thread(self._embed_sync, [text], query=True)
        return np.asarray(matrix[0], dtype=np.float32)


# --------------------------------------------------------------------------------------------------------------
# The process-wide embedder and the query cache
# --------------------------------------------------------------------------------------------------------------

_embedders: dict[tuple[str, str, int, int, str | None], Embedder] = {}
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
    embedder = FastEmbedEmbedder(
        model_name=config.model.strip(),
        model_path=config.model_path,
        cache_dir=fastembed_cache_dir(settings),
        batch_size=config.batch_size,
    )
    if "dim" in config.model_fields_set and config.dim != embedder.dim:
        log.warning(
            "knowledge.embedding_dim_ignored", model=embedder.name, configured=config.dim, model_dim=embedder.dim
        )
    return embedder


def get_embedder(settings: Settings) -> Embedder:
    """The process-wide embedder for these settings: built once, so a model is loaded once per process."""
    config = settings.embedding
    key = (
        config.model.strip().lower(),
        config.model_path,
        config.dim,
        config.batch_size,
        fastembed_cache_dir(settings),
    )
    with _embedders_lock:
        embedder = _embedders.get(key)
        if embedder is None:
            embedder = _embedders[key] = build_embedder(settings)
        return embedder


async def warm_up(embedder: Embedder) -> None:
    """Load the model now (worker startup), so a missing model fails the start instead of a customer's turn."""
    if isinstance(embedder, FastEmbedEmbedder):
        await embedder.warm_up()


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
        text = " ".join(text.split())
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
