"""Re-embedding one product or knowledge chunk when a manager or an API client edits it.

Ingestion embeds in batches; edits come one row at a time (admin forms, `POST/PATCH /api/v1/products`). The
vector is computed before the row is written, so it lands in the same commit as the text it belongs to, and
only when the embedded text or the model changed (a price or stock edit never re-embeds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from salesbot.knowledge.documents import chunk_document, content_hash, product_document
from salesbot.knowledge.embeddings import Embedder


@dataclass(frozen=True)
class EmbeddingUpdate:
    embedding: list[float]
    embedding_model: str
    content_hash: str

    def as_values(self) -> dict[str, Any]:
        return {"embedding": self.embedding, "embedding_model": self.embedding_model, "content_hash": self.content_hash}


async def embedding_update(
    embedder: Embedder, document: str, *, current_hash: str | None, current_model: str | None
) -> EmbeddingUpdate | None:
    """The new vector for `document`, or None when the stored one is still current."""
    digest = content_hash(document)
    if current_hash == digest and current_model == embedder.name:
        return None
    vectors = await embedder.embed_documents([document])
    return EmbeddingUpdate(
        embedding=[float(value) for value in vectors[0]], embedding_model=embedder.name, content_hash=digest
    )


def product_text(values: Mapping[str, Any]) -> str:
    """The embedded text of a product from its field values (missing fields count as empty)."""
    attributes = values.get("attributes")
    return product_document(
        sku=str(values.get("sku") or ""),
        name=str(values.get("name") or ""),
        category=str(values.get("category") or ""),
        description=str(values.get("description") or ""),
        attributes=attributes if isinstance(attributes, Mapping) else None,
    )


def chunk_text(values: Mapping[str, Any]) -> str:
    return chunk_document(title=str(values.get("title") or ""), content=str(values.get("content") or ""))
