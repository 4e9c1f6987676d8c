"""Product import: upsert by SKU, content-hash re-embedding, --full, bad rows with line numbers, file formats."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.knowledge import vector_index as vector_index_module
from salesbot.knowledge.catalog_files import IngestError
from salesbot.knowledge.catalog_rows import RowProblem, parse_price, parse_stock, read_product_file
from salesbot.knowledge.ingest import ingest_product_file
from salesbot.knowledge.vector_index import PRODUCTS
from salesbot.models import Product
from tests.fakes.embedder import RecordingEmbedder

HEADER = "sku,name,description,category,price,currency,stock,brand\n"
ROWS = [
    'LAP-1,ThinkPad E14,"14-inch business laptop, 16 GB RAM",Laptops,3299.00,AED,7,Lenovo\n',
    "MON-1,Dell P2423D,24-inch QHD monitor,Monitors,1049,AED,0,Dell\n",
    'PRN-1,HP LaserJet M404dn,"Mono laser printer,\nduplex, Ethernet",Printers,"1,199.50",AED,12,HP\n',
    "MOU-1,MX Master 3S,Wireless mouse,Keyboards & Mice,399,AED,40,Logitech\n",
]


def write_csv(path: Path, rows: list[str] = ROWS, header: str = HEADER) -> Path:
    path.write_text(header + "".join(rows), encoding="utf-8")
    return path


async def products(session: AsyncSession) -> dict[str, Product]:
    rows = (await session.execute(select(Product).execution_options(populate_existing=True))).scalars()
    return {product.sku: product for product in rows}


async def test_import_adds_products_with_vectors(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    report = await ingest_product_file(db_session, write_csv(tmp_path / "p.csv"), recording_embedder)
    assert (report.added, report.updated, report.unchanged, report.deactivated, report.rejected) == (4, 0, 0, 0, [])
    assert report.embedded == 4
    assert len(recording_embedder.documents) == 4
    stored = await products(db_session)
    printer = stored["PRN-1"]
    assert printer.price == Decimal("1199.50")
    assert printer.currency == "AED"
    assert printer.stock == 12
    assert printer.description == "Mono laser printer,\nduplex, Ethernet"
    assert printer.attributes == {"brand": "HP"}
    assert printer.embedding is not None
    assert len(printer.embedding) == 1024
    assert printer.embedding_model == recording_embedder.name
    assert printer.content_hash


async def test_reimporting_the_same_file_changes_and_embeds_nothing(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "p.csv")
    await ingest_product_file(db_session, path, recording_embedder)
    before = {
        sku: (p.updated_at, p.content_hash, list(p.embedding or [])) for sku, p in (await products(db_session)).items()
    }
    recording_embedder.reset()

    report = await ingest_product_file(db_session, path, recording_embedder)

    assert (report.added, report.updated, report.unchanged, report.embedded) == (0, 0, 4, 0)
    assert recording_embedder.document_calls == 0
    after = {
        sku: (p.updated_at, p.content_hash, list(p.embedding or [])) for sku, p in (await products(db_session)).items()
    }
    assert after == before


async def test_a_changed_description_reembeds_exactly_one_row(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    await ingest_product_file(db_session, write_csv(tmp_path / "p.csv"), recording_embedder)
    before = await products(db_session)
    vectors = {sku: list(p.embedding or []) for sku, p in before.items()}
    recording_embedder.reset()

    changed = [*ROWS]
    changed[1] = "MON-1,Dell P2423D,24-inch QHD monitor with USB hub and pivot stand,Monitors,1049,AED,0,Dell\n"
    report = await ingest_product_file(db_session, write_csv(tmp_path / "p2.csv", changed), recording_embedder)

    assert (report.added, report.updated, report.unchanged, report.embedded) == (0, 1, 3, 1)
    assert len(recording_embedder.documents) == 1
    assert "USB hub and pivot stand" in recording_embedder.documents[0]
    after = await products(db_session)
    assert after["MON-1"].description.endswith("pivot stand")
    assert list(after["MON-1"].embedding or []) != vectors["MON-1"]
    assert {sku: list(p.embedding or []) for sku, p in after.items() if sku != "MON-1"} == {
        sku: vector for sku, vector in vectors.items() if sku != "MON-1"
    }


async def test_price_and_stock_changes_update_without_embedding(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    await ingest_product_file(db_session, write_csv(tmp_path / "p.csv"), recording_embedder)
    recording_embedder.reset()
    changed = [*ROWS]
    changed[3] = "MOU-1,MX Master 3S,Wireless mouse,Keyboards & Mice,349,AED,0,Logitech\n"
    report = await ingest_product_file(db_session, write_csv(tmp_path / "p2.csv", changed), recording_embedder)
    assert (report.updated, report.unchanged, report.embedded) == (1, 3, 0)
    mouse = (await products(db_session))["MOU-1"]
    assert (mouse.price, mouse.stock) == (Decimal(349), 0)


async def test_a_changed_model_reembeds_unchanged_rows(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "p.csv")
    await ingest_product_file(db_session, path, recording_embedder)
    other = RecordingEmbedder(recording_embedder.inner, model_name="another-model")
    report = await ingest_product_file(db_session, path, other)
    assert (report.updated, report.unchanged, report.embedded) == (0, 4, 4)
    assert {p.embedding_model for p in (await products(db_session)).values()} == {"another-model"}


async def test_malformed_rows_are_reported_with_line_numbers_and_skipped(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    rows = [
        ROWS[0],  # line 2
        ",No SKU,desc,Laptops,100,AED,1,X\n",  # line 3
        ROWS[2],  # lines 4-5 (quoted newline)
        "BAD-PRICE,Negative,desc,Laptops,-5,AED,1,X\n",  # line 6
        "BAD-NUM,Not a number,desc,Laptops,12abc,AED,1,X\n",  # line 7
        "BAD-STOCK,Half a unit,desc,Laptops,10,AED,1.5,X\n",  # line 8
        "\n",  # line 9 (blank, ignored)
        "BAD-CUR,Bad currency,desc,Laptops,10,DOLLARS,1,X\n",  # line 10
        "LAP-1,Duplicate,desc,Laptops,10,AED,1,X\n",  # line 11
        "TOO-MANY,Extra,desc,Laptops,10,AED,1,X,surprise\n",  # line 12
        "NO-NAME,,desc,Laptops,10,AED,1,X\n",  # line 13
        ROWS[3],  # line 14
    ]
    report = await ingest_product_file(db_session, write_csv(tmp_path / "p.csv", rows), recording_embedder)

    assert report.added == 3
    assert set(await products(db_session)) == {"LAP-1", "PRN-1", "MOU-1"}
    problems = {error.line: str(error) for error in report.rejected}
    assert sorted(problems) == [3, 6, 7, 8, 10, 11, 12, 13]
    assert "sku is missing" in problems[3]
    assert "must not be negative" in problems[6]
    assert "BAD-PRICE" in problems[6]
    assert "price is not a number" in problems[7]
    assert "whole number" in problems[8]
    assert "currency" in problems[10]
    assert "duplicate sku, first seen at line 2" in problems[11]
    assert "header has 8 columns" in problems[12]
    assert "name is missing" in problems[13]
    assert all(str(error).startswith(f"line {error.line}") for error in report.rejected)


async def test_full_import_deactivates_missing_products_but_not_rejected_ones(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    await ingest_product_file(db_session, write_csv(tmp_path / "p.csv"), recording_embedder)
    rows = [ROWS[0], "MON-1,Dell P2423D,24-inch QHD monitor,Monitors,oops,AED,0,Dell\n"]
    report = await ingest_product_file(db_session, write_csv(tmp_path / "p2.csv", rows), recording_embedder, full=True)
    assert (report.unchanged, report.deactivated, len(report.rejected)) == (1, 2, 1)
    state = {sku: p.active for sku, p in (await products(db_session)).items()}
    # MON-1's row was malformed: it is reported, not treated as gone.
    assert state == {"LAP-1": True, "MON-1": True, "PRN-1": False, "MOU-1": False}

    # A later import that lists a deactivated product again brings it back.
    report = await ingest_product_file(db_session, write_csv(tmp_path / "p3.csv", ROWS[2:3]), recording_embedder)
    assert report.updated == 1
    assert (await products(db_session))["PRN-1"].active


async def test_full_import_without_valid_rows_is_refused(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    await ingest_product_file(db_session, write_csv(tmp_path / "p.csv"), recording_embedder)
    with pytest.raises(IngestError, match="refusing"):
        await ingest_product_file(
            db_session, write_csv(tmp_path / "bad.csv", [",x,,,1,,,\n"]), recording_embedder, full=True
        )


async def test_json_and_json_lines(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    items = [
        {"sku": "J-1", "name": "Tablet", "price": 799, "stock": 3, "attributes": {"color": "graphite"}},
        {"SKU": "J-2", "Name": "Dock", "Price": "899.90", "Currency": "usd", "warranty_months": 36},
        {"sku": "J-3", "name": "Broken", "price": True},
        "not an object",
    ]
    json_path = tmp_path / "p.json"
    json_path.write_text(json.dumps({"products": items}), encoding="utf-8")
    report = await ingest_product_file(db_session, json_path, recording_embedder)
    assert report.added == 2
    assert [(error.unit, error.line) for error in report.rejected] == [("item", 3), ("item", 4)]
    stored = await products(db_session)
    assert stored["J-1"].attributes == {"color": "graphite"}
    assert stored["J-1"].currency == "AED"  # no currency: the playbook's, not dollars
    assert stored["J-2"].currency == "USD"
    assert stored["J-2"].attributes == {"warranty_months": 36}

    lines_path = tmp_path / "p.jsonl"
    lines_path.write_text('{"sku": "L-1", "name": "Cable", "price": 39}\n\n{broken\n', encoding="utf-8")
    report = await ingest_product_file(db_session, lines_path, recording_embedder)
    assert report.added == 1
    assert [(error.line, error.unit) for error in report.rejected] == [(3, "line")]


def test_missing_columns_and_unknown_formats_fail_the_whole_file(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="missing required column"):
        read_product_file(write_csv(tmp_path / "p.csv", ROWS, header="sku,name,description\n"))
    with pytest.raises(IngestError, match="empty"):
        read_product_file(write_csv(tmp_path / "e.csv", [], header=""))
    bad = tmp_path / "p.json"
    bad.write_text("[{", encoding="utf-8")
    with pytest.raises(IngestError, match="invalid JSON"):
        read_product_file(bad)
    with pytest.raises(IngestError, match="cannot read"):
        read_product_file(tmp_path / "missing.csv")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1299", "1299.00"), ("1,299.50", "1299.50"), (" 0 ", "0.00"), (12.345, "12.35"), ("1e3", "1000.00")],
)
def test_parse_price_accepts(raw: object, expected: str) -> None:
    assert parse_price(raw) == Decimal(expected)


@pytest.mark.parametrize("raw", ["", "-1", "abc", "NaN", "Infinity", "1,29", "1.299,00", True, "1e20"])
def test_parse_price_rejects(raw: object) -> None:
    with pytest.raises(RowProblem):
        parse_price(raw)


def test_parse_stock() -> None:
    assert parse_stock("") == 0
    assert parse_stock("12") == 12
    assert parse_stock(7) == 7
    assert parse_stock("3.0") == 3
    for bad in ("-1", "1.5", "many", False):
        with pytest.raises(RowProblem):
            parse_stock(bad)


async def test_an_image_url_column_is_imported_and_a_bad_one_is_a_line_error(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    rows = [
        "CH-1,Mesh chair,450,https://cdn.shop.example/img/mesh-chair.jpg\n",  # line 2
        "CH-2,Stool,75,\n",  # line 3: no photo
        "CH-3,Armchair,900,ftp://cdn.shop.example/armchair.jpg\n",  # line 4
        "CH-4,Bench,300,javascript:alert(1)\n",  # line 5
    ]
    path = write_csv(tmp_path / "p.csv", rows, header="sku,name,price,image_url\n")
    report = await ingest_product_file(db_session, path, recording_embedder, default_currency="AED")

    stored = await products(db_session)
    assert {sku: product.image_url for sku, product in stored.items()} == {
        "CH-1": "https://cdn.shop.example/img/mesh-chair.jpg",
        "CH-2": None,
    }
    assert "image_url" not in stored["CH-1"].attributes
    problems = {error.line: str(error) for error in report.rejected}
    assert sorted(problems) == [4, 5]
    assert all("image_url must be an http or https URL" in problem for problem in problems.values())

    # A later file changes the photo like any other column.
    rows = ["CH-1,Mesh chair,450,http://img.shop.example/chair-v2.png\n"]
    path = write_csv(tmp_path / "p2.csv", rows, header="sku,name,price,image_url\n")
    report = await ingest_product_file(db_session, path, recording_embedder, default_currency="AED")
    assert report.updated == 1
    assert (await products(db_session))["CH-1"].image_url == "http://img.shop.example/chair-v2.png"


async def vector_index(session: AsyncSession) -> tuple[int, list[str]] | None:
    """The products' HNSW index: its oid (a new one after a rebuild) and its parameters."""
    row = (
        await session.execute(
            text("SELECT oid, reloptions FROM pg_class WHERE oid = to_regclass(:name)"), {"name": PRODUCTS.index}
        )
    ).one_or_none()
    return None if row is None else (int(row.oid), sorted(row.reloptions))


async def test_a_mostly_new_catalog_gets_its_vector_index_built_after_the_rows(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building the dense HNSW graph once is an order of magnitude faster than inserting as many rows into it;
    a catalog that is not mostly new keeps its index (a rebuild would cost a pass over the whole table)."""
    monkeypatch.setattr(vector_index_module, "REBUILD_MIN_VECTORS", 6)
    parameters = sorted([f"m={PRODUCTS.m}", f"ef_construction={PRODUCTS.ef_construction}"])
    migrated = await vector_index(db_session)
    assert migrated is not None
    assert migrated[1] == parameters

    first = [f"RB-{i},Chair {i},{100 + i}\n" for i in range(10)]
    await ingest_product_file(
        db_session, write_csv(tmp_path / "a.csv", first, "sku,name,price\n"), recording_embedder, default_currency="AED"
    )
    built = await vector_index(db_session)
    assert built is not None
    assert built[0] != migrated[0]
    assert built[1] == parameters

    # More new vectors than the threshold, but not more than the table holds: the rows go into the index as it is.
    more = [f"RB-{i},Desk {i},{300 + i}\n" for i in range(10, 18)]
    await ingest_product_file(
        db_session, write_csv(tmp_path / "b.csv", more, "sku,name,price\n"), recording_embedder, default_currency="AED"
    )
    assert await vector_index(db_session) == built

    # Either way every vector is in the index: an index scan finds each product as its own nearest neighbour.
    await db_session.execute(text("SET LOCAL enable_seqscan = off"))
    stored = await products(db_session)
    assert len(stored) == 18
    for product in stored.values():
        nearest = await db_session.scalar(
            select(Product.sku).order_by(Product.embedding.cosine_distance(product.embedding)).limit(1)
        )
        assert nearest == product.sku
