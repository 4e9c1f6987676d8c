"""Exactly once past a provider's duplicate window: a send that may have been accepted is resent only while the
provider still refuses a repeat, looked up where the provider can, reconciled by its echo, and otherwise held for a
manager. The fake Wazzup forgets a `crmMessageId` after 60 s like the real API; its clock is moved by hand."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import update

from salesbot.models import Author, DeliveryStatus, Direction, Message
from salesbot.models._columns import utcnow
from salesbot.outbox import resend
from salesbot.outbox.service import UNCONFIRMED_PART, schedule_delivery
from tests.fakes.pipeline import TWILIO_SID, TWILIO_TOKEN, WAZZUP_CHANNEL, WAZZUP_KEY, Pipeline, wazzup_message
from tests.fakes.provider_api import FakeClock, FakeWazzupApi

CHAT = "79990001122"
TWILIO_CHAT = "whatsapp:+14155550123"
WINDOW = timedelta(seconds=60)
PARAGRAPHS = [f"Paragraph {n}. " + "More words follow here. " * 3 for n in range(3)]


# --- the rule ----------------------------------------------------------------------------------------------------


def test_rule_sends_a_row_no_attempt_may_have_delivered() -> None:
    assert resend.decide(None, utcnow(), duplicate_window=WINDOW, finds_sent=False) is resend.Resend.SEND


def test_rule_resends_only_inside_the_window_minus_the_margin() -> None:
    now = utcnow()
    inside = now - (WINDOW - resend.SAFETY_MARGIN) + timedelta(seconds=1)
    at_edge = now - (WINDOW - resend.SAFETY_MARGIN)
    assert resend.decide(inside, now, duplicate_window=WINDOW, finds_sent=False) is resend.Resend.RESEND_IN_WINDOW
    assert resend.decide(at_edge, now, duplicate_window=WINDOW, finds_sent=False) is resend.Resend.HOLD


def test_rule_holds_at_once_without_an_idempotency_key_and_looks_up_where_possible() -> None:
    now = utcnow()
    # Meta Cloud API: no key, no lookup.
    assert resend.decide(now, now, duplicate_window=timedelta(0), finds_sent=False) is resend.Resend.HOLD
    # Twilio: no key, but the message list can be searched.
    assert resend.decide(now, now, duplicate_window=timedelta(0), finds_sent=True) is resend.Resend.LOOK_UP


# --- the fake behaves like Wazzup ------------------------------------------------------------------------------------


def _wazzup_send(api: FakeWazzupApi, key: str) -> int:
    body = f'{{"channelId": "{WAZZUP_CHANNEL}", "chatType": "whatsapp", "chatId": "{CHAT}", "text": "hi", '
    body += f'"crmMessageId": "{key}"}}'
    status, _ = api.handle("POST", "/v3/message", {"authorization": f"Bearer {WAZZUP_KEY}"}, body.encode())
    return status


def test_fake_wazzup_refuses_a_repeated_key_for_60_seconds_then_sends_it_again() -> None:
    clock = FakeClock()
    api = FakeWazzupApi(WAZZUP_KEY, clock=clock)
    assert _wazzup_send(api, "reply:1:2:0") == 201
    clock.advance(59.9)
    assert _wazzup_send(api, "reply:1:2:0") == 400
    clock.advance(0.2)
    assert _wazzup_send(api, "reply:1:2:0") == 201
    assert (len(api.sent), api.repeats, api.duplicates) == (2, 1, 1)


# --- delivery ----------------------------------------------------------------------------------------------------


async def _reply_pending(pipeline: Pipeline, *, twilio: bool = False) -> int:
    from tests.outbox.test_delivery import reply_without_delivery

    return await reply_without_delivery(pipeline, twilio=twilio)


async def _rows(pipeline: Pipeline) -> list[Message]:
    return await pipeline.messages(direction=Direction.OUTBOUND)


async def _crashed_attempt(pipeline: Pipeline, row: Message, *, seconds_ago: float, **values: object) -> None:
    """What a worker killed during the HTTP call leaves: the attempt on record, started `seconds_ago`."""
    started = utcnow() - timedelta(seconds=seconds_ago)
    async with pipeline.resources.sessionmaker() as session:
        await session.execute(
            update(Message)
            .where(Message.id == row.id)
            .values(send_attempts=1, last_attempt_at=started, uncertain_since=started, **values)
        )
        await session.commit()


def _wazzup_accepts(pipeline: Pipeline, row: Message, *, key_suffix: str = "", **content: object) -> str:
    """The crashed attempt reached Wazzup: it took the message (its answer went nowhere)."""
    import json

    payload = {"channelId": WAZZUP_CHANNEL, "chatType": "whatsapp", "chatId": CHAT, **(content or {"text": row.text})}
    payload["crmMessageId"] = f"{row.idempotency_key}{key_suffix}"
    status, answer = pipeline.wazzup_api.handle(
        "POST", "/v3/message", {"authorization": f"Bearer {WAZZUP_KEY}"}, json.dumps(payload).encode()
    )
    assert status == 201
    return str(answer["messageId"])


async def test_answer_lost_then_retried_inside_the_window_is_refused_as_a_repeat(pipeline: Pipeline) -> None:
    pipeline.wazzup_api.lose_answers = 1
    await pipeline.wazzup_text(CHAT, "hello")
    await pipeline.worker.drain()

    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: hello"]
    assert (pipeline.wazzup_api.calls, pipeline.wazzup_api.repeats) == (2, 1)
    [row] = await _rows(pipeline)
    assert (row.delivery_status, row.send_attempts, row.uncertain_since) == (DeliveryStatus.SENT, 2, None)


async def test_crash_resent_inside_the_window_reaches_the_customer_once(pipeline: Pipeline) -> None:
    pipeline.wazzup_api.clock = clock = FakeClock()
    conversation_id = await _reply_pending(pipeline)
    [row] = await _rows(pipeline)
    _wazzup_accepts(pipeline, row)
    await _crashed_attempt(pipeline, row, seconds_ago=30)
    clock.advance(30)
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    assert len(pipeline.wazzup_api.sent) == 1
    assert pipeline.wazzup_api.repeats == 1
    [row] = await _rows(pipeline)
    assert row.delivery_status is DeliveryStatus.SENT


# A killed job re-runs 55 s after it started (default job timeout 45 s + arq's 10 s), the outbox sweep after 60 s,
# a transient-error backoff after up to 300 s: all past the usable part of Wazzup's 60 s window.
@pytest.mark.parametrize("seconds_ago", [55, 65, 300])
async def test_crash_past_the_window_is_held_for_a_manager_not_resent(pipeline: Pipeline, seconds_ago: int) -> None:
    """Fails on the old outbox: it resent with the same crmMessageId, which Wazzup sends again after 60 s."""
    pipeline.wazzup_api.clock = clock = FakeClock()
    conversation_id = await _reply_pending(pipeline)
    [row] = await _rows(pipeline)
    _wazzup_accepts(pipeline, row)
    await _crashed_attempt(pipeline, row, seconds_ago=seconds_ago)
    clock.advance(seconds_ago)
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()
    # The recovery sweep does not pick it up again either.
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    assert len(pipeline.wazzup_api.sent) == 1
    assert pipeline.wazzup_api.calls == 1
    [row] = await _rows(pipeline)
    assert row.delivery_status is DeliveryStatus.UNCONFIRMED
    assert row.error is not None
    assert row.error.startswith("unconfirmed")
    [conversation] = await pipeline.conversations()
    assert conversation.needs_attention is True


@pytest.mark.parametrize("pipeline_overrides", [{"wazzup": {"max_text_length": 120}}])
async def test_held_part_reconciled_by_its_echo_lets_the_rest_of_the_reply_follow(pipeline: Pipeline) -> None:
    pipeline.generator.reply = lambda request: "\n\n".join(PARAGRAPHS)
    conversation_id = await _reply_pending(pipeline)
    first, *rest = await _rows(pipeline)
    assert rest
    provider_id = _wazzup_accepts(pipeline, first)
    await _crashed_attempt(pipeline, first, seconds_ago=120)
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()
    rows = await _rows(pipeline)
    assert [r.delivery_status for r in rows] == [DeliveryStatus.UNCONFIRMED] + [DeliveryStatus.CANCELLED] * len(rest)
    assert {r.error for r in rows[1:]} == {UNCONFIRMED_PART}

    # Wazzup reports the send after all (the echo of an API send carries the message id it created).
    echo = wazzup_message(CHAT, first.text, message_id=provider_id, isEcho=True, status="sent")
    assert (await pipeline.wazzup({"messages": [echo]})).status_code == 200
    await pipeline.worker.drain()

    rows = await _rows(pipeline)
    assert [(r.author, r.delivery_status) for r in rows] == [(Author.BOT, DeliveryStatus.SENT)] * len(rows)
    assert rows[0].provider_message_id == provider_id
    assert [s.text for s in pipeline.wazzup_api.sent] == [r.text for r in rows]
    [conversation] = await pipeline.conversations()
    assert conversation.owner.value == "bot"


async def test_echo_of_the_bots_text_after_its_id_was_recorded_is_a_manager(pipeline: Pipeline) -> None:
    """Fails on the old inbox: any echo with the text of a bot message of the last 10 minutes was swallowed."""
    await pipeline.wazzup_text(CHAT, "how much is the laptop?")
    await pipeline.worker.drain()
    [bot_row] = await _rows(pipeline)
    assert bot_row.provider_message_id is not None
    # A manager copies the bot's quote and sends it again from the Wazzup inbox.
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    echo = wazzup_message(CHAT, bot_row.text, isEcho=True, status="sent", authorName="Anna", dateTime=now)
    assert (await pipeline.wazzup({"messages": [echo]})).status_code == 200
    await pipeline.worker.drain()
    await pipeline.wazzup_text(CHAT, "and with delivery?")
    await pipeline.worker.drain()

    [conversation] = await pipeline.conversations()
    assert conversation.owner.value == "human"
    rows = await _rows(pipeline)
    assert [(r.author, r.text) for r in rows] == [(Author.BOT, bot_row.text), (Author.MANAGER, bot_row.text)]
    assert len(pipeline.wazzup_api.sent) == 1


@pytest.mark.parametrize(
    "pipeline_overrides", [{"wazzup": {"transport": "wapi", "window_template_id": "0a1b2c3d-template"}}]
)
async def test_echo_of_the_window_template_is_recognised_as_the_bots(pipeline: Pipeline) -> None:
    """Fails on the old inbox: the marker was keyed on the reply text, the echo shows the template."""
    conversation_id = await _reply_pending(pipeline)
    [row] = await _rows(pipeline)
    # The window closed: the deliverer sent the template instead; the answer has not arrived when the echo does.
    provider_id = _wazzup_accepts(pipeline, row, key_suffix=":template", templateId="0a1b2c3d-template")
    await _crashed_attempt(pipeline, row, seconds_ago=1, content_type="template")
    echo = wazzup_message(
        CHAT, "Hello! Reply to continue.", message_id=provider_id, isEcho=True, status="sent", type="wapi_template"
    )
    assert (await pipeline.wazzup({"messages": [echo]})).status_code == 200
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    [conversation] = await pipeline.conversations()
    assert conversation.owner.value == "bot"
    [row] = await _rows(pipeline)
    assert (row.provider_message_id, row.delivery_status) == (provider_id, DeliveryStatus.SENT)
    assert len(pipeline.wazzup_api.sent) == 1


def _basic() -> str:
    return "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()


@pytest.mark.parametrize("pipeline_overrides", [{"twilio": {"window_template_sid": "HX0123456789abcdef"}}])
async def test_twilio_template_send_interrupted_by_a_crash_is_reconciled_by_the_template(pipeline: Pipeline) -> None:
    """Fails on the old outbox: it looked for the reply text, Twilio lists the template's text, so it sent again."""
    conversation_id = await _reply_pending(pipeline, twilio=True)
    [row] = await _rows(pipeline)
    pipeline.twilio_api.handle(
        "POST",
        f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json",
        {"authorization": _basic()},
        urlencode({"To": TWILIO_CHAT, "From": "whatsapp:+14155238886", "ContentSid": "HX0123456789abcdef"}).encode(),
    )
    await _crashed_attempt(pipeline, row, seconds_ago=5, content_type="template")
    async with pipeline.resources.sessionmaker() as session:
        await session.execute(
            update(Message)
            .where(Message.direction == Direction.INBOUND)
            .values(created_at=datetime.now(UTC) - timedelta(hours=30))
        )
        await session.commit()
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    assert pipeline.twilio_api.posts == 1
    [row] = await _rows(pipeline)
    assert (row.delivery_status, row.provider_message_id) == (
        DeliveryStatus.SENT,
        pipeline.twilio_api.sent[0].provider_message_id,
    )


async def test_echo_matches_only_a_send_attempted_minutes_ago(pipeline: Pipeline) -> None:
    conversation_id = await _reply_pending(pipeline)
    [row] = await _rows(pipeline)
    # Sent long ago, confirmed only by Wazzup's "repeated crmMessageId" answer: its id never became known.
    await _crashed_attempt(pipeline, row, seconds_ago=11 * 60, delivery_status=DeliveryStatus.SENT)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    echo = wazzup_message(CHAT, row.text, isEcho=True, status="sent", authorName="Anna", dateTime=now)
    assert (await pipeline.wazzup({"messages": [echo]})).status_code == 200
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    [conversation] = await pipeline.conversations()
    assert conversation.owner.value == "human"
    assert [r.author for r in await _rows(pipeline)] == [Author.BOT, Author.MANAGER]
