"""SQL for quoting: catalog products by SKU. Only reads."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import Product


async def active_products(session: AsyncSession, skus: Sequence[str]) -> dict[str, Product]:
    """Active catalog products by SKU (matched case-insensitively), keyed by the SKU as requested."""
    wanted = {sku.strip().upper() for sku in skus if sku.strip()}
    if not wanted:
        return {}
    rows = (
        await session.scalars(select(Product).where(func.upper(Product.sku).in_(wanted), Product.active.is_(True)))
    ).all()
    by_upper: dict[str, list[Product]] = {}
    for product in rows:
        by_upper.setdefault(product.sku.upper(), []).append(product)
    found: dict[str, Product] = {}
    for sku in skus:
        candidates = by_upper.get(sku.strip().upper(), [])
        exact = [product for product in candidates if product.sku == sku.strip()]
        if exact or len(candidates) == 1:
            found[sku] = (exact or candidates)[0]
    return found
