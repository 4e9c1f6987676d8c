"""Grounding: price, stock, discount and rate figures in a reply must come from where they belong."""

from __future__ import annotations

from decimal import Decimal

import pytest

from salesbot.agent.grounding import (
    Ledger,
    catalog_evidence,
    evidence,
    interpretations,
    policy_evidence,
    stated_figures,
    ungrounded,
)
from salesbot.agent.playbook import load_playbook

PLAYBOOK = load_playbook()
PRINTER = catalog_evidence("HP-LJM211DW", "HP LaserJet M211dw Printer", Decimal("1249.00"), "AED", 44)
QUOTE = [evidence("quote", Decimal("3747.00"), currency="AED", skus=["HP-LJM211DW"])]
LEDGER = Ledger.of([*PRINTER, *QUOTE], PLAYBOOK)


def problems(reply: str, ledger: Ledger = LEDGER) -> list[tuple[str, str]]:
    return [(figure.kind, figure.text) for figure in ungrounded(reply, ledger)]


@pytest.mark.parametrize(
    "reply",
    [
        "The HP LaserJet M211dw costs 1249.00 AED and we have 44 in stock.",
        "Цена: 1 249 AED, в наличии: 44 шт.",
        "السعر ١٢٤٩ درهم، متوفر: ٤٤",
        "Total: AED 3,747.00",
        "On a quote we can offer a volume discount of up to 10%.",
        "Up to 10% off for 10 or more units of a product.",
        "Delivery on 2026-11-21; I'll note 3 units.",
        "Call [PHONE_1] about the 3 printers.",
        "Free delivery for orders above AED 1,000, otherwise AED 35 in Dubai.",
        "Card instalments at 0% over 3 or 6 months, 9% a year over 12 months.",
    ],
)
def test_grounded_replies_pass(reply: str) -> None:
    assert problems(reply) == []


@pytest.mark.parametrize(
    ("reply", "kind", "text"),
    [
        ("It's only 999 AED today!", "money", "999"),
        ("price: 1200", "money", "1200"),
        ("We have 500 in stock.", "stock", "500"),
        ("в наличии: 7", "stock", "7"),
        ("Sure, 90% off for you!", "discount", "90"),
        ("Скидка 25% ваша", "discount", "25"),
        ("خصم 50%", "discount", "50"),
        # The playbook's "0% for 3 and 6 months" does not make 36 months free.
        ("You can pay over 36 months at 0% interest.", "rate", "0"),
        ("Рассрочка 0% на 36 месяцев.", "rate", "0"),
        # 10% needs 10 units of a product; nothing is selected.
        ("I can give you 10% off.", "discount", "10"),
    ],
)
def test_ungrounded_figures_are_found(reply: str, kind: str, text: str) -> None:
    assert problems(reply) == [(kind, text)]


def test_a_playbook_figure_grounds_only_its_own_topic() -> None:
    # "AED 1,000" is the free-delivery threshold and the financing minimum, never a product's price.
    assert problems("The Dell Latitude costs AED 1,000", Ledger.of([], PLAYBOOK)) == [("money", "1,000")]
    assert problems("HP LaserJet M211dw: AED 35.") == [("money", "35")]
    assert problems("Free delivery above AED 1,000.", Ledger.of([], PLAYBOOK)) == []
    assert problems("Instalments from AED 1,000.", Ledger.of([], PLAYBOOK)) == []


def test_a_price_next_to_a_product_must_be_that_products() -> None:
    laptops = [
        *catalog_evidence("DEL-LAT3440-I5", "Dell Latitude 3440 (Core i5, 8 GB)", Decimal("2799.00"), "AED", 0),
        *catalog_evidence("DEL-LAT5440-I7", "Dell Latitude 5440 (Core i7, 16 GB)", Decimal("4999.00"), "AED", 22),
    ]
    ledger = Ledger.of(laptops, PLAYBOOK)
    assert problems("The Dell Latitude 3440 is AED 2,799 and the Dell Latitude 5440 AED 4,999.", ledger) == []
    assert problems("The Dell Latitude 5440 costs AED 2,799.", ledger) == [("money", "2,799")]
    assert problems("DEL-LAT5440-I7 is 4,999 AED, delivery AED 35.", ledger) == []
    assert problems("Dell Latitude 3440: 22 in stock.", ledger) == [("stock", "22")]


def test_a_stated_currency_must_be_the_figures_own() -> None:
    assert problems("Total: 3,747.00 USD") == [("money", "3,747.00")]
    assert problems("The HP LaserJet M211dw is $1,249.") == [("money", "1,249")]


def test_discounts_follow_the_selection_and_the_quote() -> None:
    printer = {"HP-LJM211DW": 12}
    assert problems("For 12 printers I can offer 10% off.", Ledger.of(PRINTER, PLAYBOOK, selection=printer)) == []
    few = Ledger.of(PRINTER, PLAYBOOK, selection={"HP-LJM211DW": 3})
    assert problems("For 3 printers: 5% off.", few) == [("discount", "5")]
    quoted = Ledger.of([*PRINTER, evidence("discount", 5, skus=["HP-LJM211DW"])], PLAYBOOK)
    assert problems("Your quote has a 5% discount.", quoted) == []


def test_number_readings() -> None:
    assert interpretations("1,249.00") == {"1249"}
    assert {"1249", "1.249"} <= interpretations("1.249")
    assert {"3249", "249"} <= interpretations("3 249")
    assert interpretations("٣٠") == {"30"}


def test_stated_figures_skip_placeholders() -> None:
    assert stated_figures("Reach me at [PHONE_12] or [EMAIL_3]") == []


def test_a_policy_figure_on_a_hard_wrapped_line_keeps_its_sentence_topic() -> None:
    # The demo delivery.md wraps "same-day delivery for orders" / "confirmed before 12:00 ... (AED 50)".
    chunk = "- Dubai: same-day delivery for orders\n  confirmed before 12:00 when the items are in stock (AED 50)."
    assert [(item["value"], item["topics"]) for item in policy_evidence(chunk)] == [("50", ["delivery"])]


def test_a_wrapped_line_starting_with_the_amount_keeps_its_sentence_topic() -> None:
    chunk = (
        "Smaller orders pay AED 35 for delivery in Dubai and\nAED 60 for delivery to the other emirates.\n- Next item"
    )
    assert sorted(item["value"] for item in policy_evidence(chunk)) == ["35", "60"]
