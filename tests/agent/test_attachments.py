"""Which products a reply names: whole words by SKU or name, in the order named, the longer of two overlapping
names winning."""

from __future__ import annotations

from decimal import Decimal

from salesbot.agent.attachments import ShownProduct, caption, named_in


def shown(sku: str, name: str) -> ShownProduct:
    return ShownProduct(sku=sku, name=name, price=Decimal("10"), currency="AED")


DESK = shown("OD-1", "Oak Desk")
DESK_PRO = shown("OD-2", "Oak Desk Pro")
CHAIR = shown("CH-1", "Ergo Chair")
CHAIR_X = shown("CH-10", "Chair Mat")


def names(reply: str, *products: ShownProduct) -> list[str]:
    return [product.sku for product in named_in(reply, products)]


def test_products_are_named_by_name_or_sku_in_the_order_of_the_reply() -> None:
    assert names("Take the ergo chair (OD-1 also fits).", DESK, CHAIR) == ["CH-1", "OD-1"]
    assert names("Nothing here fits.", DESK, CHAIR) == []


def test_only_whole_words_count() -> None:
    # "CH-10" does not name CH-1, and "Ergo Chairs" is not "Ergo Chair".
    assert names("CH-10 is our mat; Ergo Chairs are sold out.", CHAIR, CHAIR_X) == ["CH-10"]


def test_a_name_inside_a_longer_products_name_names_the_longer_one() -> None:
    assert names("The Oak Desk Pro is taller.", DESK, DESK_PRO) == ["OD-2"]
    assert names("The Oak Desk Pro is taller than the Oak Desk.", DESK, DESK_PRO) == ["OD-2", "OD-1"]


def test_the_caption_carries_name_price_with_currency_and_sku() -> None:
    assert caption(shown("OD-1", "Oak Desk")) == "Oak Desk | 10.00 AED | SKU OD-1"
