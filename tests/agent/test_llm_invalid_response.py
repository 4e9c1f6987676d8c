"""An LLM that answers 200 with something that is not a chat completion (a gateway's error page, an error object)
counts as failed: the chain moves on to the next model and the turn records who really answered.

Found by the system suite's LLM outage scenario (tests/system/test_llm_outage.py): the malformed answer ended the
run with the playbook's canned "safe answer", recorded as written by the primary model.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from pydantic_ai import models
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.eval.runner import ChatDriver
from salesbot.agent.service import SalesAgentService
from salesbot.settings import Settings
from tests.fakes.llm import DEFAULT_REPLY, FakeLLM


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    # Requests go to the local stand-in server only; the suite otherwise forbids real model requests.
    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", True)
    with FakeLLM().in_thread() as server:
        yield server


def with_llms(settings: Settings, llm: FakeLLM, *names: str) -> Settings:
    configured = settings.llm.model_copy(
        update={
            "model": names[0],
            "fallback_models": list(names[1:]),
            "base_url": llm.base_url,
            "api_key": SecretStr("sk-test-not-a-real-key"),
            "request_timeout_seconds": 5.0,
        }
    )
    return settings.model_copy(update={"llm": configured})


@pytest.mark.parametrize(("backup", "answered_by"), [("ok", "backup-llm"), ("500", "offline")])
async def test_a_malformed_completion_falls_back_to_the_next_model(
    catalog_session: AsyncSession, settings: Settings, llm: FakeLLM, backup: str, answered_by: str
) -> None:
    llm.behaviours.update({"primary-llm": "garbage", "backup-llm": backup})
    driver = ChatDriver(catalog_session, SalesAgentService(), with_llms(settings, llm, "primary-llm", "backup-llm"))

    reply = await driver.say("Hello, do you have ergonomic office chairs?")

    assert (reply.model, reply.fallback_used, reply.handoff) == (answered_by, True, False)
    if answered_by == "backup-llm":
        assert reply.text == DEFAULT_REPLY
    assert [call.model for call in llm.calls] == ["primary-llm", "backup-llm"]
