"""Property-based proof that no input makes the HTTP API fail: schemathesis generates valid and invalid requests
from the OpenAPI schema and sends them over real HTTP to the real app (database and Redis included).

Every check schemathesis has runs (no 5xx, responses match the documented schemas and status codes, invalid
input is rejected, auth is enforced...). `/readyz` is left out: it answers 503 by design while no worker runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from arq.connections import ArqRedis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.app import create_app
from salesbot.models import Author, DeliveryStatus, SalesStage
from salesbot.settings import Settings
from tests.api.conftest import API_TOKEN
from tests.live import LiveStack
from tests.reporting.factories import add_message, make_chat, make_product, make_quote


@pytest.fixture
async def seeded(sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis) -> None:
    """A few rows with small ids, so generated ids sometimes hit real conversations, products and quotes."""
    async with sessionmaker() as session:
        for index in range(3):
            chat = await make_chat(session, stage=list(SalesStage)[index])
            await add_message(session, chat, "hello")
            await add_message(session, chat, "hi", author=Author.BOT, status=DeliveryStatus.DELIVERED, latency_ms=10)
            await make_quote(session, chat)
            await make_product(session, f"SKU-{index}")
        await session.commit()


@pytest.fixture
def live_api(api_settings: Settings, seeded: None) -> Iterator[LiveStack]:
    stack = LiveStack(api_settings, with_worker=False).start()
    yield stack
    stack.stop()


# The schema the app serves at /openapi.json, built at collection time (schemathesis' fixture-based loader does
# not work with pytest 9); requests go to the live server.
def served_schema() -> dict[str, Any]:
    return create_app(Settings()).openapi()


# The token goes through schemathesis' auth support, so its "missing/invalid credentials" cases stay negative.
schema = schemathesis.openapi.from_dict(
    served_schema(), config=SchemathesisConfig.from_dict({"auth": {"openapi": {"ApiToken": {"bearer": API_TOKEN}}}})
).exclude(path="/readyz")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail(case: Case, live_api: LiveStack) -> None:
    if case.operation.label == "PATCH /api/v1/conversations/{conversation_id}":
        # A schema-valid stage can still be an invalid move from the conversation's current stage: the contract
        # makes that a 422 (the FSM lives in code, not in the schema), so "valid data is accepted" cannot hold here.
        case.call_and_validate(base_url=live_api.url, excluded_checks=[positive_data_acceptance])
    elif case.operation.path.startswith("/api/v1/"):
        case.call_and_validate(base_url=live_api.url)
    else:
        # Webhooks read raw provider requests (signatures, form or JSON they parse themselves), so their schemas
        # do not describe the bodies: for them the property is the one this test is about, no server error.
        case.call_and_validate(base_url=live_api.url, checks=[not_a_server_error])
