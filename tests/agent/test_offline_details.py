"""What the offline responder reads from a message: the cases the evaluation scenarios caught."""

from __future__ import annotations

from decimal import Decimal

from salesbot.agent.offline.intents import parse_details, parse_turn
from salesbot.agent.turn_context import TurnContext


def _context(stage: str = "company_details", language: str = "en") -> TurnContext:
    return TurnContext(
        language=language,
        stage=stage,
        company="Falcon Office Systems",
        assistant="Lina",
        currency="AED",
        customer_name=None,
        customer_company=None,
        customer_email=False,
        selected=[],
        shown_skus=[],
        discount_cap="10",
        handoff_text="",
        has_quote=False,
        need=None,
        texts={},
        returning_product=None,
    )


def test_a_message_that_names_products_is_not_a_list_of_details() -> None:
    details = parse_details("Actually, forget the printers. I want 5 LG-24MP400 instead", positional=True)
    assert details.name is None
    assert parse_details("Нет, давайте лучше 4 шт LG-24MP400", positional=True).name is None


def test_labelled_and_ukrainian_details_are_read() -> None:
    details = parse_details("Name Layla Aziz, company Aziz Consulting, [EMAIL_1]", positional=True)
    assert (details.name, details.company) == ("Layla Aziz", "Aziz Consulting")
    details = parse_details("Мене звати Олена Коваль, компанія ТОВ Світанок, [EMAIL_1]", positional=True)
    assert (details.name, details.company) == ("Олена Коваль", "ТОВ Світанок")


def test_a_discount_asked_for_is_read_with_its_percentage() -> None:
    assert parse_turn("Please apply your 10% volume discount", _context()).discount_pct == Decimal(10)
    assert parse_turn("Дайте скидку 5%", _context(language="ru")).discount_pct == Decimal(5)
    # A percentage that is not about a discount is not one.
    assert parse_turn("Is the battery at 80% after a year?", _context()).discount_pct is None
