"""Importing a catalog file into the database: strict imports write nothing, bad text never fails the file,
free attribute columns survive the round trip."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.knowledge.ingest import RejectedFileError, ingest_product_file
from tests.fakes.embedder import RecordingEmbedder
from tests.knowledge.test_ingest_products import ROWS, products, write_csv


async def test_a_strict_import_with_bad_rows_writes_nothing_and_lists_them_all(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    await ingest_product_file(db_session, write_csv(tmp_path / "p.csv"), recording_embedder)
    before = {sku: (p.price, p.stock, p.updated_at) for sku, p in (await products(db_session)).items()}
    recording_embedder.reset()
    rows = [
        "LAP-1,ThinkPad E14,cheaper now,Laptops,2999,AED,9,Lenovo\n",  # line 2: a valid change
        "NEW-1,New product,desc,Laptops,10,AED,1,X\n",  # line 3: valid and new
        "BAD-1,Negative,desc,Laptops,-5,AED,1,X\n",  # line 4
        "BAD-2,Two problems,desc,Laptops,abc,AED,-1,X\n",  # line 5
        "NEW-1,Twice,desc,Laptops,10,AED,1,X\n",  # line 6
    ]

    with pytest.raises(RejectedFileError) as raised:
        await ingest_product_file(
            db_session, write_csv(tmp_path / "bad.csv", rows), recording_embedder, strict=True, full=True
        )

    assert [(error.line, error.sku) for error in raised.value.rejected] == [(4, "BAD-1"), (5, "BAD-2"), (6, "NEW-1")]
    assert [problem.column for problem in raised.value.rejected[1].problems] == ["price", "stock"]
    assert "3 bad row(s), nothing imported" in str(raised.value)
    assert recording_embedder.document_calls == 0
    after = {sku: (p.price, p.stock, p.updated_at) for sku, p in (await products(db_session)).items()}
    assert after == before

    # The same file without --strict imports the good rows, as documented.
    report = await ingest_product_file(db_session, write_csv(tmp_path / "bad.csv", rows), recording_embedder)
    assert (report.added, report.updated, len(report.rejected)) == (1, 1, 3)
    assert (await products(db_session))["LAP-1"].price == Decimal(2999)


async def test_text_a_database_cannot_store_is_a_row_error_not_a_failed_import(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    rows = [
        ROWS[0],  # line 2
        "NUL-1,Broken\x00name,desc,Laptops,10,AED,1,X\n",  # line 3
        "NUL-2,Fine name,desc,Laptops,10,AED,1,Acme\x00\n",  # line 4: a free column
        ROWS[3],  # line 5
    ]
    report = await ingest_product_file(db_session, write_csv(tmp_path / "p.csv", rows), recording_embedder)

    assert set(await products(db_session)) == {"LAP-1", "MOU-1"}
    assert [str(error) for error in report.rejected] == [
        "line 3 (sku NUL-1): name must not contain control characters",
        "line 4 (sku NUL-2): brand must not contain control characters",
    ]


async def test_free_attribute_columns_round_trip(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    header = "sku,name,price,attributes,brand,warranty_months,part_no,ports,size\n"
    rows = [
        'PR-1,Printer,1000,"{""duplex"": true, ""trays"": [""A4"", ""A5""]}",HP,36,0042,USB-C,²\n',
        "PR-2,Scanner,400,,Canon,١٢,,,\n",
    ]
    path = write_csv(tmp_path / "c.csv", rows, header)
    await ingest_product_file(db_session, path, recording_embedder, default_currency="AED")

    stored = await products(db_session)
    assert stored["PR-1"].attributes == {
        "duplex": True,
        "trays": ["A4", "A5"],
        "brand": "HP",
        "warranty_months": 36,
        "part_no": "0042",
        "ports": "USB-C",
        "size": "²",
    }
    assert stored["PR-2"].attributes == {"brand": "Canon", "warranty_months": 12}
    assert "HP" in recording_embedder.documents[0].splitlines()  # brand-like attributes are embedded

    # Importing the same file again finds every attribute equal: nothing updated, nothing embedded.
    recording_embedder.reset()
    report = await ingest_product_file(db_session, path, recording_embedder, default_currency="AED")
    assert (report.updated, report.unchanged, report.embedded) == (0, 2, 0)
