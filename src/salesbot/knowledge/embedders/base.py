"""What every embedder is: the `Embedder` interface, its vector types and its error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float32]
Matrix = NDArray[np.float32]


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


@runtime_checkable
class WarmUp(Protocol):
    """An embedder with a model to load: `warm_up` loads it off the event loop (once per process)."""

    async def warm_up(self) -> None: ...
