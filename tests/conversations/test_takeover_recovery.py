"""A manager's takeover outlives the loss of its job: the turn applies echoes no job has applied yet.

Found by the system suite (tests/system/test_redis_restart.py): the inbox stores a Wazzup manager echo and enqueues
`apply_takeover`; when Redis loses that job, the customer's next message got a bot reply although a human had
taken the chat.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from salesbot.models import Author, Direction, Owner
from tests.fakes.pipeline import Pipeline, wazzup_message

CHAT = "79990003344"


def echo(text: str, *, sent_at: datetime) -> dict[str, object]:
    stamp = sent_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message = wazzup_message(CHAT, text, isEcho=True, status="sent", authorName="Anna", dateTime=stamp)
    return {"messages": [message]}


async def test_takeover_whose_job_was_lost_still_silences_the_bot(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "Hello")
    await pipeline.worker.drain()
    assert len(pipeline.wazzup_api.sent) == 1

    await pipeline.wazzup(echo("Anna here, I'll take it from here", sent_at=datetime.now(UTC)))
    await pipeline.redis.flushdb()  # the apply_takeover job is gone, as after a Redis restart without persistence
    await pipeline.wazzup_text(CHAT, "Great, 40 chairs please")
    await pipeline.worker.drain()

    assert len(pipeline.wazzup_api.sent) == 1, "the bot answered a chat a manager had taken over"
    assert len(pipeline.generator.calls) == 1
    [conversation] = await pipeline.conversations()
    assert conversation.owner is Owner.HUMAN
    assert conversation.owner_until is not None
    assert conversation.owner_until > datetime.now(UTC) + timedelta(hours=11)
    [manager] = [m for m in await pipeline.messages(direction=Direction.OUTBOUND) if m.author is Author.MANAGER]
    assert manager.processed_at is not None  # applied: a later hand-back is not undone by it


async def test_an_applied_echo_does_not_take_the_chat_back_after_a_hand_back(pipeline: Pipeline) -> None:
    from salesbot.conversations import service

    await pipeline.wazzup(echo("Manager here", sent_at=datetime.now(UTC)))
    await pipeline.worker.drain()
    [conversation] = await pipeline.conversations()
    assert conversation.owner is Owner.HUMAN
    async with pipeline.resources.sessionmaker() as session:
        await service.hand_back(session, conversation.id)
        await session.commit()

    await pipeline.wazzup_text(CHAT, "Is the bot back?")
    await pipeline.worker.drain()

    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: Is the bot back?"]
    [conversation] = await pipeline.conversations()
    assert conversation.owner is Owner.BOT
