"""The quotation as a branded PDF: seller, quote number and dates, customer, line items, totals and terms.

fpdf2 renders it with the DejaVu fonts shipped beside this file (Latin, Cyrillic and Arabic in one family) and
HarfBuzz text shaping, so Arabic is joined and laid out right to left and Russian needs no fallback font. Labels
follow the conversation's language (`labels.yaml`); a document in Arabic mirrors its columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

import yaml
from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos

from salesbot.kit.logging import get_logger

log = get_logger(__name__)

FONTS = Path(__file__).with_name("fonts")
FONT = "dejavu"
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur"})
# SKU, item, quantity, unit price, amount (mm; A4 minus 15 mm margins leaves 180).
COLUMN_WIDTHS = (26, 72, 14, 34, 34)


@dataclass(frozen=True)
class QuoteLine:
    sku: str
    name: str
    qty: int
    unit_price: Decimal
    line_total: Decimal


@dataclass(frozen=True)
class QuoteDocument:
    """Everything printed on a quotation; built from the database and the playbook by `documents.service`."""

    number: str
    issued: date
    valid_until: date
    language: str
    seller_name: str
    seller_address: str
    seller_website: str
    logo: Path | None
    customer_name: str | None
    company_name: str | None
    lines: tuple[QuoteLine, ...]
    subtotal: Decimal
    discount_pct: Decimal
    discount_amount: Decimal
    total: Decimal
    currency: str
    payment_terms: str
    delivery_terms: str

    @property
    def filename(self) -> str:
        return f"quote-{self.number}.pdf"


@cache
def _labels() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = yaml.safe_load(Path(__file__).with_name("labels.yaml").read_text("utf-8"))
    return data


def labels_for(language: str) -> dict[str, str]:
    return _labels().get(language, _labels()["en"])


def _amount(value: Decimal) -> str:
    return f"{value:,.2f}"


class _Page(FPDF):
    def __init__(self, rtl: bool) -> None:
        super().__init__(format="A4")
        self.rtl = rtl
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(auto=True, margin=15)
        self.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        self.set_text_shaping(True)

    @property
    def start(self) -> Align:
        return Align.R if self.rtl else Align.L

    def line_of(self, text: str, *, size: float = 10, bold: bool = False, height: float = 5.5) -> None:
        self.set_font(FONT, "B" if bold else "", size)
        self.multi_cell(0, height, text, align=self.start, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def render_quote_pdf(document: QuoteDocument) -> bytes:
    """The PDF bytes (CPU-bound, tens of milliseconds: call it off the event loop)."""
    labels = labels_for(document.language)
    pdf = _Page(rtl=document.language in RTL_LANGUAGES)
    pdf.set_title(f"{labels['title']} {document.number}")
    pdf.set_author(document.seller_name)
    pdf.set_creator("salesbot")
    pdf.add_page()

    if document.logo is not None:
        try:
            pdf.image(str(document.logo), x=pdf.w - 15 - 40 if not pdf.rtl else 15, y=12, h=16)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("documents.logo_unreadable", path=str(document.logo), error=type(exc).__name__)
    pdf.line_of(document.seller_name, size=15, bold=True, height=7)
    for text in (document.seller_address, document.seller_website):
        if text:
            pdf.line_of(text, size=9, height=4.5)
    pdf.ln(6)

    pdf.line_of(labels["title"], size=18, bold=True, height=9)
    pdf.line_of(f"{labels['number']}: {document.number}")
    pdf.line_of(f"{labels['date']}: {document.issued.isoformat()}")
    pdf.line_of(f"{labels['valid_until']}: {document.valid_until.isoformat()}")
    if document.customer_name:
        pdf.line_of(f"{labels['customer']}: {document.customer_name}")
    if document.company_name:
        pdf.line_of(f"{labels['company']}: {document.company_name}")
    pdf.ln(4)

    headings = [labels["sku"], labels["item"], labels["qty"], f"{labels['unit_price']} ({document.currency})"]
    headings.append(f"{labels['amount']} ({document.currency})")
    aligns = [pdf.start, pdf.start, Align.R, Align.R, Align.R]
    widths = list(COLUMN_WIDTHS)
    rows = [
        [line.sku, line.name, str(line.qty), _amount(line.unit_price), _amount(line.line_total)]
        for line in document.lines
    ]
    if pdf.rtl:  # the first column is on the right in a right-to-left document
        headings, aligns, widths = headings[::-1], aligns[::-1], widths[::-1]
        rows = [row[::-1] for row in rows]
    pdf.set_font(FONT, "", 9)
    with pdf.table(
        col_widths=tuple(widths), text_align=tuple(aligns), line_height=5.5, first_row_as_headings=True
    ) as table:
        heading_row = table.row()
        for heading in headings:
            heading_row.cell(heading)
        for values in rows:
            row = table.row()
            for text in values:
                row.cell(text)
    pdf.ln(3)

    totals = [(labels["subtotal"], document.subtotal, False)]
    if document.discount_amount:
        totals.append(
            (f"{labels['discount']} {document.discount_pct.normalize():f}%", -document.discount_amount, False)
        )
    totals.append((labels["total"], document.total, True))
    for label, value, bold in totals:
        pdf.set_font(FONT, "B" if bold else "", 11 if bold else 10)
        pdf.cell(0, 6.5, f"{label}: {_amount(value)} {document.currency}", align=Align.L if pdf.rtl else Align.R)
        pdf.ln(6.5)
    pdf.ln(4)

    for label, text in ((labels["payment"], document.payment_terms), (labels["delivery"], document.delivery_terms)):
        if text:
            pdf.line_of(label, size=10, bold=True)
            pdf.line_of(text, size=9, height=4.5)
            pdf.ln(2)
    pdf.line_of(labels["prices_note"], size=8, height=4)
    return bytes(pdf.output())
