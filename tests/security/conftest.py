"""Fixtures of the security tests: the in-process pipeline, and the app with its real lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.app import create_app
from salesbot.settings import Settings
from tests.fakes.pipeline import pipeline, pipeline_overrides

__all__ = ["pipeline", "pipeline_overrides"]


@pytest.fixture
async def app_with_lifespan(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update={"console_enabled": False}))
    async with app.router.lifespan_context(app):
        yield app
