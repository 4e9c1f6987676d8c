"""The files that follow a reply: photos of the products it named and the PDF of the quote the turn created.

Products come from this turn's tool results (`search_products`, `get_product`), so only what the catalog
returned can be shown; a product counts as named when the final reply contains its SKU or its name (whole
words, any case). Photos go in the order the reply names the products, at most `MAX_PRODUCT_IMAGES`, each
captioned with name, price and SKU; the quote's PDF goes last, behind a signed link the provider fetches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from pydantic_ai.messages import ModelMessage, ToolReturnPart
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent import repository
from salesbot.documents.links import signed_quote_url
from salesbot.documents.service import quote_number
from salesbot.outbox.service import OutboundMedia
from salesbot.sales.quotes import money
from salesbot.settings import Settings


@dataclass(frozen=True)
class ShownProduct:
    sku: str
    name: str
    price: Decimal
    currency: str


def _shown_products(messages: Sequence[ModelMessage]) -> list[ShownProduct]:
    """Products the catalog tools returned this turn, first appearance first."""
    found: dict[str, ShownProduct] = {}
    for part in _tool_returns(messages, ("search_products", "get_product")):
        data = part.metadata if isinstance(part.metadata, dict) else {}
        items = data.get("products") or ([data["product"]] if isinstance(data.get("product"), dict) else [])
        for item in items:
            try:
                shown = ShownProduct(
                    str(item["sku"]), str(item["name"]), Decimal(str(item["price"])), str(item["currency"])
                )
            except (KeyError, TypeError, InvalidOperation):
                continue
            found.setdefault(shown.sku, shown)
    return list(found.values())


def _created_quote(messages: Sequence[ModelMessage]) -> int | None:
    """The id of the last quote `create_quote` stored this turn."""
    quote_id = None
    for part in _tool_returns(messages, ("create_quote",)):
        data = part.metadata if isinstance(part.metadata, dict) else {}
        quote = data.get("quote")
        if data.get("status") == "ok" and isinstance(quote, dict) and isinstance(quote.get("id"), int):
            quote_id = quote["id"]
    return quote_id


def _tool_returns(messages: Sequence[ModelMessage], tools: Sequence[str]) -> list[ToolReturnPart]:
    return [
        part
        for message in messages
        for part in message.parts
        if isinstance(part, ToolReturnPart) and part.tool_name in tools and part.outcome == "success"
    ]


def _spans(text: str, phrase: str) -> list[tuple[int, int]]:
    """Where `phrase` occurs in `text` as whole words (any case)."""
    phrase = phrase.strip()
    if not phrase:
        return []
    pattern = rf"(?<![\w-]){re.escape(phrase)}(?![\w-])"
    return [match.span() for match in re.finditer(pattern, text, re.IGNORECASE)]


def named_in(reply: str, products: Sequence[ShownProduct]) -> list[ShownProduct]:
    """The products `reply` names (by SKU or name), in the order it names them. A mention inside a longer one of
    another product ("Oak Desk" in "Oak Desk Pro") names only the longer one's product."""
    spans = [_spans(reply, product.sku) + _spans(reply, product.name) for product in products]
    found: list[tuple[int, int, ShownProduct]] = []
    for order, (product, own) in enumerate(zip(products, spans, strict=True)):
        others = [span for other, theirs in enumerate(spans) if other != order for span in theirs]
        kept = [
            (start, end)
            for start, end in own
            if not any(o_start <= start and end <= o_end and o_end - o_start > end - start for o_start, o_end in others)
        ]
        if kept:
            found.append((min(start for start, _ in kept), order, product))
    return [product for _, _, product in sorted(found, key=lambda item: item[:2])]


def caption(product: ShownProduct) -> str:
    return f"{product.name} | {money(product.price, product.currency)} | SKU {product.sku}"


async def reply_media(
    session: AsyncSession, settings: Settings, messages: Sequence[ModelMessage], reply: str, *, now: datetime
) -> list[OutboundMedia]:
    """The files to send after `reply`: product photos, then the quote's PDF (see the module doc)."""
    media: list[OutboundMedia] = []
    named = named_in(reply, _shown_products(messages)) if settings.max_product_images else []
    urls = await repository.image_urls(session, [product.sku for product in named])
    with_photo = [product for product in named if product.sku in urls][: settings.max_product_images]
    media += [OutboundMedia(url=urls[p.sku], kind="image", caption=caption(p)) for p in with_photo]
    quote_id = _created_quote(messages)
    if quote_id is not None:
        number = quote_number(quote_id)
        media.append(
            OutboundMedia(
                url=signed_quote_url(settings, quote_id, now=now),
                kind="document",
                caption=number,
                filename=f"quote-{number}.pdf",
            )
        )
    return media
