from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from salesbot.conversations.tasks import release_expired_takeovers
from salesbot.models import Channel, Conversation, Customer, Owner
from salesbot.models._columns import utcnow
from salesbot.resources import Resources
from salesbot.worker_context import WorkerContext


async def test_expired_takeovers_return_to_the_bot(resources: Resources) -> None:
    now = utcnow()
    async with resources.sessionmaker() as session:
        expired = Conversation(
            customer=Customer(channel=Channel.CONSOLE, chat_id="100"),
            channel=Channel.CONSOLE,
            owner=Owner.HUMAN,
            owner_until=now - timedelta(minutes=1),
        )
        current = Conversation(
            customer=Customer(channel=Channel.CONSOLE, chat_id="200"),
            channel=Channel.CONSOLE,
            owner=Owner.HUMAN,
            owner_until=now + timedelta(hours=1),
        )
        session.add_all([expired, current])
        await session.commit()

    ctx: WorkerContext = {"resources": resources}
    assert await release_expired_takeovers(ctx) == 1

    async with resources.sessionmaker() as session:
        owners = {row.id: row.owner for row in await session.execute(select(Conversation.id, Conversation.owner))}
    assert owners == {expired.id: Owner.BOT, current.id: Owner.HUMAN}
