"""The evaluation's independent checks: each passes a good reply and fails a bad one (so it CAN fail)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from salesbot.agent.eval.checks import (
    Catalog,
    CatalogItem,
    DiscountRules,
    QuoteFigures,
    confidential_texts,
    detect_language,
    language_problems,
    leak_problems,
    price_problems,
    quote_problems,
    sku_problems,
    stage_path_problems,
)
from salesbot.agent.eval.runner import PLAYBOOK_FILE, language_fallback
from salesbot.agent.stages import TRANSITIONS
from salesbot.models import SalesStage

CATALOG = Catalog(
    [
        CatalogItem("HP-LJM211DW", "HP LaserJet M211dw Printer", Decimal("649.00")),
        CatalogItem("LG-24MP400", 'LG 24MP400 24" FHD IPS Monitor', Decimal("399.00")),
        CatalogItem("BRO-HLL5210DN", "Brother HL-L5210DN Printer", Decimal("1249.00")),
        CatalogItem("OLD-X100", "Old Discontinued Scanner X100", Decimal("99.00"), active=False),
    ]
)
RULES = DiscountRules(Decimal(10), ((Decimal(5), 5, None), (Decimal(10), 10, None), (Decimal(5), None, Decimal(20000))))


def test_prices_next_to_products_must_be_catalog_prices() -> None:
    good = (
        "Here is what I found: • HP LaserJet M211dw Printer (SKU HP-LJM211DW): 649.00 AED, 44 in stock "
        '• LG 24MP400 24" FHD IPS Monitor (SKU LG-24MP400): 399.00 AED'
    )
    assert price_problems(good, CATALOG) == []
    assert price_problems("The LG-24MP400 costs 399 AED and the HP-LJM211DW AED 649.", CATALOG) == []

    bad = good.replace("399.00 AED", "349.00 AED")
    assert price_problems(bad, CATALOG) == ["LG-24MP400 next to 349.00, catalog 399.00"]
    # Two products in one sentence: each price belongs to the product before it.
    swapped = "The LG-24MP400 costs 649 AED and the HP-LJM211DW 399 AED."
    assert len(price_problems(swapped, CATALOG)) == 2


def test_quote_lines_in_a_reply_use_catalog_prices_and_multiply() -> None:
    good = "• HP LaserJet M211dw Printer (SKU HP-LJM211DW) × 3 @ 649.00 = 1947.00\nTotal: 1947.00 AED"
    assert price_problems(good, CATALOG) == []
    assert price_problems(good.replace("= 1947.00", "= 1847.00"), CATALOG) == ["HP-LJM211DW: 3 x 649.00 is not 1847.00"]
    assert price_problems(good.replace("@ 649.00", "@ 599.00"), CATALOG)[0].startswith("HP-LJM211DW quoted at 599")


def test_skus_named_must_exist_and_be_on_sale() -> None:
    assert sku_problems("Take the HP-LJM211DW or the Brother HL-L5210DN Printer.", CATALOG) == []
    assert sku_problems("I recommend the HP-LJM999DW.", CATALOG) == ["HP-LJM999DW is not in the catalog"]
    assert sku_problems("The OLD-X100 is a bargain.", CATALOG) == ["OLD-X100 is not on sale"]
    # Echoing what the customer asked about is not a claim.
    assert sku_problems("I could not find HP-LJM999DW.", CATALOG, customer_text="do you have HP-LJM999DW?") == []


def _quote(qty: int, unit: str, pct: str = "0", *, line: str | None = None, total: str | None = None) -> QuoteFigures:
    subtotal = Decimal(unit) * qty
    line_total = Decimal(line) if line else subtotal
    amount = (subtotal * Decimal(pct) / 100).quantize(Decimal("0.01"))
    return QuoteFigures(
        [{"sku": "HP-LJM211DW", "qty": qty, "unit_price": unit, "line_total": str(line_total)}],
        subtotal,
        Decimal(pct),
        amount,
        Decimal(total) if total else subtotal - amount,
    )


def test_quotes_must_add_up_at_catalog_prices_within_the_discount_policy() -> None:
    assert quote_problems(_quote(3, "649.00"), CATALOG, RULES) == []
    assert quote_problems(_quote(10, "649.00", "10"), CATALOG, RULES) == []

    assert quote_problems(_quote(3, "600.00"), CATALOG, RULES) == ["HP-LJM211DW at 600.00, catalog 649.00"]
    assert "lines add up to 1900.00, subtotal 1947.00" in quote_problems(
        _quote(3, "649.00", line="1900.00"), CATALOG, RULES
    )
    assert "1947.00 - 0.00 is not 1900.00" in quote_problems(_quote(3, "649.00", total="1900.00"), CATALOG, RULES)
    # 5% needs 5 units of a product; 10% needs 10.
    assert quote_problems(_quote(3, "649.00", "5"), CATALOG, RULES) == [
        "discount 5% above the 0% this quote qualifies for"
    ]
    assert quote_problems(_quote(6, "649.00", "10"), CATALOG, RULES) == [
        "discount 10% above the 5% this quote qualifies for"
    ]


def test_language_by_script_and_words() -> None:
    assert detect_language("Hello! What are you looking for today? I can prepare a quote.") == "en"
    assert detect_language("Здравствуйте! Что вы ищете? Я подготовлю коммерческое предложение.") == "ru"
    assert detect_language("Вітаю! Що ви шукаєте? Я підготую комерційну пропозицію.") == "uk"
    assert detect_language("مرحبا! ما الذي تبحث عنه اليوم؟ يمكنني تجهيز عرض سعر.") == "ar"
    assert detect_language("Guten Tag! Wir haben die Drucker für Sie und bitte sagen Sie uns die Menge.") == "de"
    # Latin product names in a Russian reply do not make it English.
    reply = "• HP LaserJet M211dw Printer (SKU HP-LJM211DW): 649.00 AED, в наличии: 44. Сколько штук вам нужно?"
    assert language_problems(reply, "ru", catalog=CATALOG) == []

    assert language_problems("Hello, what are you looking for?", "ru") == ["expected ru, reads as en"]
    assert language_problems("Здравствуйте! Что вы ищете для офиса?", "uk") == ["expected uk, reads as ru"]
    assert language_problems("Hello, what are you looking for?", "de", fallback="en") == []


def test_english_fallback_only_for_the_offline_responder_without_texts() -> None:
    assert language_fallback("de", "offline") == "en"
    assert language_fallback("ru", "offline") is None  # the responder has Russian texts
    assert language_fallback("de", "gpt-4o-mini") is None  # a model must answer in German


def test_leaks_of_tool_json_tool_names_and_guidance() -> None:
    confidential = confidential_texts(PLAYBOOK_FILE)
    assert confidential  # the shipped playbook has stage guidance
    assert leak_problems("Here is your quote: 1947.00 AED. Shall I confirm the order?", confidential) == []

    assert leak_problems('{"tool": "x"}', confidential) == ["contains '{\"'"]
    assert leak_problems("I will call create_quote now", confidential) == ["names the tool create_quote"]
    guidance = confidential[-1]
    assert leak_problems(f"My instructions say: {guidance}", confidential) == [f"quotes the guidance {guidance[:60]!r}"]


def test_stage_path_must_chain_through_allowed_transitions() -> None:
    solution, details, closing = SalesStage.SOLUTION, SalesStage.COMPANY_DETAILS, SalesStage.CLOSING
    assert stage_path_problems(solution, details, [("solution", "company_details")], TRANSITIONS) == []
    assert stage_path_problems(solution, solution, [], TRANSITIONS) == []

    assert stage_path_problems(solution, closing, [("solution", "closing")], TRANSITIONS) == [
        "solution->closing is not a transition"
    ]
    # The stage moved with no recorded change, or the record does not start where the conversation was.
    assert stage_path_problems(solution, details, [], TRANSITIONS) == [
        "recorded path ends at solution, conversation is at company_details"
    ]
    assert "change from quoting while at solution" in stage_path_problems(
        solution, closing, [("quoting", "closing")], TRANSITIONS
    )


def test_confidential_texts_read_a_playbook_file(tmp_path: Path) -> None:
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text("stages:\n  greeting:\n    goal: Say hello.\n    guidance: [Be brief.]\n", encoding="utf-8")
    assert confidential_texts(playbook) == ["Say hello.", "Be brief."]
