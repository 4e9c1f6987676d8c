"""fastembed's ONNX embedders: BGE-M3 (the production recommendation) and fastembed's built-in models.

`BAAI/bge-m3` is not one of fastembed's built-in models, so it is registered as a custom model
(`register_custom_model`, CLS pooling, normalized, 1024 dims); the same function registers any other ONNX export
(the tests register a tiny model built at test time). The model is loaded once per process, lazily, in a worker
thread; inference runs off the event loop in batches, one batch at a time per process (onnxruntime already uses
every core for one batch).
"""

from __future__ import annotations

import asyncio
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from salesbot.kit.logging import get_logger
from salesbot.knowledge.embedders.base import EmbeddingError, Matrix, Vector

log = get_logger(__name__)

# How long a hub reachability probe may take before loading gives up with a clear error.
HUB_PROBE_TIMEOUT_SECONDS = 3.0


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


def model_description(model_name: str) -> dict[str, Any]:
    from fastembed import TextEmbedding

    spec = CUSTOM_MODELS.get(model_name.lower())
    if spec is not None:
        register_custom_model(spec)
    for description in TextEmbedding.list_supported_models():
        if description["model"].lower() == model_name.lower():
            return description
    raise EmbeddingError(
        f"unknown embedding model {model_name!r}: use use-multilingual-v3 (the default), {BGE_M3.name}, one of "
        "fastembed's built-in models (TextEmbedding.list_supported_models()), or offline"
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
    # onnxruntime's intra-op threads (None: one per core, which spin between calls; see EMBEDDING_THREADS).
    threads: int | None = None
    _dim: int = field(init=False)
    _hf_repo: str | None = field(init=False)
    _model: Any = field(init=False, default=None)
    _load_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _run_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        description = model_description(self.model_name)
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
            "download it once where the hub is reachable, or use EMBEDDING_MODEL=use-multilingual-v3 (no download)"
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
