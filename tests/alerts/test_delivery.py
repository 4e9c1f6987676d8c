"""Alert delivery against local fakes: the Telegram Bot API, a real SMTP server, a webhook receiver that checks
the signature. Times are relative to the test's own clock (`now` is injected)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from salesbot.alerts import delivery, service
from salesbot.alerts.base import AlertMessage
from salesbot.db import unit_of_work
from salesbot.models import Alert, AlertChannel, AlertDelivery, AlertDeliveryStatus, AlertKind
from salesbot.models._columns import utcnow
from salesbot.resources import Resources
from tests.alerts.conftest import CUSTOMER_CHAT_ID, AlertResources, make_conversation
from tests.fakes.alert_receivers import (
    SMTP_PASSWORD,
    SMTP_USER,
    WEBHOOK_SECRET,
    MailHandler,
    smtp_server,
    webhook_receiver,
)
from tests.fakes.telegram import BOT_TOKEN, CHAT_ID, server_error, telegram_server, too_many_requests

EXCERPT = "Please call me on +971 50 111 2233 or write to maria@falcon-client.example, I want a person now " * 3


async def record(resources: Resources, conversation_id: int, *, key: str = "handoff:test:1") -> int:
    async with unit_of_work(resources.sessionmaker) as session:
        alert_id = await service.record_alert(
            session,
            kind=AlertKind.PERSON_REQUESTED,
            conversation_id=conversation_id,
            event_key=key,
            excerpt=EXCERPT,
        )
    assert alert_id is not None
    return alert_id


async def deliveries(resources: Resources, alert_id: int) -> dict[AlertChannel, AlertDelivery]:
    async with resources.sessionmaker() as session:
        rows = await session.scalars(select(AlertDelivery).where(AlertDelivery.alert_id == alert_id))
        return {row.channel: row for row in rows}


def assert_masked(text: str, conversation_id: int) -> None:
    assert "+97••••••••67" in text
    for raw in (CUSTOMER_CHAT_ID, "111 2233", "1112233", "765 4321", "maria@falcon-client.example"):
        assert raw not in text
    assert f"https://bot.example.test/admin/conversation/details/{conversation_id}" in text


async def test_telegram_alert_is_masked_short_and_links_the_conversation(alert_resources: AlertResources) -> None:
    async with (
        telegram_server() as api,
        alert_resources(
            telegram_api_url=api.base_url, telegram_bot_token=BOT_TOKEN, telegram_chat_id=CHAT_ID
        ) as resources,
    ):
        conversation_id = await make_conversation(resources)
        alert_id = await record(resources, conversation_id)
        report = await delivery.deliver_alert(resources, delivery.build_senders(resources), alert_id)

        assert report.sent == 1
        [(path, body)] = api.requests
        assert path == f"/bot{BOT_TOKEN}/sendMessage"
        assert body["chat_id"] == CHAT_ID
        text = body["text"]
        assert text.startswith(f"Customer asked for a person: conversation #{conversation_id}")
        assert_masked(text, conversation_id)
        # Only a short excerpt of what the customer wrote.
        assert "I want a person now" in text
        assert len(text) < 400
        row = (await deliveries(resources, alert_id))[AlertChannel.TELEGRAM]
        assert (row.status, row.attempts, row.error) == (AlertDeliveryStatus.SENT, 1, None)


async def test_telegram_429_waits_at_least_retry_after_then_sends_once(alert_resources: AlertResources) -> None:
    async with (
        telegram_server() as api,
        alert_resources(
            telegram_api_url=api.base_url,
            telegram_bot_token=BOT_TOKEN,
            telegram_chat_id=CHAT_ID,
            alert_retry_base_seconds=1,
        ) as resources,
    ):
        api.script.append(too_many_requests(7))
        conversation_id = await make_conversation(resources)
        alert_id = await record(resources, conversation_id)
        senders = delivery.build_senders(resources)
        start = utcnow()

        first = await delivery.deliver_alert(resources, senders, alert_id, now=start)
        row = (await deliveries(resources, alert_id))[AlertChannel.TELEGRAM]
        assert first.sent == 0
        assert first.retry_at == row.next_attempt_at
        assert row.status is AlertDeliveryStatus.PENDING
        assert row.attempts == 1
        assert row.next_attempt_at is not None
        assert row.next_attempt_at >= start + timedelta(seconds=7)
        assert "retry after 7" in (row.error or "")

        # Not due yet: nothing is sent.
        await delivery.deliver_alert(resources, senders, alert_id, now=start + timedelta(seconds=6))
        assert len(api.requests) == 1

        done = await delivery.deliver_alert(resources, senders, alert_id, now=row.next_attempt_at)
        assert done.sent == 1
        # Sent is final: another run (a duplicate job) sends nothing.
        await delivery.deliver_alert(resources, senders, alert_id, now=row.next_attempt_at + timedelta(hours=1))
        assert len(api.requests) == 2
        assert len(api.delivered) == 1


async def test_server_errors_back_off_exponentially_then_give_up(alert_resources: AlertResources) -> None:
    async with (
        telegram_server() as api,
        alert_resources(
            telegram_api_url=api.base_url,
            telegram_bot_token=BOT_TOKEN,
            telegram_chat_id=CHAT_ID,
            alert_retry_base_seconds=10,
            alert_retry_max_seconds=1000,
            alert_max_attempts=3,
        ) as resources,
    ):
        api.script.extend([server_error(), server_error(), server_error()])
        conversation_id = await make_conversation(resources)
        alert_id = await record(resources, conversation_id)
        senders = delivery.build_senders(resources)
        now = utcnow()
        delays = []
        for _ in range(2):
            await delivery.deliver_alert(resources, senders, alert_id, now=now)
            row = (await deliveries(resources, alert_id))[AlertChannel.TELEGRAM]
            assert row.next_attempt_at is not None
            delays.append((row.next_attempt_at - now).total_seconds())
            now = row.next_attempt_at
        # base * 2^(n-1), scaled by a jitter of 0.5-1.0.
        assert 5 <= delays[0] <= 10
        assert 10 <= delays[1] <= 20
        await delivery.deliver_alert(resources, senders, alert_id, now=now)
        row = (await deliveries(resources, alert_id))[AlertChannel.TELEGRAM]
        assert (row.status, row.attempts, row.next_attempt_at) == (AlertDeliveryStatus.FAILED, 3, None)
        assert row.error == "telegram 502: Bad Gateway"
        await delivery.deliver_alert(resources, senders, alert_id, now=now + timedelta(days=1))
        assert len(api.requests) == 3


async def test_a_refused_chat_fails_at_once_without_the_token_in_the_error(alert_resources: AlertResources) -> None:
    async with (
        telegram_server() as api,
        alert_resources(
            telegram_api_url=api.base_url, telegram_bot_token=BOT_TOKEN, telegram_chat_id="-100999"
        ) as resources,
    ):
        alert_id = await record(resources, await make_conversation(resources))
        report = await delivery.deliver_alert(resources, delivery.build_senders(resources), alert_id)
        row = (await deliveries(resources, alert_id))[AlertChannel.TELEGRAM]
        assert report.failed == 1
        assert row.status is AlertDeliveryStatus.FAILED
        assert row.attempts == 1
        assert row.error == "telegram 400: Bad Request: chat not found"
        assert not api.delivered


async def test_concurrent_jobs_for_one_alert_send_it_once(alert_resources: AlertResources) -> None:
    import asyncio

    async with (
        telegram_server() as api,
        alert_resources(
            telegram_api_url=api.base_url, telegram_bot_token=BOT_TOKEN, telegram_chat_id=CHAT_ID
        ) as resources,
    ):
        alert_id = await record(resources, await make_conversation(resources))
        senders = delivery.build_senders(resources)
        reports = await asyncio.gather(*(delivery.deliver_alert(resources, senders, alert_id) for _ in range(4)))
        assert sum(report.sent for report in reports) == 1
        assert len(api.delivered) == 1


async def test_recording_an_event_twice_keeps_one_alert(alert_resources: AlertResources) -> None:
    async with alert_resources() as resources:
        conversation_id = await make_conversation(resources)
        first = await record(resources, conversation_id, key="quote:77")
        async with unit_of_work(resources.sessionmaker) as session:
            again = await service.record_alert(
                session, kind=AlertKind.PERSON_REQUESTED, conversation_id=conversation_id, event_key="quote:77"
            )
        assert again is None
        async with resources.sessionmaker() as session:
            assert list(await session.scalars(select(Alert.id))) == [first]


async def test_webhook_is_signed_and_a_retry_repeats_the_same_delivery(alert_resources: AlertResources) -> None:
    async with (
        webhook_receiver() as receiver,
        alert_resources(alert_webhook_url=receiver.url, alert_webhook_secret=WEBHOOK_SECRET) as resources,
    ):
        receiver.script.append(503)
        conversation_id = await make_conversation(resources)
        alert_id = await record(resources, conversation_id)
        senders = delivery.build_senders(resources)
        first = await delivery.deliver_alert(resources, senders, alert_id)
        assert first.retry_at is not None
        await delivery.deliver_alert(resources, senders, alert_id, now=first.retry_at)

        assert [item.verified for item in receiver.received] == [True, True]
        # The same body, signature and delivery id on the retry: a receiver can drop repeats.
        assert receiver.received[0].body == receiver.received[1].body
        assert receiver.received[0].headers["x-salesbot-delivery"] == "handoff:test:1"
        assert receiver.received[0].headers["x-salesbot-event"] == "person_requested"
        [payload] = receiver.accepted.values()
        assert payload["kind"] == "person_requested"
        assert payload["conversation_id"] == conversation_id
        assert payload["customer"].endswith("+97••••••••67")
        assert_masked(payload["text"], conversation_id)
        assert_masked(receiver.received[0].body.decode(), conversation_id)


async def test_webhook_with_a_wrong_secret_is_refused_for_good(alert_resources: AlertResources) -> None:
    async with (
        webhook_receiver() as receiver,
        alert_resources(alert_webhook_url=receiver.url, alert_webhook_secret="not-the-receivers-secret") as resources,
    ):
        alert_id = await record(resources, await make_conversation(resources))
        report = await delivery.deliver_alert(resources, delivery.build_senders(resources), alert_id)
        row = (await deliveries(resources, alert_id))[AlertChannel.WEBHOOK]
        assert report.failed == 1
        assert row.error == "webhook 401"
        assert [item.verified for item in receiver.received] == [False]


async def test_email_through_a_real_smtp_server_with_login_and_a_temporary_failure(
    alert_resources: AlertResources,
) -> None:
    with smtp_server(MailHandler()) as (mail, port):
        mail.script.append("451 4.3.0 Mail server temporarily rejected message")
        async with alert_resources(
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_user=SMTP_USER,
            smtp_password=SMTP_PASSWORD,
            smtp_from=SMTP_USER,
            smtp_to="sales@falcon-office.example, lead@falcon-office.example",
            smtp_starttls=False,
        ) as resources:
            conversation_id = await make_conversation(resources)
            alert_id = await record(resources, conversation_id)
            senders = delivery.build_senders(resources)
            first = await delivery.deliver_alert(resources, senders, alert_id)
            row = (await deliveries(resources, alert_id))[AlertChannel.EMAIL]
            assert first.retry_at is not None
            assert row.error is not None
            assert row.error.startswith("smtp 451")
            await delivery.deliver_alert(resources, senders, alert_id, now=first.retry_at)

    [message] = mail.messages
    assert mail.envelopes == [(SMTP_USER, ["sales@falcon-office.example", "lead@falcon-office.example"])]
    assert message["Subject"] == f"[salesbot] Customer asked for a person (conversation #{conversation_id})"
    assert message["Message-ID"].startswith("<alert-")
    assert message["Message-ID"].endswith("@falcon-office.example>")
    body = message.get_payload(decode=True).decode()
    assert_masked(body, conversation_id)


async def test_email_never_goes_out_in_clear_when_starttls_is_asked_and_not_offered(
    alert_resources: AlertResources,
) -> None:
    with smtp_server() as (mail, port):
        async with alert_resources(
            smtp_host="127.0.0.1", smtp_port=port, smtp_from=SMTP_USER, smtp_to="sales@falcon-office.example"
        ) as resources:
            alert_id = await record(resources, await make_conversation(resources))
            report = await delivery.deliver_alert(resources, delivery.build_senders(resources), alert_id)
            row = (await deliveries(resources, alert_id))[AlertChannel.EMAIL]
    assert report.failed == 1
    assert "STARTTLS" in (row.error or "")
    assert not mail.messages


@pytest.mark.parametrize("kind", list(AlertKind))
def test_every_kind_has_a_title(kind: AlertKind) -> None:
    message = AlertMessage(
        alert_id=1,
        event_key="k",
        kind=kind,
        conversation_id=3,
        customer="+97••••••••67",
        channel="wazzup",
        excerpt=None,
        link="https://bot.example.test/admin/conversation/details/3",
        created_at=utcnow(),
    )
    assert message.text().splitlines()[0].endswith("conversation #3")
