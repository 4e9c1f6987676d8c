"""Inventory sync: the file source, the Zoho Inventory client (respx), applying snapshots, the cron job."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot import queues
from salesbot.db import unit_of_work
from salesbot.knowledge.ingest import ingest_product_file
from salesbot.knowledge.inventory.base import (
    InventoryRejectedError,
    InventorySnapshot,
    InventoryUnavailableError,
    StockLevel,
)
from salesbot.knowledge.inventory.file_source import FileInventorySource
from salesbot.knowledge.inventory.service import apply_snapshot, build_source
from salesbot.knowledge.inventory.zoho import ZohoInventorySource
from salesbot.knowledge.tasks import inventory_cron_jobs, run_inventory_sync, sync_inventory
from salesbot.models import Product
from salesbot.resources import Resources
from salesbot.settings import InventorySettings, Settings
from salesbot.worker import queue_options
from tests.fakes.embedder import RecordingEmbedder
from tests.knowledge.test_ingest_products import write_csv

ACCOUNTS = "https://accounts.zoho.test"
API = "https://inventory.zoho.test/inventory/v1"


async def _catalog(session: AsyncSession) -> dict[str, Product]:
    rows = (await session.execute(select(Product).execution_options(populate_existing=True))).scalars()
    return {product.sku: product for product in rows}


# ---- applying a snapshot ------------------------------------------------------------------------------------


async def test_snapshot_updates_stock_and_prices_without_touching_vectors(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    await ingest_product_file(db_session, write_csv(tmp_path / "p.csv"), recording_embedder)
    before = await _catalog(db_session)
    vectors = {sku: (list(p.embedding or []), p.content_hash, p.embedding_model) for sku, p in before.items()}
    snapshot = InventorySnapshot(
        [
            StockLevel("LAP-1", stock=0, price=Decimal("3199.00")),
            StockLevel("MON-1", stock=0),  # unchanged
            StockLevel("MOU-1", stock=55, currency="USD"),
            StockLevel("GONE-1", stock=3),
        ]
    )
    report = await apply_snapshot(db_session, snapshot, source="test")
    assert (report.seen, report.updated, report.unchanged, report.unknown) == (4, 2, 1, 1)
    after = await _catalog(db_session)
    assert (after["LAP-1"].stock, after["LAP-1"].price) == (0, Decimal("3199.00"))
    assert (after["MOU-1"].stock, after["MOU-1"].currency, after["MOU-1"].price) == (55, "USD", Decimal(399))
    assert after["PRN-1"].stock == before["PRN-1"].stock  # not in the snapshot: untouched
    assert {sku: (list(p.embedding or []), p.content_hash, p.embedding_model) for sku, p in after.items()} == vectors

    stock_only = await apply_snapshot(
        db_session, InventorySnapshot([StockLevel("LAP-1", stock=4, price=Decimal(1))]), source="t", update_prices=False
    )
    assert stock_only.updated == 1
    laptop = (await _catalog(db_session))["LAP-1"]
    assert (laptop.stock, laptop.price) == (4, Decimal("3199.00"))


async def test_file_source_reads_exports_and_reports_bad_rows(tmp_path: Path) -> None:
    export = tmp_path / "stock.csv"
    export.write_text(
        "SKU,Stock,Price,Currency\nLAP-1,5,3100,aed\nMON-1,,,\nMOU-1,-2,,\nPRN-1,7,,\n,3,,\n", encoding="utf-8"
    )
    snapshot = await FileInventorySource(export).fetch()
    assert snapshot.levels == [
        StockLevel("LAP-1", stock=5, price=Decimal("3100.00"), currency="AED"),
        StockLevel("PRN-1", stock=7, price=None, currency=None),
    ]
    assert [(error.line, error.sku) for error in snapshot.rejected] == [(3, "MON-1"), (4, "MOU-1"), (6, None)]

    # A JSON export with a SKU that is not text: that item is reported, the sync goes on.
    json_export = tmp_path / "stock.json"
    json_export.write_text('[{"sku": {"id": 1}, "stock": 1}, {"sku": "LAP-1", "stock": "1,200"}]', encoding="utf-8")
    snapshot = await FileInventorySource(json_export).fetch()
    assert snapshot.levels == [StockLevel("LAP-1", stock=1200)]
    assert [str(error) for error in snapshot.rejected] == ["item 1: sku must be text, got dict"]

    with pytest.raises(InventoryRejectedError, match="does not exist"):
        await FileInventorySource(tmp_path / "missing.csv").fetch()
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("sku,quantity\nA,1\n", encoding="utf-8")
    with pytest.raises(InventoryRejectedError, match="missing required column"):
        await FileInventorySource(wrong).fetch()


# ---- Zoho Inventory ---------------------------------------------------------------------------------------


def _zoho(http: httpx.AsyncClient, **overrides: str) -> ZohoInventorySource:
    values = {
        "client_id": "1000.CLIENT",
        "client_secret": "client-secret",
        "refresh_token": "1000.refresh",
        "organization_id": "60012345",
        "accounts_url": ACCOUNTS,
        "api_url": API,
    }
    values.update(overrides)
    return ZohoInventorySource(http=http, **values)


def _item(sku: str, available: object, rate: object, **extra: object) -> dict[str, object]:
    return {
        "item_id": f"46000{sku}",
        "name": sku,
        "sku": sku,
        "status": "active",
        "rate": rate,
        "stock_on_hand": 100,
        "available_stock": available,
        "actual_available_stock": 99,
        **extra,
    }


@respx.mock
async def test_zoho_refreshes_the_token_and_reads_every_page() -> None:
    token = respx.post(f"{ACCOUNTS}/oauth/v2/token").mock(
        return_value=httpx.Response(
            200,
            json={
                "access_token": "1000.access",
                "api_domain": "https://www.zohoapis.com",
                "token_type": "Bearer",
                "expires_in": 3600,
            },
        )
    )
    items = respx.get(f"{API}/items").mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "code": 0,
                    "message": "success",
                    "items": [_item("LAP-1", 4, 3299.0), _item("", 1, 1), _item("MON-1", 2.7, "1049")],
                    "page_context": {"page": 1, "per_page": 200, "has_more_page": True},
                },
            ),
            httpx.Response(
                200,
                json={
                    "code": 0,
                    "message": "success",
                    "items": [_item("MOU-1", None, 399, available_stock=None), _item("BAD", -1, 5)],
                    "page_context": {"page": 2, "per_page": 200, "has_more_page": False},
                },
            ),
        ]
    )
    async with httpx.AsyncClient() as http:
        snapshot = await _zoho(http).fetch()

    assert snapshot.levels == [
        StockLevel("LAP-1", stock=4, price=Decimal("3299.00")),
        StockLevel("MON-1", stock=2, price=Decimal("1049.00")),
        StockLevel("MOU-1", stock=100, price=Decimal("399.00")),  # no available_stock: stock_on_hand
    ]
    assert [(error.sku, error.message) for error in snapshot.rejected] == [("BAD", "negative stock or rate")]
    form = parse_qs(token.calls.last.request.content.decode())
    assert form == {
        "grant_type": ["refresh_token"],
        "client_id": ["1000.CLIENT"],
        "client_secret": ["client-secret"],
        "refresh_token": ["1000.refresh"],
    }
    assert token.call_count == 1
    assert items.call_count == 2
    first = items.calls[0].request
    assert first.headers["Authorization"] == "Zoho-oauthtoken 1000.access"
    assert dict(first.url.params) == {
        "organization_id": "60012345",
        "page": "1",
        "per_page": "200",
        "filter_by": "Status.Active",
    }
    assert items.calls[1].request.url.params["page"] == "2"


@respx.mock
async def test_zoho_reuses_the_token_and_refreshes_once_on_401() -> None:
    token = respx.post(f"{ACCOUNTS}/oauth/v2/token").mock(
        side_effect=[
            httpx.Response(200, json={"access_token": "first", "expires_in": 3600}),
            httpx.Response(200, json={"access_token": "second", "expires_in": 3600}),
        ]
    )
    page = {"code": 0, "items": [_item("LAP-1", 1, 10)], "page_context": {"has_more_page": False}}
    items = respx.get(f"{API}/items").mock(
        side_effect=[
            httpx.Response(200, json=page),
            httpx.Response(401, json={"code": 57, "message": "You are not authorized to perform this operation"}),
            httpx.Response(200, json=page),
        ]
    )
    async with httpx.AsyncClient() as http:
        source = _zoho(http)
        await source.fetch()
        await source.fetch()
    assert token.call_count == 2
    assert [call.request.headers["Authorization"] for call in items.calls] == [
        "Zoho-oauthtoken first",
        "Zoho-oauthtoken first",
        "Zoho-oauthtoken second",
    ]


@respx.mock
async def test_zoho_errors_are_classified() -> None:
    token = respx.post(f"{ACCOUNTS}/oauth/v2/token")
    items = respx.get(f"{API}/items")
    async with httpx.AsyncClient() as http:
        token.mock(return_value=httpx.Response(200, json={"error": "invalid_code"}))
        with pytest.raises(InventoryRejectedError, match="invalid_code"):
            await _zoho(http).fetch()

        token.mock(return_value=httpx.Response(503, text="maintenance"))
        with pytest.raises(InventoryUnavailableError):
            await _zoho(http).fetch()

        token.mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(InventoryUnavailableError, match="ConnectError"):
            await _zoho(http).fetch()

        token.mock(return_value=httpx.Response(200, json={"access_token": "ok", "expires_in": 3600}))
        items.mock(return_value=httpx.Response(429, json={"code": 44, "message": "rate limit"}))
        with pytest.raises(InventoryUnavailableError, match="429"):
            await _zoho(http).fetch()

        items.mock(
            return_value=httpx.Response(200, json={"code": 2, "message": "Invalid value passed for organization_id"})
        )
        with pytest.raises(InventoryRejectedError, match="organization_id"):
            await _zoho(http).fetch()

        items.mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(InventoryUnavailableError):
            await _zoho(http).fetch()

        items.mock(return_value=httpx.Response(200, text="<html>proxy error</html>"))
        with pytest.raises(InventoryRejectedError, match="non-JSON"):
            await _zoho(http).fetch()

    with pytest.raises(ValueError, match="STOCK_FIELD"):
        _zoho(httpx.AsyncClient(), stock_field="quantity")


# ---- configuration and the cron job -------------------------------------------------------------------------


def _with_inventory(settings: Settings, **values: object) -> Settings:
    return settings.model_copy(update={"inventory": InventorySettings(**values)})  # type: ignore[arg-type]


def test_cron_job_is_registered_only_when_configured(settings: Settings, tmp_path: Path) -> None:
    assert inventory_cron_jobs(settings) == []
    assert inventory_cron_jobs(_with_inventory(settings, source="zoho", zoho_client_id="x")) == []  # incomplete
    configured = _with_inventory(settings, source="file", file_path=str(tmp_path / "s.csv"), sync_minutes=20)
    [job] = inventory_cron_jobs(configured)
    assert job.name == "sync_inventory"
    assert job.minute == {0, 20, 40}
    # The scheduled queue's worker runs it, with its own timeout, beside the other cron jobs.
    assert "sync_inventory" in [cron.name for cron in queue_options(configured, queues.SCHEDULED)["cron_jobs"]]
    assert "sync_inventory" not in [cron.name for cron in queue_options(settings, queues.SCHEDULED)["cron_jobs"]]
    hourly = _with_inventory(settings, source="file", file_path="x.csv", sync_minutes=180)
    assert inventory_cron_jobs(hourly)[0].hour == {0, 3, 6, 9, 12, 15, 18, 21}
    with pytest.raises(ValueError, match="INVENTORY_SOURCE"):
        InventorySettings(source="sap")


def test_build_source(settings: Settings) -> None:
    http = httpx.AsyncClient()
    assert build_source(settings.inventory, http) is None
    zoho = build_source(
        InventorySettings(
            source="zoho",
            zoho_client_id="id",
            zoho_client_secret="s",
            zoho_refresh_token="r",
            zoho_organization_id="1",
            zoho_api_url=API,
            zoho_accounts_url=ACCOUNTS,
            zoho_stock_field="stock_on_hand",
        ),
        http,
    )
    assert isinstance(zoho, ZohoInventorySource)
    assert zoho.stock_field == "stock_on_hand"
    assert zoho.http is http


async def test_the_cron_job_syncs_the_catalog(
    resources: Resources, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    async with unit_of_work(resources.sessionmaker) as session:
        await ingest_product_file(session, write_csv(tmp_path / "p.csv"), recording_embedder)
    export = tmp_path / "stock.json"
    export.write_text(json.dumps([{"sku": "LAP-1", "stock": 0}, {"sku": "MOU-1", "stock": 9, "price": 379}]))
    configured = dataclasses.replace(
        resources, settings=_with_inventory(resources.settings, source="file", file_path=str(export))
    )

    result = await sync_inventory({"resources": configured})
    assert result == "file: 2 items, updated 2, unchanged 0, unknown 0, rejected 0"
    async with resources.sessionmaker() as session:
        catalog = await _catalog(session)
    assert (catalog["LAP-1"].stock, catalog["MOU-1"].stock, catalog["MOU-1"].price) == (0, 9, Decimal(379))

    assert await run_inventory_sync(resources) is None  # not configured: nothing happens
    export.unlink()
    assert (await sync_inventory({"resources": configured})).startswith("failed: inventory file")
