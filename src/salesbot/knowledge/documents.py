"""The text that gets embedded for a product or a knowledge chunk, and its content hash.

The hash covers exactly the embedded text, so a price or stock change (inventory sync, a re-import with new
prices) never re-embeds a row, while any change to what the model reads does. `embedding_model` is stored
next to the hash: a row is re-embedded when either differs from what the current embedder would produce.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

# Attributes whose values describe the product in words (brand, form factor...) and so help retrieval;
# numbers such as warranty months or weights are left out of the embedded text.
DESCRIPTIVE_ATTRIBUTES = ("brand", "model", "color", "colour", "series", "type", "form_factor", "keywords")


def product_document(
    *, sku: str, name: str, category: str, description: str, attributes: Mapping[str, Any] | None = None
) -> str:
    """What the embedding model reads for a product: name, category, brand-like attributes, description."""
    parts = [name.strip()]
    if category.strip():
        parts.append(category.strip())
    for key in DESCRIPTIVE_ATTRIBUTES:
        value = (attributes or {}).get(key)
        if isinstance(value, str) and value.strip() and value.strip().lower() not in name.lower():
            parts.append(value.strip())
    if description.strip():
        parts.append(description.strip())
    parts.append(sku.strip())
    return "\n".join(parts)


def chunk_document(*, title: str, content: str) -> str:
    return f"{title.strip()}\n{content.strip()}" if title.strip() else content.strip()


def content_hash(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()
