"""The admin's alerts (delivery state per channel), follow-ups, and one conversation's page of both."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.alerts import service as alerts
from salesbot.models import (
    AlertChannel,
    AlertDelivery,
    AlertDeliveryStatus,
    AlertKind,
    FollowUp,
    FollowUpStatus,
)
from salesbot.models._columns import utcnow
from tests.admin.conftest import client_for
from tests.reporting.factories import make_chat


async def seed(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    now = utcnow()
    async with sessionmaker() as session:
        chat = await make_chat(session, name="Maria")
        other = await make_chat(session, name="Omar")
        alert_id = await alerts.record_alert(
            session,
            kind=AlertKind.PERSON_REQUESTED,
            conversation_id=chat.conversation.id,
            event_key="handoff:admin:1",
            excerpt="I want a manager, my number is +971 50 111 2233",
        )
        assert alert_id is not None
        session.add_all(
            [
                AlertDelivery(
                    alert_id=alert_id, channel=AlertChannel.TELEGRAM, status=AlertDeliveryStatus.SENT, attempts=1
                ),
                AlertDelivery(
                    alert_id=alert_id,
                    channel=AlertChannel.EMAIL,
                    status=AlertDeliveryStatus.PENDING,
                    attempts=2,
                    error="smtp 451: try again later",
                    next_attempt_at=now + timedelta(minutes=2),
                ),
                FollowUp(
                    conversation_id=chat.conversation.id,
                    rule="quote_reminder",
                    key=f"quote_reminder:{chat.conversation.id}:quote:1",
                    status=FollowUpStatus.SCHEDULED,
                    trigger_at=now,
                    due_at=now + timedelta(hours=4),
                ),
                FollowUp(
                    conversation_id=chat.conversation.id,
                    rule="solution_nudge",
                    key=f"solution_nudge:{chat.conversation.id}:stall:9",
                    status=FollowUpStatus.SKIPPED,
                    reason="window_closed: no template configured for wazzup",
                    trigger_at=now - timedelta(days=2),
                    due_at=now - timedelta(days=1),
                ),
                FollowUp(
                    conversation_id=other.conversation.id,
                    rule="quote_reminder",
                    key=f"quote_reminder:{other.conversation.id}:quote:2",
                    status=FollowUpStatus.CANCELLED,
                    reason="customer_replied",
                    trigger_at=now,
                    due_at=now + timedelta(hours=4),
                ),
            ]
        )
        await session.commit()
        return chat.conversation.id, other.conversation.id


async def test_alerts_list_shows_kind_masked_excerpt_and_delivery_per_channel(
    manager: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seed(sessionmaker)
    page = await manager.get("/admin/alert/list")
    assert page.status_code == 200
    assert "person requested" in page.text
    assert "telegram: sent" in page.text
    assert "email: pending (2 attempts; next" in page.text
    assert "smtp 451: try again later" in page.text
    assert "[phone]" in page.text
    assert "111 2233" not in page.text
    assert (await manager.get("/admin/alert/list?kind=person_requested")).status_code == 200
    assert (await manager.get("/admin/alert/list?kind=nonsense")).status_code == 400


async def test_follow_ups_list_shows_scheduled_sent_and_why_not(
    manager: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seed(sessionmaker)
    page = await manager.get("/admin/follow-up/list")
    assert page.status_code == 200
    for text in ("quote_reminder", "scheduled", "skipped", "window_closed: no template configured for wazzup"):
        assert text in page.text
    scheduled = await manager.get("/admin/follow-up/list?status=scheduled")
    assert "customer_replied" not in scheduled.text


async def test_a_conversations_page_links_to_its_alerts_and_follow_ups(
    manager: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    conversation_id, other_id = await seed(sessionmaker)
    details = await manager.get(f"/admin/conversation/details/{conversation_id}")
    assert f'href="http://testserver/admin/conversation-activity/{conversation_id}"' in details.text

    page = await manager.get(f"/admin/conversation-activity/{conversation_id}")
    assert page.status_code == 200
    assert "person requested" in page.text
    assert "email: pending" in page.text
    assert "quote_reminder" in page.text
    assert "solution_nudge" in page.text
    # Only this conversation's.
    assert "customer_replied" not in page.text
    assert "No alerts." in (await manager.get(f"/admin/conversation-activity/{other_id}")).text


async def test_the_activity_page_refuses_bad_ids_and_strangers(manager: httpx.AsyncClient, admin_app: FastAPI) -> None:
    for bad in ("0", "abc", "99999999999999999999", "%00"):
        assert (await manager.get(f"/admin/conversation-activity/{bad}")).status_code == 404
    assert (await manager.get("/admin/conversation-activity/12345")).status_code == 200
    # `manager` is logged in; a client without the session cookie is sent to the login page.
    async with client_for(admin_app) as stranger:
        response = await stranger.get("/admin/conversation-activity/1")
    assert response.status_code in (302, 303)
    assert response.headers["location"].endswith("/admin/login")
