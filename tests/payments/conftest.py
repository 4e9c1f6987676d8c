"""Payments against the recording fake of Stripe's API, served over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from arq.connections import ArqRedis
from pydantic import SecretStr
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.agent.playbook import load_playbook
from salesbot.app import create_app
from salesbot.models import Channel, Conversation, Customer, Product, SalesStage
from salesbot.sales import quotes as quote_service
from salesbot.settings import Settings, StripeSettings
from tests.conftest import make_settings
from tests.fakes.pipeline import pipeline
from tests.fakes.stripe_api import FakeStripe, serve_stripe

__all__ = ["pipeline"]

WEBHOOK_SECRET = "whsec_suite_3f9a1c7e5b2d4f60"
API_TOKEN = "suite-api-token-7d1e4c9b2a"


@pytest.fixture
async def stripe() -> AsyncIterator[FakeStripe]:
    async with serve_stripe(FakeStripe()) as fake:
        yield fake


@pytest.fixture
def settings(database_url: str, redis_server: object, stripe: FakeStripe) -> Settings:
    """The suite's settings with Stripe configured against the fake (overrides the root fixture)."""
    return make_settings(
        database_url,
        redis_server.url,  # type: ignore[attr-defined]
        stripe=StripeSettings(
            api_url=stripe.url, api_key=SecretStr(stripe.api_key), webhook_secret=SecretStr(WEBHOOK_SECRET)
        ),
    )


@pytest.fixture
async def client(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its real lifespan; tables are truncated afterwards."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield http


PRODUCTS = (
    ("CH-100", "Ergonomic chair", Decimal("249.99"), "USD"),
    ("DK-200", "Standing desk", Decimal("649.00"), "USD"),
    ("JP-300", "Tatami mat", Decimal("1234"), "JPY"),
    ("KW-400", "Office lamp", Decimal("12.35"), "KWD"),
)


@dataclass(frozen=True)
class Quoted:
    conversation_id: int
    customer_id: int
    quote_id: int


async def quoted_conversation(
    sessionmaker: async_sessionmaker[AsyncSession],
    lines: Sequence[tuple[str, int]],
    *,
    discount: str = "0",
    stage: SalesStage = SalesStage.QUOTING,
    language: str = "en",
    chat_id: str = "+15550100777",
) -> Quoted:
    """A customer in `stage` with a quote priced by the quote service from the catalog (committed)."""
    async with sessionmaker() as session:
        await session.execute(
            insert(Product)
            .values([{"sku": s, "name": n, "price": p, "currency": c, "stock": 100} for s, n, p, c in PRODUCTS])
            .on_conflict_do_nothing(index_elements=[Product.sku])
        )
        customer = Customer(channel=Channel.CONSOLE, chat_id=chat_id, name="Dana Buyer", company="Acme")
        session.add(customer)
        await session.flush()
        conversation = Conversation(
            customer_id=customer.id, channel=Channel.CONSOLE, sales_stage=stage, language=language
        )
        session.add(conversation)
        await session.flush()
        quote, _ = await quote_service.create_quote(
            session,
            load_playbook(),
            conversation.id,
            [quote_service.LineRequest(sku, qty) for sku, qty in lines],
            Decimal(discount),
        )
        await session.commit()
        return Quoted(conversation.id, customer.id, quote.id)
