"""The conversation list and page: masked phones, search, filters, transcript bubbles, manager actions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot import queues
from salesbot.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Message,
    Owner,
    SalesStage,
)
from tests.admin.conftest import ADMIN_USER, csrf_from
from tests.reporting.factories import Chat, add_message, make_chat, make_quote

Sessionmaker = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 11, 10, 9, 30, tzinfo=UTC)
ROW_ID = re.compile(r'<input type="hidden" value="(\d+)">')


def listed(html: str) -> list[int]:
    return [int(match) for match in ROW_ID.findall(html)]


async def reload(sessionmaker: Sessionmaker, conversation_id: int) -> Conversation:
    async with sessionmaker() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation


async def test_list_shows_the_columns_managers_need_newest_activity_first(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        older = await make_chat(
            session,
            phone="79001234567",
            name="Alice",
            stage=SalesStage.NEEDS_ANALYSIS,
            last_message_at=T0,
            message_count=12,
            llm_cost_total=Decimal("0.0421"),
        )
        newer = await make_chat(session, phone="971500000001", name="Омар", last_message_at=T0 + timedelta(hours=1))
        silent = await make_chat(session, name="Quiet")
        await session.commit()

    response = await manager.get("/admin/conversation/list")
    assert response.status_code == 200
    html = response.text
    assert listed(html) == [newer.conversation.id, older.conversation.id, silent.conversation.id]
    for text in ("Alice", "Омар", "needs analysis", T0.strftime("%Y-%m-%d %H:%M UTC"), "$0.0421", "+79•••••••67", "12"):
        assert text in html, text
    assert "79001234567" not in html  # the list masks phones


@pytest.mark.parametrize(
    ("term", "expected"), [("ali", "alice"), ("1234", "alice"), ("+971 50", "omar"), ("nobody", None)]
)
async def test_search_by_name_or_phone(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker, term: str, expected: str | None
) -> None:
    async with sessionmaker() as session:
        chats = {
            "alice": await make_chat(session, phone="79001234567", name="Alice"),
            "omar": await make_chat(session, phone="whatsapp:+971501112233", name="Omar", channel=Channel.TWILIO),
        }
        await session.commit()
    response = await manager.get("/admin/conversation/list", params={"search": term})
    assert response.status_code == 200
    assert listed(response.text) == ([chats[expected].conversation.id] if expected else [])


async def test_filters_by_stage_owner_status_and_language(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        quoting = await make_chat(session, stage=SalesStage.QUOTING, language="ar")
        human = await make_chat(session, owner=Owner.HUMAN, language="ru")
        closed = await make_chat(session, status=ConversationStatus.CLOSED, language="en")
        await session.commit()
    q, h, c = quoting.conversation.id, human.conversation.id, closed.conversation.id

    async def ids(**params: str) -> set[int]:
        response = await manager.get("/admin/conversation/list", params=params)
        assert response.status_code == 200
        return set(listed(response.text))

    assert await ids(stage="quoting") == {q}
    assert await ids(owner="human") == {h}
    assert await ids(status="closed") == {c}
    assert await ids(status="active") == {q, h}
    assert await ids(language="ru") == {h}
    assert await ids(stage="__all", owner="bot") == {q, c}
    page = (await manager.get("/admin/conversation/list")).text
    # The filter sidebar offers every stage, owner and status, and the languages that occur.
    for link in ("stage=needs_analysis", "stage=company_details", "owner=human", "status=closed", "language=ar"):
        assert link in page, link
    assert "language=de" not in page
    for params in ({"stage": "bogus"}, {"owner": "robot"}, {"status": "x"}, {"language": "x" * 50}):
        assert (await manager.get("/admin/conversation/list", params=params)).status_code == 400


async def seed_transcript(session: AsyncSession) -> Chat:
    chat = await make_chat(session, phone="79005550011", name="Dana", stage=SalesStage.QUOTING, language="en")
    await add_message(session, chat, "Need two printers for the office", at=T0)
    await add_message(
        session,
        chat,
        "Here are two options",
        author=Author.BOT,
        at=T0 + timedelta(seconds=5),
        status=DeliveryStatus.READ,
        model="openai/gpt-4o-mini",
        fallback_used=False,
        tokens_in=812,
        tokens_out=96,
        cost=Decimal("0.000183"),
        latency_ms=1432,
        tool_calls=[
            {"tool": "search_products", "args": {"query": "office printer", "max_price": 500}, "outcome": "ok"}
        ],
    )
    await add_message(
        session,
        chat,
        "Your quote is ready",
        author=Author.BOT,
        at=T0 + timedelta(seconds=40),
        status=DeliveryStatus.DELIVERED,
        model="offline",
        fallback_used=True,
        tokens_in=0,
        tokens_out=0,
        cost=Decimal(0),
        latency_ms=12,
        tool_calls=[{"tool": "create_quote", "args": {"items": [{"sku": "PR-1", "qty": 2}]}, "outcome": "refused"}],
    )
    await add_message(
        session,
        chat,
        "I will call you",
        author=Author.MANAGER,
        at=T0 + timedelta(minutes=3),
        status=DeliveryStatus.FAILED,
        error="window_closed: the 24 h window is closed",
    )
    await add_message(
        session,
        chat,
        "draft nobody saw",
        author=Author.BOT,
        at=T0 + timedelta(minutes=4),
        status=DeliveryStatus.CANCELLED,
        error="human_takeover",
    )
    await make_quote(session, chat, sku="PR-1", qty=2)
    return chat


async def test_the_page_shows_the_transcript_as_a_chat_with_quotes_and_turn_records(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        chat = await seed_transcript(session)
        await session.commit()
    response = await manager.get(f"/admin/conversation/details/{chat.conversation.id}")
    assert response.status_code == 200
    html = response.text
    bubbles = re.findall(r'<div class="(sb-bubble[^"]*)" data-message-id="\d+" data-status="(\w*)">', html)
    assert bubbles == [
        ("sb-bubble sb-customer", ""),
        ("sb-bubble sb-bot sb-read", "read"),
        ("sb-bubble sb-bot", "delivered"),
        ("sb-bubble sb-manager sb-failed", "failed"),
        ("sb-bubble sb-bot sb-cancelled", "cancelled"),
    ]
    assert html.count('class="sb-tick"') == 4
    assert 'title="read">✓✓' in html
    assert 'title="delivered">✓✓' in html
    assert "Not delivered: window_closed: the 24 h window is closed" in html
    assert "1 not delivered" in html
    assert T0.strftime("%Y-%m-%d %H:%M UTC") in html
    assert "+79005550011" in html  # the page itself shows the full number to the manager
    # Quote and turn records.
    assert "Quote #" in html
    assert "PR-1" in html
    assert "Total 190.00 USD" in html
    turns = html[html.index('id="sb-turns"') :]
    for text in ("openai/gpt-4o-mini", "812 / 96", "$0.000183", "1432 ms", "offline", "fallback", "12 ms"):
        assert text in turns, text
    assert "search_products(query=&#34;office printer&#34;, max_price=500)" in turns
    assert "create_quote(items=" in turns
    assert "→ refused" in turns


async def test_unknown_conversation_is_a_404(manager: httpx.AsyncClient) -> None:
    assert (await manager.get("/admin/conversation/details/424242")).status_code == 404
    assert (await manager.get("/admin/conversation/details/abc")).status_code == 404


async def action(manager: httpx.AsyncClient, conversation_id: int, name: str, **data: str) -> httpx.Response:
    page = await manager.get(f"/admin/conversation/details/{conversation_id}")
    return await manager.post(
        f"/admin/conversation/{conversation_id}/{name}", data={"csrf_token": csrf_from(page.text), **data}
    )


async def test_take_over_silences_the_bot_at_once_including_an_unsent_reply(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await add_message(session, chat, "hello?")
        draft = await add_message(
            session, chat, "Hi! How can I help?", author=Author.BOT, status=DeliveryStatus.PENDING
        )
        await session.commit()
    conversation_id = chat.conversation.id

    response = await action(manager, conversation_id, "take-over")
    assert response.status_code == 303
    assert response.headers["location"].endswith(f"/admin/conversation/details/{conversation_id}")
    conversation = await reload(sessionmaker, conversation_id)
    assert conversation.owner is Owner.HUMAN
    assert conversation.owner_until is not None
    assert timedelta(hours=11) < conversation.owner_until - datetime.now(UTC) <= timedelta(hours=12)
    async with sessionmaker() as session:
        withdrawn = await session.get(Message, draft.id)
        assert withdrawn is not None
        assert withdrawn.delivery_status is DeliveryStatus.CANCELLED

    page = await manager.get(f"/admin/conversation/details/{conversation_id}")
    assert f"owner: human ({ADMIN_USER}) until" in page.text
    assert 'id="sb-hand-back"' in page.text
    assert 'id="sb-take-over"' not in page.text

    assert (await action(manager, conversation_id, "hand-back")).status_code == 303
    conversation = await reload(sessionmaker, conversation_id)
    assert (conversation.owner, conversation.owner_until) == (Owner.BOT, None)


async def test_close(manager: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    assert (await action(manager, chat.conversation.id, "close")).status_code == 303
    assert (await reload(sessionmaker, chat.conversation.id)).status is ConversationStatus.CLOSED
    page = await manager.get(f"/admin/conversation/details/{chat.conversation.id}")
    assert 'id="sb-status">closed<' in page.text
    assert 'id="sb-close"' not in page.text


async def test_a_manager_message_goes_to_the_outbox_and_its_delivery_is_scheduled(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker, redis: ArqRedis
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    conversation_id = chat.conversation.id
    response = await action(manager, conversation_id, "send", text="Hello, this is Anna from sales.")
    assert response.status_code == 303
    async with sessionmaker() as session:
        rows = (await session.scalars(select(Message).where(Message.conversation_id == conversation_id))).all()
    assert [(m.author, m.text, m.delivery_status) for m in rows] == [
        (Author.MANAGER, "Hello, this is Anna from sales.", DeliveryStatus.PENDING)
    ]
    assert rows[0].idempotency_key
    assert (await reload(sessionmaker, conversation_id)).owner is Owner.HUMAN
    queued = await redis.queued_jobs(queue_name=queues.MESSAGING)
    assert [(job.function, job.args) for job in queued] == [("deliver_outbox", (conversation_id,))]
    page = await manager.get(f"/admin/conversation/details/{conversation_id}")
    assert "Message queued for delivery." in page.text
    assert "Hello, this is Anna from sales." in page.text
    assert 'title="waiting to be sent">🕓' in page.text


@pytest.mark.parametrize("text", ["", "   ", "x" * 4097, "bad\x00byte"])
async def test_an_invalid_manager_message_changes_nothing(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker, redis: ArqRedis, text: str
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    response = await action(manager, chat.conversation.id, "send", text=text)
    assert response.status_code == 303
    async with sessionmaker() as session:
        assert (await session.scalars(select(Message))).all() == []
    assert (await reload(sessionmaker, chat.conversation.id)).owner is Owner.BOT
    assert await redis.queued_jobs(queue_name=queues.MESSAGING) == []
    page = await manager.get(f"/admin/conversation/details/{chat.conversation.id}")
    assert "Write a message of 1 to 4096 characters." in page.text


async def test_actions_on_an_unknown_conversation_are_404(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    page = await manager.get(f"/admin/conversation/details/{chat.conversation.id}")
    token = csrf_from(page.text)
    for name in ("take-over", "hand-back", "close", "send"):
        response = await manager.post(f"/admin/conversation/999999/{name}", data={"csrf_token": token, "text": "x"})
        assert response.status_code == 404, name
