"""Webhook to reply, end to end: real app, PostgreSQL, Redis and arq worker; provider HTTP and agent faked."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from salesbot.agent.reply import AgentReply, ReplyRequest
from salesbot.conversations import service, tasks
from salesbot.conversations.tasks import sweep_stalled_turns
from salesbot.models import Author, Conversation, DeliveryStatus, Direction, Message, Owner
from salesbot.models._columns import utcnow
from salesbot.worker_context import WorkerContext
from tests.fakes.pipeline import Pipeline, twilio_params, wazzup_message

CHAT = "79990001122"
TWILIO_CHAT = "whatsapp:+14155550123"


async def outbound(pipeline: Pipeline) -> list[tuple[Author, str, DeliveryStatus | None]]:
    return [(m.author, m.text, m.delivery_status) for m in await pipeline.messages(direction=Direction.OUTBOUND)]


@pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
async def test_wazzup_message_delivered_three_times_gets_one_reply(pipeline: Pipeline, concurrent: bool) -> None:
    body = json.dumps({"messages": [wazzup_message(CHAT, "Do you have red chairs?")]}).encode()
    if concurrent:
        await asyncio.gather(*(pipeline.wazzup(body) for _ in range(3)))
    else:
        for _ in range(3):
            await pipeline.wazzup(body)
    await pipeline.worker.drain()
    # ... and a redelivery after the reply went out changes nothing either.
    await pipeline.wazzup(body)
    await pipeline.worker.drain()

    assert len(await pipeline.messages(direction=Direction.INBOUND)) == 1
    assert [call.texts for call in pipeline.generator.calls] == [("Do you have red chairs?",)]
    assert [(s.chat_id, s.text) for s in pipeline.wazzup_api.sent] == [(CHAT, "Answer to: Do you have red chairs?")]
    [reply] = await pipeline.messages(direction=Direction.OUTBOUND)
    assert reply.delivery_status is DeliveryStatus.SENT
    assert reply.provider_message_id == pipeline.wazzup_api.sent[0].provider_message_id
    # crmMessageId is the row's deterministic idempotency key.
    assert pipeline.wazzup_api.sent[0].key == reply.idempotency_key
    inbound = (await pipeline.messages(direction=Direction.INBOUND))[0]
    assert reply.idempotency_key == f"reply:{reply.conversation_id}:{inbound.id}:0"
    assert inbound.processed_at is not None


@pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
async def test_twilio_message_delivered_three_times_gets_one_reply(pipeline: Pipeline, concurrent: bool) -> None:
    params = twilio_params(TWILIO_CHAT, "Price of the oak table?")
    if concurrent:
        await asyncio.gather(*(pipeline.twilio(params) for _ in range(3)))
    else:
        for _ in range(3):
            await pipeline.twilio(params)
    await pipeline.worker.drain()

    assert len(await pipeline.messages(direction=Direction.INBOUND)) == 1
    assert len(pipeline.generator.calls) == 1
    assert [(s.chat_id, s.text) for s in pipeline.twilio_api.sent] == [
        (TWILIO_CHAT, "Answer to: Price of the oak table?")
    ]


@pytest.mark.parametrize(
    "pipeline_overrides", [{"conversation": {"debounce_seconds": 1.6, "debounce_max_seconds": 10}}]
)
async def test_four_messages_one_second_apart_get_one_agent_run(pipeline: Pipeline) -> None:
    await pipeline.worker.start()
    texts = ["Hi", "I need chairs", "for an office", "about 40 of them"]
    for index, text in enumerate(texts):
        if index:
            await asyncio.sleep(1.0)
        await pipeline.wazzup_text(CHAT, text)
    await pipeline.worker.idle()

    assert [call.texts for call in pipeline.generator.calls] == [tuple(texts)]
    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: " + " | ".join(texts)]


@pytest.mark.parametrize("pipeline_overrides", [{"conversation": {"debounce_seconds": 0.3, "debounce_max_seconds": 1}}])
async def test_debounce_cap_answers_a_customer_who_never_pauses(pipeline: Pipeline) -> None:
    await pipeline.worker.start()
    for index in range(8):
        await pipeline.wazzup_text(CHAT, f"part {index}")
        await asyncio.sleep(0.2)
    await pipeline.worker.idle()

    # The window never closed (0.2 s gaps < 0.3 s), so only the cap produced answers; every message is answered
    # exactly once, in order, and no two agent runs overlapped. Agent runs are not answers: a draft overtaken by a
    # newer message is discarded and regenerated with the whole burst, so a message may reach two runs on a busy
    # machine, but only one reply that went out.
    replies = [s.text.removeprefix("Answer to: ").split(" | ") for s in pipeline.wazzup_api.sent]
    answered = [text for reply in replies for text in reply]
    assert answered == [f"part {index}" for index in range(8)]
    assert 1 < len(replies) < 8
    assert pipeline.generator.max_running == 1
    rows = await pipeline.messages(direction=Direction.OUTBOUND)
    assert [row.text for row in rows] == [s.text for s in pipeline.wazzup_api.sent]


async def test_message_during_generation_is_answered_by_a_regenerated_reply(pipeline: Pipeline) -> None:
    await pipeline.worker.start()
    pipeline.generator.hold()
    await pipeline.wazzup_text(CHAT, "Do you deliver?")
    await asyncio.wait_for(pipeline.generator.entered.wait(), 10)

    await pipeline.wazzup_text(CHAT, "To Kazan, I mean")
    await asyncio.sleep(0.5)  # longer than the debounce window: a second turn would start now if it could
    pipeline.generator.release()
    await pipeline.worker.idle()

    calls = [call.texts for call in pipeline.generator.calls]
    assert calls == [("Do you deliver?",), ("Do you deliver?", "To Kazan, I mean")]
    assert pipeline.generator.max_running == 1
    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: Do you deliver? | To Kazan, I mean"]
    assert all(m.processed_at is not None for m in await pipeline.messages(direction=Direction.INBOUND))


@pytest.mark.parametrize("pipeline_overrides", [{"conversation": {"turn_max_regenerations": 0}}])
async def test_without_regeneration_the_newer_message_gets_its_own_later_turn(pipeline: Pipeline) -> None:
    await pipeline.worker.start()
    pipeline.generator.hold()
    await pipeline.wazzup_text(CHAT, "first")
    await asyncio.wait_for(pipeline.generator.entered.wait(), 10)
    await pipeline.wazzup_text(CHAT, "second")
    await asyncio.sleep(0.5)
    pipeline.generator.release()
    await pipeline.worker.idle()

    assert [call.texts for call in pipeline.generator.calls] == [("first",), ("second",)]
    assert pipeline.generator.max_running == 1
    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: first", "Answer to: second"]


async def test_different_chats_are_answered_in_parallel(pipeline: Pipeline) -> None:
    await pipeline.worker.start()
    pipeline.generator.hold()
    await pipeline.wazzup_text("79990000001", "hello from one")
    await pipeline.twilio(twilio_params(TWILIO_CHAT, "hello from two"))
    async with asyncio.timeout(10):
        while pipeline.generator.running < 2:
            await asyncio.sleep(0.02)
    pipeline.generator.release()
    await pipeline.worker.idle()

    assert pipeline.generator.max_running == 2
    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: hello from one"]
    assert [s.text for s in pipeline.twilio_api.sent] == ["Answer to: hello from two"]


async def test_unknown_message_type_is_answered(pipeline: Pipeline) -> None:
    await pipeline.wazzup({"messages": [wazzup_message(CHAT, "", type="sticker_3d_hologram")]})
    await pipeline.worker.drain()
    assert [call.content_types for call in pipeline.generator.calls] == [("sticker_3d_hologram",)]
    assert len(pipeline.wazzup_api.sent) == 1


async def test_failing_agent_is_retried_and_the_customer_answered_once(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "TURN_RETRY_BASE_SECONDS", 0.05)  # the retry, not its 2 s of waiting
    pipeline.generator.fail_times = 1
    await pipeline.wazzup_text(CHAT, "hello?")
    worker = await pipeline.worker.drain()

    # The failed attempt rolled back completely (nothing half-written) and arq retried the same turn.
    assert worker.jobs_retried >= 1
    assert len(pipeline.generator.calls) == 2
    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: hello?"]
    assert len(await pipeline.messages(direction=Direction.OUTBOUND)) == 1


async def test_messages_lost_by_redis_are_recovered_by_the_sweep(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "anyone there?")
    await pipeline.redis.flushdb()  # the scheduled turn and the burst state are gone
    async with pipeline.resources.sessionmaker() as session:
        # Make the message older than the debounce cap plus the sweep's grace.
        await session.execute(update(Message).values(created_at=utcnow() - timedelta(minutes=5)))
        await session.commit()

    ctx: WorkerContext = {"resources": pipeline.resources}
    assert await sweep_stalled_turns(ctx) == 1
    await pipeline.worker.drain()

    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: anyone there?"]
    assert await sweep_stalled_turns(ctx) == 0


# --- human takeover ---------------------------------------------------------------------------------------------


def manager_echo(text: str, **extra: Any) -> dict[str, object]:
    return {
        "messages": [
            wazzup_message(
                CHAT, text, isEcho=True, status="sent", authorName="Анна", authorId="crm-17", sentFromApp=True, **extra
            )
        ]
    }


async def test_manager_echo_silences_the_bot_until_handed_back(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "Hello")
    await pipeline.worker.drain()
    assert len(pipeline.wazzup_api.sent) == 1

    await pipeline.wazzup(manager_echo("Hi, Anna here, I'll take it from here"))
    await pipeline.wazzup_text(CHAT, "Great, Anna: 40 chairs please")
    await pipeline.worker.drain()

    [conversation] = await pipeline.conversations()
    assert conversation.owner is Owner.HUMAN
    assert conversation.owner_until is not None
    assert conversation.owner_until > utcnow() + timedelta(hours=11)
    assert len(pipeline.generator.calls) == 1  # no agent run for the message during the takeover
    assert len(pipeline.wazzup_api.sent) == 1
    authors = [(m.author, m.text) for m in await pipeline.messages(direction=Direction.OUTBOUND)]
    assert (Author.MANAGER, "Hi, Anna here, I'll take it from here") in authors

    async with pipeline.resources.sessionmaker() as session:
        await service.hand_back(session, conversation.id)
        await session.commit()
    await pipeline.wazzup_text(CHAT, "Anna left?")
    await pipeline.worker.drain()
    assert [call.texts for call in pipeline.generator.calls][-1] == ("Anna left?",)
    assert len(pipeline.wazzup_api.sent) == 2


@pytest.mark.parametrize(
    "provider_clock",
    [timedelta(days=-3), timedelta(hours=-13), timedelta(days=2)],
    ids=["days-old", "past-hours", "future"],
)
async def test_takeover_runs_from_receipt_whatever_the_provider_timestamp(
    pipeline: Pipeline, provider_clock: timedelta
) -> None:
    # A delayed redelivery carries an old `dateTime`, a provider clock can run ahead: neither may cancel or
    # lengthen the takeover, which runs HUMAN_TAKEOVER_HOURS from when salesbot received the echo.
    stamp = (utcnow() + provider_clock).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    received = utcnow()
    await pipeline.wazzup(manager_echo("Anna here, I'll take it from here", dateTime=stamp))
    await pipeline.wazzup_text(CHAT, "Thanks Anna, 40 chairs please")
    await pipeline.worker.drain()

    [conversation] = await pipeline.conversations()
    hours = timedelta(hours=pipeline.resources.settings.conversation.human_takeover_hours)
    assert conversation.owner is Owner.HUMAN
    assert conversation.owner_until is not None
    assert received + hours - timedelta(minutes=1) <= conversation.owner_until <= utcnow() + hours
    assert pipeline.generator.calls == []
    assert pipeline.wazzup_api.sent == []


async def test_expired_takeover_lets_the_bot_answer_again(pipeline: Pipeline) -> None:
    await pipeline.wazzup(manager_echo("Manager here"))
    await pipeline.worker.drain()
    [conversation] = await pipeline.conversations()
    assert conversation.owner is Owner.HUMAN
    async with pipeline.resources.sessionmaker() as session:
        await session.execute(
            update(Conversation)
            .values(owner_until=utcnow() - timedelta(minutes=1))
            .where(Conversation.id == conversation.id)
        )
        await session.commit()

    await pipeline.wazzup_text(CHAT, "Hello again")
    await pipeline.worker.drain()

    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: Hello again"]
    [conversation] = await pipeline.conversations()
    assert conversation.owner is Owner.BOT


async def test_manager_echo_during_generation_withdraws_the_bot_reply(pipeline: Pipeline) -> None:
    await pipeline.worker.start()
    pipeline.generator.hold()
    await pipeline.wazzup_text(CHAT, "Can I get a discount?")
    await asyncio.wait_for(pipeline.generator.entered.wait(), 10)
    echo = manager_echo("Let me check that for you personally")
    echo["messages"][0]["dateTime"] = utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z")  # type: ignore[index]
    await pipeline.wazzup(echo)
    await asyncio.sleep(0.2)
    pipeline.generator.release()
    await pipeline.worker.idle()

    assert pipeline.wazzup_api.sent == []
    # The takeover did not wait for the generation; the draft was withdrawn before it reached the outbox.
    rows = await outbound(pipeline)
    assert [row for row in rows if row[0] is Author.BOT] == []


async def test_bot_echo_is_not_mistaken_for_a_manager(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "Hello")
    await pipeline.worker.drain()
    [sent] = pipeline.wazzup_api.sent
    # Wazzup echoes the API's own message back (recorded id) ...
    await pipeline.wazzup(
        {
            "messages": [
                wazzup_message(CHAT, sent.text or "", message_id=sent.provider_message_id, isEcho=True, status="sent")
            ]
        }
    )
    await pipeline.worker.drain()
    [conversation] = await pipeline.conversations()
    assert conversation.owner is Owner.BOT
    assert [m.author for m in await pipeline.messages(direction=Direction.OUTBOUND)] == [Author.BOT]


async def test_handoff_reply_is_delivered_although_a_human_owns_the_chat(pipeline: Pipeline) -> None:
    async def handing_off(request: ReplyRequest) -> AgentReply:
        await service.take_over(request.session, request.conversation.id, hours=12)
        return AgentReply(text="A manager will continue this chat shortly.", model="test-double", handoff=True)

    pipeline.worker.generator = handing_off
    await pipeline.wazzup_text(CHAT, "I want to talk to a person")
    await pipeline.worker.drain()

    assert [s.text for s in pipeline.wazzup_api.sent] == ["A manager will continue this chat shortly."]
    assert await outbound(pipeline) == [
        (Author.SYSTEM, "A manager will continue this chat shortly.", DeliveryStatus.SENT)
    ]


# --- consent ----------------------------------------------------------------------------------------------------


async def test_stop_confirms_once_then_silence_and_start_resumes(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "stop ")
    await pipeline.worker.drain()
    await pipeline.wazzup_text(CHAT, "STOP")
    await pipeline.wazzup_text(CHAT, "are you still there?")
    await pipeline.worker.drain()

    assert pipeline.generator.calls == []
    [confirmation] = pipeline.wazzup_api.sent
    assert confirmation.text is not None
    assert "unsubscribed" in confirmation.text
    [customer] = await pipeline.customers()
    assert customer.opted_out_at is not None

    await pipeline.wazzup_text(CHAT, "Start")
    await pipeline.worker.drain()
    await pipeline.wazzup_text(CHAT, "What about tables?")
    await pipeline.worker.drain()

    texts = [s.text for s in pipeline.wazzup_api.sent]
    assert len(texts) == 3
    assert texts[1] is not None
    assert "subscribed again" in texts[1]
    assert texts[2] == "Answer to: What about tables?"
    assert [call.texts for call in pipeline.generator.calls] == [("What about tables?",)]


async def test_opt_out_in_russian_is_confirmed_in_russian(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "Отписаться")
    await pipeline.worker.drain()
    [confirmation] = pipeline.wazzup_api.sent
    assert confirmation.text is not None
    assert "отписались" in confirmation.text


async def test_stop_inside_a_sentence_is_ordinary_text(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "Please stop sending me the wrong catalog")
    await pipeline.worker.drain()
    assert [call.texts for call in pipeline.generator.calls] == [("Please stop sending me the wrong catalog",)]
    [customer] = await pipeline.customers()
    assert customer.opted_out_at is None


async def test_opted_out_customer_gets_no_queued_bot_reply(pipeline: Pipeline) -> None:
    await pipeline.worker.start()
    pipeline.generator.hold()
    await pipeline.wazzup_text(CHAT, "price?")
    await asyncio.wait_for(pipeline.generator.entered.wait(), 10)
    # STOP arrives while the reply to "price?" is being generated: the turn regenerates with both and ends opted out.
    await pipeline.wazzup_text(CHAT, "STOP")
    pipeline.generator.release()
    await pipeline.worker.idle()

    texts = [s.text or "" for s in pipeline.wazzup_api.sent]
    assert len(texts) == 1
    assert "unsubscribed" in texts[0]
