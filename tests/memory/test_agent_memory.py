"""Memory through the agent (FunctionModel scripts, real DB, search and embedder): written after a turn,
recalled into a later conversation's context, never across customers, PII-masked."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.eval.runner import ChatDriver
from salesbot.agent.service import SalesAgentService
from salesbot.knowledge.embeddings import get_embedder
from salesbot.memory.service import remember
from salesbot.memory.turn import TurnMemory, recall_for_turn
from salesbot.memory.types import FactDraft, MemoryKind
from salesbot.models import Conversation, ConversationStatus, CustomerMemory, Quote
from salesbot.settings import Settings
from tests.agent.scripted import Script, call

NOW = datetime.now(UTC)


def driver(session: AsyncSession, settings: Settings, script: Script, *, chat_id: str) -> ChatDriver:
    return ChatDriver(session, SalesAgentService(model=script.model, clock=lambda: NOW), settings, chat_id=chat_id)


async def memories(session: AsyncSession, customer_id: int) -> list[tuple[str, str, str]]:
    rows = await session.execute(
        select(CustomerMemory.kind, CustomerMemory.key, CustomerMemory.text)
        .where(CustomerMemory.customer_id == customer_id)
        .order_by(CustomerMemory.kind, CustomerMemory.key)
    )
    return [(row.kind, row.key, row.text) for row in rows]


async def new_conversation(session: AsyncSession, chat: ChatDriver) -> Conversation:
    """The customer comes back later: the old conversation is closed and a new one starts."""
    assert chat.conversation is not None
    assert chat.customer is not None
    chat.conversation.status = ConversationStatus.CLOSED
    await session.flush()
    conversation = Conversation(customer_id=chat.customer.id, channel=chat.conversation.channel)
    session.add(conversation)
    await session.flush()
    chat.conversation = conversation
    return conversation


async def printer_customer(session: AsyncSession, settings: Settings, chat_id: str) -> ChatDriver:
    """A customer whose first conversation searched the catalog for the LaserJet M211dw."""
    script = Script([[call("search_products", query="HP LaserJet M211dw printer")], "Here are our LaserJets."])
    chat = driver(session, settings, script, chat_id=chat_id)
    await chat.say("Do you have the HP LaserJet M211dw?")
    return chat


async def test_a_product_search_is_remembered_once(catalog_session: AsyncSession, settings: Settings) -> None:
    chat = await printer_customer(catalog_session, settings, "memory-writer")
    assert chat.customer is not None
    stored = await memories(catalog_session, chat.customer.id)
    printers = [row for row in stored if row[0] == "product" and row[1] == "HP-LJM211DW"]
    assert printers == [
        ("product", "HP-LJM211DW", "Asked about HP LaserJet M211dw Printer (SKU HP-LJM211DW, Printers)")
    ]
    source = await catalog_session.scalar(
        select(CustomerMemory).where(
            CustomerMemory.customer_id == chat.customer.id, CustomerMemory.key == "HP-LJM211DW"
        )
    )
    assert source is not None
    assert chat.conversation is not None
    assert source.conversation_id == chat.conversation.id
    assert source.message_id is not None
    assert source.embedding is not None

    # The same search in a later turn stores nothing twice.
    chat.service = SalesAgentService(
        model=Script([[call("search_products", query="HP LaserJet M211dw printer")], "Still here."]).model,
        clock=lambda: NOW,
    )
    await chat.say("Show me that printer again")
    assert await memories(catalog_session, chat.customer.id) == stored


async def test_a_new_conversation_gets_the_memory_in_the_models_context(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    chat = await printer_customer(catalog_session, settings, "memory-returning")
    await new_conversation(catalog_session, chat)
    later = Script(["Welcome back! Still interested in the LaserJet M211dw?"])
    chat.service = SalesAgentService(model=later.model, clock=lambda: NOW)

    await chat.say("Hi, I'm back about the printer")

    instructions = later.seen[0].instructions
    assert "Remembered from earlier conversations" in instructions
    assert "Asked about HP LaserJet M211dw Printer (SKU HP-LJM211DW, Printers)" in instructions


async def test_another_customers_memory_never_reaches_the_model(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    alice = await printer_customer(catalog_session, settings, "memory-alice")
    assert alice.customer is not None
    alice_texts = [text for _, _, text in await memories(catalog_session, alice.customer.id)]
    assert alice_texts

    bob_script = Script(
        [
            [call("recall_customer_memory", query="HP LaserJet M211dw printer")],
            "Let me look that up.",
        ]
    )
    bob = driver(catalog_session, settings, bob_script, chat_id="memory-bob")
    await bob.start()
    assert bob.customer is not None
    assert bob.conversation is not None
    earlier = bob.conversation
    await remember(
        catalog_session,
        get_embedder(settings),
        customer_id=bob.customer.id,
        conversation_id=earlier.id,
        message_id=None,
        facts=[FactDraft(MemoryKind.PRODUCT, "CH-ERGO", "Asked about an ergonomic office chair")],
    )
    await new_conversation(catalog_session, bob)

    await bob.say("Do you remember the HP LaserJet M211dw printer I asked about?")

    seen = "\n".join(request.text() for request in bob_script.seen)
    returned = [
        part.model_response_str()
        for request in bob_script.seen
        for message in request.messages
        for part in message.parts
        if isinstance(part, ToolReturnPart) and part.tool_name == "recall_customer_memory"
    ]
    assert returned, "the tool ran"
    assert "Asked about an ergonomic office chair" in returned[0]  # Bob's own memory is there...
    assert "Asked about an ergonomic office chair" in bob_script.seen[0].instructions
    for text in alice_texts:  # ...and Alice's never is, in the instructions or through the tool
        assert text not in seen
    assert "SKU HP-LJM211DW, Printers" not in seen


async def test_phone_numbers_and_emails_in_memory_are_masked_for_the_model(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("Noted.")])

    script = Script([[call("recall_customer_memory", query="contact details company")], answer])
    chat = driver(catalog_session, settings, script, chat_id="memory-pii")
    await chat.start()
    assert chat.customer is not None
    assert chat.conversation is not None
    await remember(
        catalog_session,
        get_embedder(settings),
        customer_id=chat.customer.id,
        conversation_id=chat.conversation.id,
        message_id=None,
        facts=[
            FactDraft(
                MemoryKind.COMPANY,
                "company",
                "Company: Globex, reach Olga at olga.k@globex.example or +971 50 123 4567",
            )
        ],
    )
    await new_conversation(catalog_session, chat)

    await chat.say("Hello, what details do you have about my company?")

    seen = "\n".join(request.text() for request in script.seen)
    assert "Company: Globex, reach Olga at" in seen  # the fact reached the model (instructions and tool)...
    assert "olga.k@globex.example" not in seen  # ...without the raw e-mail address or phone number
    assert "+971 50 123 4567" not in seen
    assert "[EMAIL_1]" in seen
    assert "[PHONE_1]" in seen


async def test_the_offline_responder_greets_a_returning_customer_with_the_last_product(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    chat = await printer_customer(catalog_session, settings, "memory-offline")
    await new_conversation(catalog_session, chat)
    chat.service = SalesAgentService(clock=lambda: NOW)  # no model configured: the offline responder

    reply = await chat.say("Hello")

    assert reply.model == "offline"
    assert "Last time you asked about the HP LaserJet M211dw Printer — still interested?" in reply.text

    stranger = driver(catalog_session, settings, Script(["unused"]), chat_id="memory-offline-new")
    stranger.service = SalesAgentService(clock=lambda: NOW)
    first = await stranger.say("Hello")
    assert "Last time" not in first.text


async def test_a_remembered_quote_total_may_be_cited_after_the_tool_returned_it(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    script = Script(
        [[call("recall_customer_memory", query="my last quote")], "Your earlier quote came to 4321.50 AED."]
    )
    chat = driver(catalog_session, settings, script, chat_id="memory-quote")
    await chat.start()
    assert chat.customer is not None
    assert chat.conversation is not None
    # The quote exists: the figures the model may cite are read from it, not from the memory's text.
    quote = Quote(
        conversation_id=chat.conversation.id,
        items=[{"sku": "DK-1", "name": "Desk", "qty": 3, "unit_price": "1440.50", "line_total": "4321.50"}],
        subtotal=Decimal("4321.50"),
        discount_pct=Decimal(0),
        discount_amount=Decimal(0),
        total=Decimal("4321.50"),
        currency="AED",
    )
    catalog_session.add(quote)
    await catalog_session.flush()
    await remember(
        catalog_session,
        get_embedder(settings),
        customer_id=chat.customer.id,
        conversation_id=chat.conversation.id,
        message_id=None,
        facts=[FactDraft(MemoryKind.QUOTE, str(quote.id), f"Received quote #{quote.id}: Desk x 3; total 4321.50 AED")],
    )
    await new_conversation(catalog_session, chat)

    reply = await chat.say("What did my last quote come to?")

    assert reply.text == "Your earlier quote came to 4321.50 AED."  # grounded by the quote itself, not replaced


async def test_a_figure_only_in_memory_text_is_not_grounded(catalog_session: AsyncSession, settings: Settings) -> None:
    # Memory text is a note, not a record: without the quote in the database its total cannot be promised.
    script = Script([[call("recall_customer_memory", query="my last quote")], "Your earlier quote came to 999.50 AED."])
    chat = driver(catalog_session, settings, script, chat_id="memory-ungrounded")
    await chat.start()
    assert chat.customer is not None
    assert chat.conversation is not None
    await remember(
        catalog_session,
        get_embedder(settings),
        customer_id=chat.customer.id,
        conversation_id=chat.conversation.id,
        message_id=None,
        facts=[FactDraft(MemoryKind.QUOTE, "424242", "Received quote #424242: Desk x 1; total 999.50 AED")],
    )
    await new_conversation(catalog_session, chat)

    reply = await chat.say("What did my last quote come to?")

    assert "999.50" not in reply.text


async def test_a_new_customer_s_recall_is_one_lookup(catalog_session: AsyncSession, settings: Settings) -> None:
    chat = driver(catalog_session, settings, Script(["Hello!"]), chat_id="memory-new-customer")
    conversation = await chat.start()
    assert chat.customer is not None
    selects: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    assert catalog_session.bind is not None
    engine = catalog_session.bind.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        memory = await recall_for_turn(catalog_session, settings, chat.customer, conversation, "Any printers?")
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert memory == TurnMemory()
    assert len(selects) == 1
