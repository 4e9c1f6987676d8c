"""Zoho Inventory: stock and sales price of every active item, through the v1 REST API.

Authentication is Zoho's OAuth refresh-token flow: a self-client (or server-based client) registered in the
Zoho API console with scope `ZohoInventory.items.READ` and a refresh token issued to it. The access token
(valid one hour) is kept in memory and refreshed shortly before it expires, or at once when the API answers
401. Items are read page by page (`GET /items?page=N&per_page=200`) until `page_context.has_more_page` is
false. Zoho has regional data centres: set both URLs for the same region (accounts.zoho.eu + zohoapis.eu...).

Errors: network failures, timeouts, 5xx and 429 are `InventoryUnavailableError` (the next sync retries);
rejected credentials, 4xx and answers with a non-zero Zoho `code` are `InventoryRejectedError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from salesbot.kit.logging import get_logger
from salesbot.kit.zoho_oauth import ZohoTokenRefusedError, ZohoTokenUnavailableError, exchange_refresh_token
from salesbot.knowledge.catalog_files import RowError
from salesbot.knowledge.inventory.base import (
    InventoryRejectedError,
    InventorySnapshot,
    InventoryUnavailableError,
    StockLevel,
)

log = get_logger(__name__)

PER_PAGE = 200
MAX_PAGES = 500  # 100k items; a guard against a server that never says "no more pages"
TOKEN_MARGIN_SECONDS = 60
STOCK_FIELDS = ("available_stock", "actual_available_stock", "stock_on_hand")


@dataclass
class ZohoInventorySource:
    http: httpx.AsyncClient
    client_id: str
    client_secret: str
    refresh_token: str
    organization_id: str
    accounts_url: str = "https://accounts.zoho.com"
    api_url: str = "https://www.zohoapis.com/inventory/v1"
    stock_field: str = "available_stock"
    name: str = "zoho"
    _access_token: str | None = field(default=None, init=False, repr=False)
    _expires_at: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.stock_field not in STOCK_FIELDS:
            raise ValueError(f"INVENTORY_ZOHO_STOCK_FIELD must be one of {', '.join(STOCK_FIELDS)}")

    async def _refresh(self) -> str:
        try:
            issued = await exchange_refresh_token(
                self.http,
                accounts_url=self.accounts_url,
                client_id=self.client_id,
                client_secret=self.client_secret,
                refresh_token=self.refresh_token,
            )
        except ZohoTokenUnavailableError as exc:
            raise InventoryUnavailableError(str(exc)) from exc
        except ZohoTokenRefusedError as exc:
            raise InventoryRejectedError(str(exc)) from exc
        token, lifetime = issued.access_token, issued.lifetime_seconds
        self._access_token = token
        self._expires_at = time.monotonic() + lifetime - TOKEN_MARGIN_SECONDS
        log.info("inventory.zoho_token_refreshed")
        return token

    async def _token(self) -> str:
        if self._access_token is None or time.monotonic() >= self._expires_at:
            return await self._refresh()
        return self._access_token

    async def _get_page(self, page: int) -> dict[str, Any]:
        params: dict[str, str | int] = {
            "organization_id": self.organization_id,
            "page": page,
            "per_page": PER_PAGE,
            "filter_by": "Status.Active",
        }
        for attempt in (1, 2):
            token = await self._token()
            try:
                response = await self.http.get(
                    f"{self.api_url.rstrip('/')}/items",
                    params=params,
                    headers={"Authorization": f"Zoho-oauthtoken {token}"},
                )
            except httpx.HTTPError as exc:
                raise InventoryUnavailableError(f"Zoho Inventory unreachable: {type(exc).__name__}") from exc
            if response.status_code == 401 and attempt == 1:
                self._access_token = None  # revoked or expired early: refresh once and retry
                continue
            if response.status_code == 429 or response.status_code >= 500:
                raise InventoryUnavailableError(f"Zoho Inventory answered {response.status_code}")
            payload = _json(response)
            if response.status_code != 200 or payload.get("code", 0) != 0:
                message = payload.get("message") or f"HTTP {response.status_code}"
                raise InventoryRejectedError(f"Zoho Inventory refused the request: {message}")
            return payload
        raise InventoryRejectedError("Zoho Inventory rejected a freshly refreshed access token")

    async def fetch(self) -> InventorySnapshot:
        levels: list[StockLevel] = []
        rejected: list[RowError] = []
        for page in range(1, MAX_PAGES + 1):
            payload = await self._get_page(page)
            items = payload.get("items")
            if not isinstance(items, list):
                raise InventoryRejectedError("Zoho Inventory answered without an `items` list")
            for number, item in enumerate(items, start=(page - 1) * PER_PAGE + 1):
                level = self._level(item, number, rejected)
                if level is not None:
                    levels.append(level)
            context = payload.get("page_context")
            if not (isinstance(context, dict) and context.get("has_more_page")):
                break
        return InventorySnapshot(levels, rejected)

    def _level(self, item: Any, number: int, rejected: list[RowError]) -> StockLevel | None:
        if not isinstance(item, dict):
            rejected.append(RowError(number, "not an object", unit="item"))
            return None
        sku = str(item.get("sku") or "").strip()
        if not sku:
            return None  # items without a SKU (services, unmapped items) are not in our catalog
        stock = _number(item.get(self.stock_field))
        if stock is None:
            stock = _number(item.get("stock_on_hand"))
        price = _number(item.get("rate"))
        if (stock is not None and stock < 0) or (price is not None and price < 0):
            rejected.append(RowError(number, "negative stock or rate", sku, unit="item"))
            return None
        return StockLevel(
            sku=sku,
            # Fractional quantities (units sold by weight) are rounded down: never promise what is not there.
            stock=None if stock is None else int(stock),
            price=None if price is None else price.quantize(Decimal("0.01")),
        )


def _number(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        raise InventoryRejectedError(f"Zoho answered HTTP {response.status_code} with a non-JSON body") from None
    if not isinstance(payload, dict):
        raise InventoryRejectedError("Zoho answered with an unexpected JSON document")
    return payload
