"""A recording `Embedder`: delegates to a real embedder and remembers every text it was asked to embed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from salesbot.knowledge.embeddings import Embedder, Matrix, Vector


@dataclass
class RecordingEmbedder:
    inner: Embedder
    # A different name makes the stored vectors belong to "another model" (model-change scenarios).
    model_name: str | None = None
    documents: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    document_calls: int = 0

    @property
    def name(self) -> str:
        return self.model_name or self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    async def embed_documents(self, texts: Sequence[str]) -> Matrix:
        self.document_calls += 1
        self.documents.extend(texts)
        return await self.inner.embed_documents(texts)

    async def embed_query(self, text: str) -> Vector:
        self.queries.append(text)
        return await self.inner.embed_query(text)

    def reset(self) -> None:
        self.documents.clear()
        self.queries.clear()
        self.document_calls = 0
