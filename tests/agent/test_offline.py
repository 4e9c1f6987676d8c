"""The offline responder understands what customers say: quantities, budgets, categories, references to what it
just showed, comparisons, orders of several named models, look-alike letters, wrong keyboard layouts.

Every test drives whole turns through the production service (`SalesAgentService` with the offline model, the
real hybrid search over the demo catalog, the shipped playbook) and checks the reply against the catalog.
"""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.eval.runner import ChatDriver
from salesbot.agent.language import detect_language
from salesbot.agent.playbook import Playbook
from salesbot.agent.service import SalesAgentService
from salesbot.models import Product, SalesStage
from salesbot.settings import Settings
from tests.agent.scripted import Script

_LINE = re.compile(r"\(SKU ([A-Z0-9-]+)\): (\d+\.\d{2}) AED")


def driver_for(session: AsyncSession, settings: Settings) -> ChatDriver:
    return ChatDriver(session, SalesAgentService(), settings)


async def catalog(session: AsyncSession) -> dict[str, Product]:
    return {product.sku: product for product in await session.scalars(select(Product))}


def driver_language(reply: str) -> str | None:
    return detect_language(re.sub(r"•[^\n]*", "", reply))


def listed(reply: str) -> list[tuple[str, Decimal]]:
    return [(sku, Decimal(price)) for sku, price in _LINE.findall(reply)]


async def test_five_laptops_lists_laptops_only(catalog_session: AsyncSession, settings: Settings) -> None:
    products = await catalog(catalog_session)
    reply = await driver_for(catalog_session, settings).say("I need 5 laptops for my office team")

    shown = listed(reply.text)
    assert shown, reply.text
    assert {products[sku].category for sku, _ in shown} == {"Laptops"}
    assert all(products[sku].price == price for sku, price in shown)


async def test_a_budget_keeps_the_category_and_filters_by_price(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    products = await catalog(catalog_session)
    driver = driver_for(catalog_session, settings)
    await driver.say("I need 5 laptops for my office team")

    reply = await driver.say("budget around 4000 AED each, what do you have?")

    shown = listed(reply.text)
    assert shown, reply.text
    assert {products[sku].category for sku, _ in shown} == {"Laptops"}
    assert all(price <= Decimal(4000) for _, price in shown)
    search = next(call for call in reply.tool_calls if call["tool"] == "search_products")
    assert search["args"]["max_price"] == 4000.0
    assert search["args"]["category"] == "Laptops"


async def test_budgets_in_other_phrasings_and_languages(catalog_session: AsyncSession, settings: Settings) -> None:
    products = await catalog(catalog_session)
    for text, ceiling in (
        ("printers under 1000", Decimal(1000)),
        ("нужен ноутбук до 3000 дирхамов", Decimal(3000)),
        ("أحتاج لابتوب بحدود 2500 درهم للقطعة", Decimal(2500)),
    ):
        reply = await driver_for(catalog_session, settings).say(text)
        shown = listed(reply.text)
        assert shown, (text, reply.text)
        assert all(price <= ceiling for _, price in shown), (text, reply.text)
        assert all(products[sku].category in ("Laptops", "Printers") for sku, _ in shown), (text, reply.text)


async def test_a_budget_in_another_currency_is_not_applied_as_if_it_were_ours(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    reply = await driver_for(catalog_session, settings).say("нужен ноутбук до 5000 рублей")

    assert "AED" in reply.text
    assert "бюджет" in reply.text
    assert not any(call["args"].get("max_price") == 5000.0 for call in reply.tool_calls)


async def test_cheaper_and_more_options_refer_to_what_was_shown(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    products = await catalog(catalog_session)
    driver = driver_for(catalog_session, settings)
    first = listed((await driver.say("I need 5 laptops for my office team")).text)

    cheaper = listed((await driver.say("something cheaper please")).text)
    assert cheaper
    assert {products[sku].category for sku, _ in cheaper} == {"Laptops"}
    assert max(price for _, price in cheaper) < min(price for _, price in first)

    more = listed((await driver.say("more options")).text)
    assert more
    assert {products[sku].category for sku, _ in more} == {"Laptops"}
    assert not {sku for sku, _ in more} & {sku for sku, _ in first + cheaper}


async def test_the_second_one_is_chosen_with_the_quantity_said_before(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    driver = driver_for(catalog_session, settings)
    first = listed((await driver.say("I need 5 laptops for my office team")).text)

    reply = await driver.say("the second one")

    assert driver.conversation is not None
    assert driver.conversation.sales_stage is SalesStage.COMPANY_DETAILS
    assert driver.conversation.facts["selected"] == [{"sku": first[1][0], "qty": 5}]
    assert "5 × " in reply.text


async def test_recommend_then_yes_takes_the_recommended_one(catalog_session: AsyncSession, settings: Settings) -> None:
    products = await catalog(catalog_session)
    driver = driver_for(catalog_session, settings)
    first = listed((await driver.say("I need 5 laptops for my office team")).text)

    reply = await driver.say("which would you recommend?")
    [(recommended, _)] = listed(reply.text)
    assert recommended in {sku for sku, _ in first}
    assert products[recommended].stock >= 5
    assert not any(call["tool"] == "search_products" for call in reply.tool_calls)

    await driver.say("yes, that one")
    assert driver.conversation is not None
    assert driver.conversation.facts["selected"] == [{"sku": recommended, "qty": 5}]
    assert driver.conversation.sales_stage is SalesStage.COMPANY_DETAILS


async def test_compare_two_named_models_side_by_side(catalog_session: AsyncSession, settings: Settings) -> None:
    products = await catalog(catalog_session)
    reply = await driver_for(catalog_session, settings).say("compare the MacBook Air M2 and the Vostro 3520")

    skus = re.findall(r"\(SKU ([A-Z0-9-]+)\)", reply.text)
    assert skus == ["APL-MBA13-M2", "DEL-VOS3520-I5"], reply.text
    for sku in skus:
        assert f"{products[sku].price} AED" in reply.text


async def test_an_order_of_several_named_models_gets_exactly_those(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    products = await catalog(catalog_session)
    driver = driver_for(catalog_session, settings)

    reply = await driver.say("I'll take 1 of the MacBook Air M2 and 3 of the Latitude 5440")

    skus = re.findall(r"\(SKU ([A-Z0-9-]+)\)", reply.text)
    assert skus == ["APL-MBA13-M2", "DEL-LAT5440-I7"], reply.text
    for sku in skus:
        assert f"{products[sku].price} AED" in reply.text
    assert driver.conversation is not None
    assert driver.conversation.facts["selected"] == [
        {"sku": "APL-MBA13-M2", "qty": 1},
        {"sku": "DEL-LAT5440-I7", "qty": 3},
    ]


async def test_a_model_named_with_look_alike_letters_or_no_space(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    driver = driver_for(catalog_session, settings)
    first = listed((await driver.say("I need 5 laptops for my office team")).text)
    shown = {sku for sku, _ in first}
    products = await catalog(catalog_session)
    target = next(sku for sku, _ in first[1:])
    name = products[target].name.split(" (")[0]
    # Cyrillic look-alikes in the model name and the spaces dropped.
    typed = name.replace(" ", "").replace("o", "о").replace("a", "а").replace("e", "е")

    await driver.say(f"the {typed} then")

    assert driver.conversation is not None
    assert driver.conversation.facts["selected"] == [{"sku": target, "qty": 5}], (shown, typed)


async def test_a_yes_typed_with_the_russian_layout_stays_an_english_yes(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    driver = driver_for(catalog_session, settings)
    await driver.say("I need 5 laptops for my office team")
    recommended = listed((await driver.say("which would you recommend?")).text)

    reply = await driver.say("нуы")

    assert driver.conversation is not None
    assert driver.conversation.language == "en"
    assert driver.conversation.facts["selected"] == [{"sku": recommended[0][0], "qty": 5}]
    assert "name" in reply.text


async def test_other_languages_get_english_answers_and_russian_texts_are_gender_neutral(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    reply = await driver_for(catalog_session, settings).say("Ich brauche fünf Laptops für mein Büro")
    # German has no texts of its own: the answer is English (and still lists laptops for the need).
    assert driver_language(reply.text) == "en"

    from salesbot.agent.offline.lexicon import lexicon

    russian = " ".join(lexicon().texts["ru"].values())
    assert not re.search(r"\b(?:рад|рада|нашла|нашёл|записала|записал|готова|готов)\b", russian)


async def test_answers_in_ukrainian_and_english_for_persian(catalog_session: AsyncSession, settings: Settings) -> None:
    products = await catalog(catalog_session)
    reply = await driver_for(catalog_session, settings).say("Привіт, потрібні ноутбуки для офісу")

    shown = listed(reply.text)
    assert shown, reply.text
    assert {products[sku].category for sku, _ in shown} == {"Laptops"}
    assert "в наявності" in reply.text  # Ukrainian, not the Russian "в наличии"
    assert driver_language(reply.text) == "uk"

    driver = driver_for(catalog_session, settings)
    reply = await driver.say("سلام، من یک لپ تاپ برای دفترم می خواهم")
    assert driver.conversation is not None
    assert driver.conversation.language == "fa"
    assert driver_language(reply.text) == "en"  # no Persian texts: English, not Arabic


async def test_the_llm_is_told_the_customers_language_by_name(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    script = Script(["ok"])
    driver = ChatDriver(catalog_session, SalesAgentService(model=script.model), settings)

    await driver.say("Привіт, потрібен ноутбук для офісу")
    await driver.say("سلام، یک لپ تاپ برای دفتر می خواهم")

    told = [re.search(r"Reply in ([\w ()]+?),", seen.instructions) for seen in script.seen]
    assert [match.group(1) if match else None for match in told] == ["Ukrainian", "Persian (Farsi)"]


async def test_the_business_rewords_offline_texts_in_its_playbook(
    catalog_session: AsyncSession, settings: Settings, playbook: Playbook
) -> None:
    custom = playbook.model_copy(
        update={"offline_texts": {"hello": {"en": "Hi, {assistant} of {company} here. Which products do you need?"}}}
    )
    driver = ChatDriver(catalog_session, SalesAgentService(playbook=custom), settings)

    reply = await driver.say("Hello")

    assert reply.text == "Hi, Lina of Falcon Office Systems here. Which products do you need?"


async def test_compare_positions_a_short_name_and_a_quote_of_several_lines(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    products = await catalog(catalog_session)
    driver = driver_for(catalog_session, settings)
    shown = listed((await driver.say("we need a docking station for our laptops")).text)

    reply = await driver.say("compare the first and the third")
    assert re.findall(r"\(SKU ([A-Z0-9-]+)\)", reply.text) == [shown[0][0], shown[2][0]], reply.text

    # "the HP one": a short brand name is enough among the few products just shown, when only one has it.
    hp = [sku for sku, _ in shown if products[sku].name.startswith("HP ")]
    if len(hp) == 1:
        await driver.say("the HP one then")
        assert driver.conversation is not None
        assert driver.conversation.facts["selected"][0]["sku"] == hp[0]

    driver = driver_for(catalog_session, settings)
    # "HP 250 G9" is two products (i3, i5): the customer is asked, and no partial order is taken.
    reply = await driver.say("I'd like 2 of the HP 250 G9 and 1 Dell Latitude 5440")
    assert {"HP-250G9-I3", "HP-250G9-I5"} <= set(re.findall(r"\(SKU ([A-Z0-9-]+)\)", reply.text)), reply.text
    assert driver.conversation is not None
    assert not driver.conversation.facts.get("selected")
    await driver.say("I'd like 2 of the HP 250 G9 i5 and 1 Dell Latitude 5440")
    reply = await driver.say("My name is Ann Lee, company Blue Trading LLC, email ann@blue.example")
    total = products["HP-250G9-I5"].price * 2 + products["DEL-LAT5440-I7"].price
    assert f"{total} AED" in reply.text, reply.text


async def test_an_urgent_need_searches_only_what_is_in_stock(catalog_session: AsyncSession, settings: Settings) -> None:
    products = await catalog(catalog_session)
    reply = await driver_for(catalog_session, settings).say("We urgently need 3 laptops, today if possible")

    shown = listed(reply.text)
    assert shown, reply.text
    assert all(products[sku].stock > 0 and products[sku].category == "Laptops" for sku, _ in shown)
    search = next(call for call in reply.tool_calls if call["tool"] == "search_products")
    assert search["args"]["in_stock_only"] is True


async def test_a_budget_in_the_businesss_own_currency_is_applied(
    catalog_session: AsyncSession, settings: Settings, playbook: Playbook
) -> None:
    # A business that sells in roubles: "до 3000 рублей" is its own currency, so it filters.
    roubles = playbook.model_copy(update={"currency": "RUB"})
    driver = ChatDriver(catalog_session, SalesAgentService(playbook=roubles), settings)

    reply = await driver.say("нужен ноутбук до 3000 рублей")

    search = next(call for call in reply.tool_calls if call["tool"] == "search_products")
    assert search["args"]["max_price"] == 3000.0
    assert all(price <= Decimal(3000) for _, price in listed(reply.text))
