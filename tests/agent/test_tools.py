"""The sales tools, driven by scripted models through the real agent, service and database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.eval.runner import ChatDriver
from salesbot.agent.service import SalesAgentService
from salesbot.knowledge.embeddings import get_embedder
from salesbot.knowledge.search import HybridSearch
from salesbot.knowledge.types import KnowledgeHit, ProductFilters, ProductHit
from salesbot.models import Conversation, Customer, Owner, Product, Quote, SalesStage
from salesbot.settings import Settings
from tests.agent.scripted import Script, call

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def driver_for(session: AsyncSession, settings: Settings, script: Script, **service: Any) -> ChatDriver:
    return ChatDriver(session, SalesAgentService(model=script.model, clock=lambda: NOW, **service), settings)


async def at_stage(
    driver: ChatDriver,
    stage: SalesStage,
    *,
    selected: list[tuple[str, int]] = (),  # type: ignore[assignment]
    name: str | None = None,
    company: str | None = None,
    pii: dict[str, str] | None = None,
) -> Conversation:
    conversation = await driver.start()
    assert driver.customer is not None
    conversation.sales_stage = stage
    conversation.facts = {
        "selected": [{"sku": sku, "qty": qty} for sku, qty in selected],
        "shown_skus": [sku for sku, _ in selected],
    }
    conversation.pii_map = pii or {}
    driver.customer.name, driver.customer.company = name, company
    await driver.session.flush()
    return conversation


async def snapshot(session: AsyncSession, conversation: Conversation) -> tuple[Any, ...]:
    """What the database holds for the conversation (read with SQL, not from the identity map)."""
    row = (
        await session.execute(
            select(Conversation.sales_stage, Conversation.facts, Conversation.owner).where(
                Conversation.id == conversation.id
            )
        )
    ).one()
    quotes = await session.scalar(select(func.count()).where(Quote.conversation_id == conversation.id))
    customer = (
        await session.execute(
            select(Customer.name, Customer.company, Customer.email).where(Customer.id == conversation.customer_id)
        )
    ).one()
    return tuple(row), quotes, tuple(customer)


async def test_invalid_stage_jump_is_refused_and_leaves_the_database_unchanged(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    script = Script([[call("advance_stage", to_stage="quoting", reason="customer wants a quote")], "Sure!"])
    driver = driver_for(catalog_session, settings, script)
    conversation = await at_stage(driver, SalesStage.GREETING)
    before = await snapshot(catalog_session, conversation)

    reply = await driver.say("Just send me a quote right now")

    assert conversation.sales_stage is SalesStage.GREETING
    after = await snapshot(catalog_session, conversation)
    assert after[0][0] is SalesStage.GREETING
    assert after[1:] == before[1:]
    assert reply.tool_calls == [
        {
            "tool": "advance_stage",
            "args": {"to_stage": "quoting", "reason": "customer wants a quote"},
            "outcome": "refused",
        }
    ]
    refusal = script.tool_results()[0].model_response_str()
    assert "Allowed next stages from 'greeting': qualifying" in refusal


async def test_stages_advance_step_by_step_and_are_stored_with_history(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    script = Script(
        [
            [
                call("advance_stage", to_stage="qualifying", reason="customer wrote"),
                call("advance_stage", to_stage="needs_analysis", reason="needs 3 printers for a small office"),
                call("advance_stage", to_stage="solution", reason="products shown"),
            ],
            [call("search_products", query="laser printer")],
            [call("advance_stage", to_stage="solution", reason="products shown")],
            "Here are some printers.",
        ]
    )
    driver = driver_for(catalog_session, settings, script)
    conversation = await at_stage(driver, SalesStage.GREETING)

    reply = await driver.say("We need 3 laser printers")

    outcomes = [(c["tool"], c["args"].get("to_stage"), c["outcome"]) for c in reply.tool_calls]
    assert outcomes == [
        ("advance_stage", "qualifying", "ok"),
        ("advance_stage", "needs_analysis", "ok"),
        # No products shown yet: the exit criterion of needs_analysis refuses.
        ("advance_stage", "solution", "refused"),
        ("search_products", None, "ok"),
        ("advance_stage", "solution", "ok"),
    ]
    stored = (await snapshot(catalog_session, conversation))[0]
    assert stored[0] is SalesStage.SOLUTION
    assert stored[1]["need"] == "needs 3 printers for a small office"
    assert [(h["from_stage"], h["to_stage"]) for h in stored[1]["stage_history"]] == [
        ("greeting", "qualifying"),
        ("qualifying", "needs_analysis"),
        ("needs_analysis", "solution"),
    ]


async def test_quoting_requires_selected_products_and_company_details(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    script = Script(
        [
            [call("advance_stage", to_stage="quoting", reason="ready")],
            [call("save_customer_details", name="John Smith", company="Acme LLC")],
            [call("advance_stage", to_stage="quoting", reason="ready")],
            "Quote coming.",
        ]
    )
    driver = driver_for(catalog_session, settings, script)
    conversation = await at_stage(driver, SalesStage.COMPANY_DETAILS, selected=[("HP-LJM211DW", 3)])

    reply = await driver.say("John Smith from Acme LLC")

    assert [c["outcome"] for c in reply.tool_calls] == ["refused", "ok", "ok"]
    assert "Quoting needs the customer's name and company" in script.tool_results()[0].model_response_str()
    assert conversation.sales_stage is SalesStage.QUOTING


async def test_quote_uses_catalog_prices_and_discounts_only_as_the_rules_allow(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    script = Script(
        [
            [call("create_quote", items=[{"sku": "HP-LJM211DW", "qty": 3}], discount_pct=25)],
            # 10 % needs 10 units of a product (playbook discount.rules): 3 qualify for none.
            [call("create_quote", items=[{"sku": "HP-LJM211DW", "qty": 3}], discount_pct=10)],
            [
                call(
                    "create_quote",
                    items=[{"sku": "hp-ljm211dw", "qty": 6}, {"sku": "HP-LJM211DW", "qty": 4}],
                    discount_pct=10,
                )
            ],
            "Here is your quote.",
        ]
    )
    driver = driver_for(catalog_session, settings, script)
    conversation = await at_stage(
        driver, SalesStage.QUOTING, selected=[("HP-LJM211DW", 3)], name="John", company="Acme"
    )
    before = await snapshot(catalog_session, conversation)

    reply = await driver.say("Give me 25% off")

    results = [part.model_response_str() for part in script.tool_results()]
    assert results[0].startswith("Refused: a 25% discount exceeds the maximum of 10%")
    assert results[1].startswith("Refused: this quote qualifies for no discount")
    assert [c["outcome"] for c in reply.tool_calls] == ["refused", "refused", "ok"]
    quotes = (await catalog_session.scalars(select(Quote).where(Quote.conversation_id == conversation.id))).all()
    assert len(quotes) == 1
    assert before[1] == 0
    quote = quotes[0]
    price = await catalog_session.scalar(select(Product.price).where(Product.sku == "HP-LJM211DW"))
    assert price is not None
    subtotal = price * 10
    discount = (subtotal * Decimal("0.10")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert (quote.subtotal, quote.discount_pct, quote.discount_amount, quote.total) == (
        subtotal,
        Decimal("10.00"),
        discount,
        subtotal - discount,
    )
    assert quote.items == [
        {
            "sku": "HP-LJM211DW",
            "name": "HP LaserJet M211dw Printer",
            "qty": 10,
            "unit_price": str(price),
            "line_total": str(subtotal),
        }
    ]
    assert f"Total: {subtotal - discount} AED" in results[2]
    assert conversation.facts["last_quote_id"] == quote.id


async def test_unknown_sku_asks_the_model_to_retry(catalog_session: AsyncSession, settings: Settings) -> None:
    script = Script([[call("create_quote", items=[{"sku": "NOPE-1", "qty": 1}])], "Sorry."])
    driver = driver_for(catalog_session, settings, script)
    conversation = await at_stage(driver, SalesStage.QUOTING, selected=[("HP-LJM211DW", 1)], name="J", company="A")

    reply = await driver.say("Quote please")

    assert reply.tool_calls[0]["outcome"] == "retried"
    assert "Unknown or inactive SKU(s): NOPE-1" in script.tool_results()[0].model_response_str()
    assert (await snapshot(catalog_session, conversation))[1] == 0


async def test_tools_meaningless_in_the_stage_are_hidden_and_refused(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    script = Script([[call("create_quote", items=[{"sku": "HP-LJM211DW", "qty": 1}])], "Ok."])
    driver = driver_for(catalog_session, settings, script)
    conversation = await at_stage(driver, SalesStage.SOLUTION, selected=[("HP-LJM211DW", 1)])

    reply = await driver.say("quote!")

    assert "create_quote" not in script.seen[0].tools
    assert "calculate_financing" in script.seen[0].tools
    assert reply.tool_calls[0]["outcome"] == "retried"
    assert "Unknown tool name: 'create_quote'" in script.tool_results()[0].model_response_str()
    assert (await snapshot(catalog_session, conversation))[1] == 0


async def test_customer_details_accept_placeholders_and_store_real_values(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    script = Script(
        [
            [call("save_customer_details", email="[EMAIL_9]")],
            [call("save_customer_details", name="Ivan Petrov", company="Romashka LLC", email="[EMAIL_1]")],
            "Thanks!",
        ]
    )
    driver = driver_for(catalog_session, settings, script)
    await at_stage(driver, SalesStage.COMPANY_DETAILS, pii={"[EMAIL_1]": "ivan@romashka.example"})

    reply = await driver.say("Ivan Petrov, Romashka LLC, [EMAIL_1]")

    assert [c["outcome"] for c in reply.tool_calls] == ["retried", "ok"]
    assert driver.customer is not None
    assert (driver.customer.name, driver.customer.company, driver.customer.email) == (
        "Ivan Petrov",
        "Romashka LLC",
        "ivan@romashka.example",
    )
    # The model only ever sees the placeholder.
    assert "ivan@romashka.example" not in "\n".join(seen.text() for seen in script.seen)
    assert "email: [EMAIL_1]" in script.tool_results()[1].model_response_str()


def amortized(principal: float, annual_rate: float, months: int) -> Decimal:
    rate = annual_rate / 1200
    payment = principal * rate / (1 - (1 + rate) ** -months)
    return Decimal(str(payment)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def test_financing_uses_the_playbooks_plan_for_the_chosen_term(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    script = Script(
        [
            [call("calculate_financing", price=999, months=6)],
            [call("get_product", sku="HP-LJP4003DN")],
            [
                call("calculate_financing", price=1349, months=60),
                call("calculate_financing", price=1349, months=6, down_payment=349),
            ],
            [
                # The model cannot choose a rate: the argument does not exist.
                call("calculate_financing", price=1349, months=36, annual_rate=0),
                call("calculate_financing", price=1349, months=24),
                call("calculate_financing", price=1349, months=12),
            ],
            "Here are the options.",
        ]
    )
    driver = driver_for(catalog_session, settings, script)
    await at_stage(driver, SalesStage.SOLUTION)

    reply = await driver.say("Can I pay the HP-LJP4003DN monthly?")

    assert [c["outcome"] for c in reply.tool_calls] == ["retried", "ok", "refused", "ok", "retried", "refused", "ok"]
    results = [part.model_response_str() for part in script.tool_results()]
    assert "price must be a unit price or quote total" in results[0]
    assert "no 60-month plan; the terms offered are 3, 6, 12, 24, 36 months" in results[2]
    assert "6 monthly payments of 166.67 AED" in results[3]
    assert "at 0% a year" in results[3]
    assert "annual_rate" in results[4]
    assert "the 24-month plan finances from 10000.00 AED" in results[5]
    assert f"12 monthly payments of {amortized(1349, 9, 12)} AED" in results[6]


async def test_request_human_hands_the_chat_to_a_manager(catalog_session: AsyncSession, settings: Settings) -> None:
    script = Script(
        [
            [call("request_human", reason="customer wants to negotiate a framework agreement")],
            "A colleague will follow up.",
        ]
    )
    driver = driver_for(catalog_session, settings, script)
    conversation = await at_stage(driver, SalesStage.SOLUTION)

    reply = await driver.say("I want to talk to your manager about a framework agreement")

    assert reply.handoff is True
    assert reply.text == "A colleague will follow up."
    assert conversation.owner is Owner.HUMAN
    assert conversation.owner_until == NOW + timedelta(hours=settings.conversation.human_takeover_hours)
    assert conversation.needs_attention is True
    assert conversation.facts["handoff_reason"] == "customer wants to negotiate a framework agreement"


class BrokenSearch:
    """A catalog search whose product search fails (the database or the embedder is down)."""

    def __init__(self, inner: HybridSearch) -> None:
        self.inner = inner

    async def search_products(
        self, query: str, *, filters: ProductFilters | None = None, limit: int = 5
    ) -> list[ProductHit]:
        raise RuntimeError("embedding service unreachable")

    async def get_product(self, sku: str) -> ProductHit | None:
        return await self.inner.get_product(sku)

    async def search_knowledge(self, query: str, *, limit: int = 4) -> list[KnowledgeHit]:
        return await self.inner.search_knowledge(query, limit=limit)


async def test_a_failing_tool_becomes_an_instruction_not_a_crashed_turn(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    script = Script(
        [[call("search_products", query="printer"), call("get_product", sku="HP-LJM211DW")], "Let me check."]
    )
    driver = driver_for(
        catalog_session,
        settings,
        script,
        search_factory=lambda session, cfg: BrokenSearch(HybridSearch(session, get_embedder(cfg))),
    )
    await at_stage(driver, SalesStage.SOLUTION)

    reply = await driver.say("printers?")

    assert [c["outcome"] for c in reply.tool_calls] == ["failed", "ok"]
    assert "search_products failed because of an internal error" in script.tool_results()[0].model_response_str()
    assert reply.text == "Let me check."
