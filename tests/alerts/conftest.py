"""Alert fixtures: a conversation to alert about, and resources whose alert channels point at local fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from arq.connections import ArqRedis

from salesbot.db import unit_of_work
from salesbot.devstack import EmbeddedRedis
from salesbot.models import Channel, Conversation, Customer
from salesbot.resources import Resources, open_resources
from salesbot.settings import AlertSettings
from tests.conftest import make_settings
from tests.fakes.pipeline import pipeline, pipeline_overrides

__all__ = ["pipeline", "pipeline_overrides"]

CUSTOMER_CHAT_ID = "971501234567"

AlertResources = Callable[..., AbstractAsyncContextManager[Resources]]


@pytest.fixture
def alert_resources(database_url: str, redis_server: EmbeddedRedis, redis: ArqRedis, clean_db: None) -> AlertResources:
    """`async with alert_resources(telegram_bot_token=..., ...) as resources`: the alert settings given."""

    @asynccontextmanager
    async def opened(**alerts: Any) -> AsyncIterator[Resources]:
        settings = make_settings(
            database_url, redis_server.url, alerts=AlertSettings(**alerts), worker_job_timeout_seconds=20
        )
        async with open_resources(settings, redis=redis) as resources:
            yield resources

    return opened


async def make_conversation(resources: Resources, *, name: str | None = "Maria +971 50 765 4321") -> int:
    async with unit_of_work(resources.sessionmaker) as session:
        customer = Customer(channel=Channel.WAZZUP, chat_id=CUSTOMER_CHAT_ID, name=name)
        session.add(customer)
        await session.flush()
        conversation = Conversation(customer_id=customer.id, channel=Channel.WAZZUP)
        session.add(conversation)
        await session.flush()
        return conversation.id
