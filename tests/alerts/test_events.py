"""Which events record an alert, and that each records exactly one (in the event's own transaction)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from salesbot.agent.service import generate_reply
from salesbot.alerts import service, tasks
from salesbot.db import unit_of_work
from salesbot.messaging.base import StatusUpdate
from salesbot.models import (
    Alert,
    AlertDelivery,
    AlertDeliveryStatus,
    AlertKind,
    Author,
    Channel,
    Conversation,
    DeliveryStatus,
    Direction,
    Message,
    Owner,
    Quote,
)
from salesbot.outbox.service import apply_status
from salesbot.resources import Resources
from salesbot.settings import AlertSettings
from tests.alerts.conftest import AlertResources, make_conversation
from tests.fakes.pipeline import Pipeline
from tests.fakes.telegram import BOT_TOKEN, CHAT_ID, telegram_server
from tests.fakes.worker import PipelineWorker


async def alerts(resources: Resources) -> list[tuple[AlertKind, str]]:
    async with resources.sessionmaker() as session:
        rows = await session.scalars(select(Alert).order_by(Alert.id))
        return [(row.kind, row.event_key) for row in rows]


async def set_attention(resources: Resources, conversation_id: int, value: bool) -> None:
    async with unit_of_work(resources.sessionmaker) as session:
        conversation = await session.get_one(Conversation, conversation_id)
        conversation.needs_attention = value


async def test_a_rising_needs_attention_flag_alerts_once_per_rise(alert_resources: AlertResources) -> None:
    async with alert_resources() as resources:
        conversation_id = await make_conversation(resources)
        await set_attention(resources, conversation_id, True)
        assert [kind for kind, _ in await alerts(resources)] == [AlertKind.NEEDS_ATTENTION]
        # Still up: no new event.
        await set_attention(resources, conversation_id, True)
        async with unit_of_work(resources.sessionmaker) as session:
            conversation = await session.get_one(Conversation, conversation_id)
            conversation.summary = "touched"
        assert len(await alerts(resources)) == 1
        # Cleared by a manager, then up again: a new event.
        await set_attention(resources, conversation_id, False)
        await set_attention(resources, conversation_id, True)
        assert [kind for kind, _ in await alerts(resources)] == [AlertKind.NEEDS_ATTENTION] * 2


async def test_a_flag_raised_in_a_rolled_back_savepoint_alerts_nobody(alert_resources: AlertResources) -> None:
    async with alert_resources() as resources:
        conversation_id = await make_conversation(resources)
        async with unit_of_work(resources.sessionmaker) as session:
            conversation = await session.get_one(Conversation, conversation_id)
            savepoint = await session.begin_nested()
            conversation.needs_attention = True
            await session.flush()
            await savepoint.rollback()
        assert await alerts(resources) == []


async def failed_message(resources: Resources, conversation_id: int) -> int:
    async with unit_of_work(resources.sessionmaker) as session:
        message = Message(
            conversation_id=conversation_id,
            channel=Channel.WAZZUP,
            direction=Direction.OUTBOUND,
            author=Author.BOT,
            text="Here is your quote",
            delivery_status=DeliveryStatus.SENT,
            provider_message_id="wz-out-1",
            idempotency_key="reply:1:1:0",
        )
        session.add(message)
        await session.flush()
        return message.id


async def test_a_delivery_the_provider_reports_failed_is_one_alert_not_two(alert_resources: AlertResources) -> None:
    async with alert_resources() as resources:
        conversation_id = await make_conversation(resources)
        message_id = await failed_message(resources, conversation_id)
        status = StatusUpdate(
            channel=Channel.WAZZUP,
            provider_message_id="wz-out-1",
            status=DeliveryStatus.FAILED,
            error_code="BAD_CONTACT",
            error_description="The number +971 50 111 2233 is not on WhatsApp",
        )
        # The provider reports it twice (at-least-once webhooks).
        for _ in range(2):
            async with unit_of_work(resources.sessionmaker) as session:
                await apply_status(session, status)
        # The failure raised needs_attention in the same commit: still one event.
        assert await alerts(resources) == [(AlertKind.DELIVERY_FAILED, f"delivery_failed:{message_id}")]
        async with resources.sessionmaker() as session:
            excerpt = await session.scalar(select(Alert.excerpt))
        assert excerpt == "BAD_CONTACT: The number [phone] is not on WhatsApp"


async def test_a_quote_above_the_threshold_alerts_once(alert_resources: AlertResources) -> None:
    async with alert_resources() as resources:
        conversation_id = await make_conversation(resources)
        settings = AlertSettings(alert_quote_above=Decimal("10000"))
        async with unit_of_work(resources.sessionmaker) as session:
            small = Quote(
                conversation_id=conversation_id, items=[], subtotal=Decimal(10000), total=Decimal(10000), currency="AED"
            )
            big = Quote(
                conversation_id=conversation_id, items=[], subtotal=Decimal(25000), total=Decimal(24500), currency="AED"
            )
            session.add_all([small, big])
            await session.flush()
            assert await service.alert_large_quote(session, settings, small) is None
            assert await service.alert_large_quote(session, settings, big) is not None
            assert await service.alert_large_quote(session, settings, big) is None
            assert await service.alert_large_quote(session, AlertSettings(), big) is None
        async with resources.sessionmaker() as session:
            [alert] = await session.scalars(select(Alert))
        assert (alert.kind, alert.event_key, alert.excerpt) == (
            AlertKind.QUOTE_ABOVE_THRESHOLD,
            f"quote:{big.id}",
            f"Quote #{big.id}: AED 24,500.00",
        )


async def test_a_customer_asking_for_a_person_is_one_alert_with_the_handoff(pipeline: Pipeline) -> None:
    """The offline agent calls request_human (which raises needs_attention and hands the chat over): the turn's
    handoff, the request and the flag are one event."""
    worker = PipelineWorker(pipeline.resources, generate_reply)
    await pipeline.console("+971 50 123 4567", "I want to talk to a manager please, call me at +971 50 765 4321")
    await worker.drain()

    [conversation] = await pipeline.conversations()
    assert conversation.owner is Owner.HUMAN
    assert conversation.needs_attention
    [(kind, key)] = await alerts(pipeline.resources)
    [inbound] = await pipeline.messages(direction=Direction.INBOUND)
    assert (kind, key) == (AlertKind.PERSON_REQUESTED, f"handoff:{conversation.id}:{inbound.id}")
    async with pipeline.resources.sessionmaker() as session:
        excerpt = await session.scalar(select(Alert.excerpt))
    assert excerpt == "I want to talk to a manager please, call me at [phone]"


async def test_a_handoff_without_a_request_is_a_handoff_alert(pipeline: Pipeline) -> None:
    pipeline.generator.handoff = True
    await pipeline.console("+971 50 123 4567", "hello")
    await pipeline.worker.drain()
    [(kind, _)] = await alerts(pipeline.resources)
    assert kind is AlertKind.HANDOFF


async def test_the_dispatcher_and_the_job_deliver_committed_alerts_once(alert_resources: AlertResources) -> None:
    from arq.worker import Worker

    from salesbot import queues
    from salesbot.worker import MESSAGING_FUNCTIONS

    async with (
        telegram_server() as api,
        alert_resources(
            telegram_api_url=api.base_url, telegram_bot_token=BOT_TOKEN, telegram_chat_id=CHAT_ID
        ) as resources,
    ):
        conversation_id = await make_conversation(resources)
        async with unit_of_work(resources.sessionmaker) as session:
            await service.record_alert(
                session, kind=AlertKind.HANDOFF, conversation_id=conversation_id, event_key="handoff:9:9"
            )
        ctx: Any = {"resources": resources}
        assert await tasks.dispatch_alerts(ctx) == 1

        async def startup(worker_ctx: dict[str, Any]) -> None:
            worker_ctx["resources"] = resources

        worker = Worker(
            functions=MESSAGING_FUNCTIONS,
            queue_name=queues.MESSAGING,
            redis_pool=resources.redis,
            on_startup=startup,
            burst=True,
            poll_delay=0.01,
            handle_signals=False,
            keep_result=0,
        )
        await worker.main()
        worker._pool = None  # type: ignore[assignment]

        assert len(api.delivered) == 1
        assert await tasks.dispatch_alerts(ctx) == 0
        async with resources.sessionmaker() as session:
            [row] = await session.scalars(select(AlertDelivery))
        assert row.status is AlertDeliveryStatus.SENT


async def test_without_channels_alerts_are_recorded_and_nothing_is_dispatched(alert_resources: AlertResources) -> None:
    async with alert_resources() as resources:
        conversation_id = await make_conversation(resources)
        await set_attention(resources, conversation_id, True)
        assert await tasks.dispatch_alerts({"resources": resources}) == 0


async def test_a_send_the_provider_refuses_for_good_is_one_delivery_failed_alert(pipeline: Pipeline) -> None:
    pipeline.wazzup_api.fail_next.append(
        (400, {"status": 400, "error": "BAD_CONTACT", "description": "number is not on WhatsApp"})
    )
    await pipeline.wazzup_text("971501234567", "hello")
    await pipeline.worker.drain()
    [outbound] = await pipeline.messages(direction=Direction.OUTBOUND)
    assert outbound.delivery_status is DeliveryStatus.FAILED
    # The failure also raised needs_attention, in the same commit: one event.
    assert await alerts(pipeline.resources) == [(AlertKind.DELIVERY_FAILED, f"delivery_failed:{outbound.id}")]
