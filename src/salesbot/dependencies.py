"""FastAPI dependencies shared by the routers (`Annotated` aliases)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.resources import Resources
from salesbot.settings import Settings


# Dependencies are `async def` even when they do no I/O: FastAPI runs plain `def` ones in a thread pool,
# which costs a thread hop per dependency on every request.
async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_settings_dep(resources: ResourcesDep) -> Settings:
    return resources.settings


async def get_redis(resources: ResourcesDep) -> ArqRedis:
    return resources.redis


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed after the handler returns, rolled back on any error."""
    async with resources.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[ArqRedis, Depends(get_redis)]
# scope="function": the session commits when the handler returns, before the response is sent, so a failed commit
# is the client's error response and BackgroundTasks (run after the response) only ever see committed data:
# they are the place to enqueue jobs. FastAPI's default ("request") would commit after the response went out.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
