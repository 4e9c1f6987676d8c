"""LLM failures are counted per model, fleet-wide (in Redis), when the fallback chain moves on."""

from __future__ import annotations

import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.eval.runner import ChatDriver
from salesbot.agent.service import SalesAgentService
from salesbot.kit import metrics as fleet
from salesbot.settings import Settings
from tests.agent.test_llm_http import FakeLLM, allow_http_models, llm_server, llm_settings

__all__ = ["allow_http_models", "llm_server"]


@pytest.mark.usefixtures("allow_http_models")
async def test_each_failing_llm_is_counted_under_its_model_name(
    catalog_session: AsyncSession, settings: Settings, llm_server: tuple[FakeLLM, str], redis: ArqRedis
) -> None:
    llm, base_url = llm_server
    llm.behaviours.update({"primary-llm": "500", "backup-llm": "sales"})
    driver = ChatDriver(
        catalog_session, SalesAgentService(), llm_settings(settings, base_url, "primary-llm", "backup-llm")
    )

    with fleet.bound(redis):
        reply = await driver.say("Hello, how much is the HP-LJP4003DN?")

    assert reply.model == "backup-llm"
    recorded = (await fleet.snapshot(redis)).counters["salesbot_llm_failures"]
    assert recorded == {("primary-llm",): 1}
