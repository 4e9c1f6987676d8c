"""The quotation PDF, read back with a PDF text extractor: every figure and label is really in the document, and
Arabic and Russian text come back as the letters that were written (shaped, not tofu or reversed letters)."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from salesbot.documents.quote_pdf import QuoteDocument, QuoteLine, labels_for, render_quote_pdf

DOCUMENT = QuoteDocument(
    number="Q-000042",
    issued=date(2026, 1, 15),
    valid_until=date(2026, 1, 29),
    language="en",
    seller_name="Falcon Office Systems",
    seller_address="Warehouse 14, Al Quoz Industrial Area 3, Dubai",
    seller_website="https://falcon-office.example",
    logo=None,
    customer_name="Maria Ivanova",
    company_name="Northwind Trading LLC",
    lines=(
        QuoteLine("LP-1001", "Lenovo ThinkPad E14 Gen 5", 5, Decimal("3899.00"), Decimal("19495.00")),
        QuoteLine("MN-2203", "Dell P2423 24-inch monitor", 3, Decimal("899.50"), Decimal("2698.50")),
    ),
    subtotal=Decimal("22193.50"),
    discount_pct=Decimal("5"),
    discount_amount=Decimal("1109.68"),
    total=Decimal("21083.82"),
    currency="AED",
    payment_terms="Bank transfer or card payment link.",
    delivery_terms="Dubai and Sharjah next business day.",
)


def text_of(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_an_english_quote_carries_every_figure_and_term() -> None:
    text = text_of(render_quote_pdf(DOCUMENT))
    for expected in (
        "Falcon Office Systems",
        "Warehouse 14, Al Quoz Industrial Area 3, Dubai",
        "Quotation",
        "Quote no.: Q-000042",
        "Date: 2026-01-15",
        "Valid until: 2026-01-29",
        "Customer: Maria Ivanova",
        "Company: Northwind Trading LLC",
        "LP-1001",
        "Lenovo ThinkPad E14 Gen 5",
        "3,899.00",
        "19,495.00",
        "899.50",
        "2,698.50",
        "Subtotal: 22,193.50 AED",
        "Discount 5%: -1,109.68 AED",
        "Total: 21,083.82 AED",
        "Bank transfer or card payment link.",
        "Dubai and Sharjah next business day.",
    ):
        assert expected in text, expected


def test_a_russian_quote_renders_cyrillic() -> None:
    document = replace(DOCUMENT, language="ru", customer_name="Мария Иванова", company_name="ООО «Северный ветер»")
    text = text_of(render_quote_pdf(document))
    labels = labels_for("ru")
    for expected in (labels["title"], "Мария Иванова", "ООО «Северный ветер»", "Итого: 21,083.82 AED", "Артикул"):
        assert expected in text, expected


def test_an_arabic_quote_is_shaped_right_to_left_and_extracts_as_written() -> None:
    document = replace(DOCUMENT, language="ar", customer_name="عمر الفارسي", company_name="شركة النخيل للتجارة")
    content = render_quote_pdf(document)
    text = text_of(content)
    # Each word comes back letter for letter (a font without Arabic would give nothing, unshaped text would give
    # isolated forms that map to other code points).
    for word in ("عرض", "سعر", "عمر", "الفارسي", "شركة", "النخيل", "للتجارة", "الإجمالي", "الخصم"):
        assert word in text, word
    assert "21,083.82" in text
    assert "LP-1001" in text
    # The Arabic table starts with its SKU column on the right: the amount comes first on each extracted line.
    line = next(row for row in text.splitlines() if "LP-1001" in row)
    assert line.index("19,495.00") < line.index("LP-1001")


def _png(path: Path) -> None:
    width = height = 4
    raw = b"".join(b"\x00" + b"\xc8\x10\x2e" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def test_the_logo_is_embedded_and_an_unreadable_one_is_left_out(tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    _png(logo)
    with_logo = PdfReader(io.BytesIO(render_quote_pdf(replace(DOCUMENT, logo=logo))))
    assert len(with_logo.pages[0].images) == 1

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    without = PdfReader(io.BytesIO(render_quote_pdf(replace(DOCUMENT, logo=broken))))
    assert len(without.pages[0].images) == 0


@pytest.mark.parametrize("language", ["de", "uk"])
def test_languages_without_labels_get_english(language: str) -> None:
    assert "Quotation" in text_of(render_quote_pdf(replace(DOCUMENT, language=language)))
