"""A quote the agent creates above ALERT_QUOTE_ABOVE records one alert, in the turn's transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.eval.runner import ChatDriver
from salesbot.agent.service import SalesAgentService
from salesbot.models import Alert, AlertKind, Quote
from salesbot.settings import AlertSettings, Settings

WALK = [
    ("advance_stage", {"to_stage": "qualifying", "reason": "go"}),
    ("advance_stage", {"to_stage": "needs_analysis", "reason": "wants printers"}),
    ("get_product", {"sku": "HP-LJM211DW"}),
    ("advance_stage", {"to_stage": "solution", "reason": "go"}),
    (
        "advance_stage",
        {"to_stage": "company_details", "reason": "go", "selected_items": [{"sku": "HP-LJM211DW", "qty": 4}]},
    ),
    ("save_customer_details", {"name": "Maria", "company": "Acme"}),
    ("advance_stage", {"to_stage": "quoting", "reason": "go"}),
]


class QuotingModel:
    def __init__(self) -> None:
        self.step = 0

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.step += 1
        plays: list[list[tuple[str, dict[str, Any]]]] = [
            WALK,
            [("create_quote", {"items": [{"sku": "HP-LJM211DW", "qty": 4}]})],
        ]
        if self.step <= len(plays):
            return ModelResponse(parts=[ToolCallPart(tool, args) for tool, args in plays[self.step - 1]])
        return ModelResponse(parts=[TextPart("Here is your quote.")])


async def quote_with_threshold(session: AsyncSession, settings: Settings, threshold: str | None) -> list[Alert]:
    configured = settings.model_copy(
        update={
            "alerts": AlertSettings(alert_quote_above=Decimal(threshold) if threshold else None),
            "llm": settings.llm.model_copy(update={"max_requests_per_turn": 12}),
        }
    )
    model = FunctionModel(QuotingModel(), model_name="quoting")
    driver = ChatDriver(session, SalesAgentService(model=model, clock=lambda: datetime.now(UTC)), configured)
    conversation = await driver.start()
    await driver.say("4 HP LaserJet M211dw please, quote them")
    quote = await session.scalar(select(Quote).where(Quote.conversation_id == conversation.id))
    assert quote is not None
    return list(await session.scalars(select(Alert).where(Alert.conversation_id == conversation.id)))


async def test_a_quote_above_the_threshold_alerts_the_team(catalog_session: AsyncSession, settings: Settings) -> None:
    [alert] = await quote_with_threshold(catalog_session, settings, "100")
    assert alert.kind is AlertKind.QUOTE_ABOVE_THRESHOLD
    assert alert.event_key.startswith("quote:")
    assert alert.excerpt is not None
    assert alert.excerpt.startswith("Quote #")


async def test_a_quote_below_the_threshold_or_without_one_does_not(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    assert await quote_with_threshold(catalog_session, settings, "1000000") == []
