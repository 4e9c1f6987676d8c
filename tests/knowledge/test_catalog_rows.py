"""The catalog row model: every problem of every row, by line and column; numbers as businesses write them."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from salesbot.knowledge.catalog_rows import CatalogRow, RowProblem, parse_price, parse_stock, read_product_file

HEADER = "sku,name,price,currency,stock,image_url,brand\n"


def write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(rows), encoding="utf-8")
    return path


def test_every_problem_of_every_bad_row_is_listed_with_its_line_and_column(tmp_path: Path) -> None:
    rows = [
        "AR-1,Arabic digits,١٬٢٩٩٫٥٠,AED,١٢,,Lenovo\n",  # line 2: fine
        'TH-1,Thousands,"1,299.50",aed,3,,HP\n',  # line 3: fine
        "NEG-1,Negative,-5,AED,1,,HP\n",  # line 4
        "CUR-1,Bad currency,10,DOLLARS,1,,HP\n",  # line 5
        "IMG-1,Bad photo,10,AED,1,ftp://cdn.example/p.jpg,HP\n",  # line 6
        "MANY-1,,abc,US$,-2,javascript:alert(1),HP\n",  # line 7: five problems
        "AR-1,Duplicate,10,AED,1,,HP\n",  # line 8
        "OK-1,Fine,10,,1,,HP\n",  # line 9: fine, the default currency
    ]
    records, errors = read_product_file(write(tmp_path / "c.csv", rows), default_currency="SAR")

    assert [(record.sku, record.price, record.currency, record.stock) for record in records] == [
        ("AR-1", Decimal("1299.50"), "AED", 12),
        ("TH-1", Decimal("1299.50"), "AED", 3),
        ("OK-1", Decimal("10.00"), "SAR", 1),
    ]
    by_line = {error.line: error for error in errors}
    assert sorted(by_line) == [4, 5, 6, 7, 8]
    assert str(by_line[4]) == "line 4 (sku NEG-1): price must not be negative, got '-5'"
    assert str(by_line[5]).startswith("line 5 (sku CUR-1): currency must be a 3-letter ISO 4217 code")
    assert str(by_line[5]).endswith("got 'DOLLARS'")
    assert str(by_line[6]).startswith("line 6 (sku IMG-1): image_url must be an http or https URL")
    assert str(by_line[8]) == "line 8 (sku AR-1): duplicate sku, first seen at line 2"

    many = by_line[7]
    assert [problem.column for problem in many.problems] == ["name", "price", "currency", "stock", "image_url"]
    assert [problem.message for problem in many.problems][:2] == [
        "name is missing",
        "price is not a number (write it like 1299.50 or 1,299.50), got 'abc'",
    ]
    assert "stock must not be negative, got '-2'" in str(many)
    assert str(many).startswith("line 7 (sku MANY-1): name is missing; price is not a number")
    assert all(problem.column in problem.message for error in errors for problem in error.problems)


def test_json_items_are_numbered_and_free_columns_are_named(tmp_path: Path) -> None:
    items = [
        {"sku": "J-1", "name": {"en": "Tablet"}, "price": "12", "brand": "Acme\u0000"},
        {"sku": "J-2", "name": "Dock", "price": 99, "attributes": ["not", "an", "object"]},
        {"SKU": "J-3", "Name": "Cable", "Price": 9.5},
    ]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    records, errors = read_product_file(path, default_currency="AED")

    assert [record.sku for record in records] == ["J-3"]
    assert [str(error) for error in errors] == [
        "item 1 (sku J-1): name must be text, got dict; brand must not contain control characters",
        'item 2 (sku J-2): attributes must be a JSON object like {"brand": "HP"}, got list',
    ]


def test_free_columns_become_attributes_as_written(tmp_path: Path) -> None:
    header = "sku,name,price,attributes,brand,warranty_months,part_no,colour,size\n"
    rows = ['P-1,Printer,10,"{""duplex"": true, ""brand"": ""old""}",HP,36,0042,  ,²\n']
    [record], errors = read_product_file(write(tmp_path / "c.csv", rows, header), default_currency="AED")

    assert errors == []
    # The column wins over the same key in the JSON; "0042" keeps its zeros; a blank cell is no attribute; a
    # superscript digit is text (int() of it used to crash the import).
    assert record.attributes == {"duplex": True, "brand": "HP", "warranty_months": 36, "part_no": "0042", "size": "²"}
    assert "HP" in record.document.splitlines()


def test_a_row_without_currency_takes_the_default_and_codes_are_upper_cased() -> None:
    context = {"default_currency": "KZT"}
    blank = CatalogRow.model_validate({"sku": "A", "name": "A", "price": "1", "currency": "  "}, context=context)
    absent = CatalogRow.model_validate({"sku": "B", "name": "B", "price": "1"}, context=context)
    lower = CatalogRow.model_validate({"sku": "C", "name": "C", "price": "1", "currency": "eur"}, context=context)
    assert (blank.currency, absent.currency, lower.currency) == ("KZT", "KZT", "EUR")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("١٢٩٩", "1299.00"), ("١,٢٩٩.٥", "1299.50"), ("١٬٢٩٩٫٥٠", "1299.50"), ("٠٫٩٩", "0.99"), ("۱۲۰", "120.00")],
)
def test_prices_in_arabic_indic_digits(raw: str, expected: str) -> None:
    assert parse_price(raw) == Decimal(expected)


@pytest.mark.parametrize("raw", ["١٬٢٩", "١٫٢٩٩٫٠٠", "12 abc"])
def test_ambiguous_arabic_separators_are_refused(raw: str) -> None:
    with pytest.raises(RowProblem, match="price is not a number"):
        parse_price(raw)


def test_stock_as_written() -> None:
    assert parse_stock("١٢") == 12
    assert parse_stock("1,200") == parse_stock("١٬٢٠٠") == 1200
    for ambiguous in ("1,2", "sNaN", "NaN"):
        with pytest.raises(RowProblem, match="stock is not a number"):
            parse_stock(ambiguous)
    with pytest.raises(RowProblem, match=r"stock must be a whole number, got '1\.5'"):
        parse_stock("1.5")
