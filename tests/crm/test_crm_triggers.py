"""What asks for a CRM sync: company details and quotes through the agent's tools, then the job after the turn."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from arq.worker import Worker
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot import queues
from salesbot.agent.eval.runner import ChatDriver
from salesbot.agent.service import SalesAgentService
from salesbot.crm import service as crm_service
from salesbot.crm.tasks import schedule_crm_sync
from salesbot.models import CrmLink, CrmObject, CrmSyncState, Product, SalesStage
from salesbot.resources import Resources
from salesbot.settings import CrmSettings, Settings
from salesbot.worker import MESSAGING_FUNCTIONS
from tests.agent.scripted import Script, call
from tests.crm.conftest import ResourcesFor, hubspot_settings
from tests.fakes.crm_api import FakeHubSpot
from tests.payments.conftest import quoted_conversation

NOW = datetime.now(UTC)


def with_hubspot(settings: Settings) -> Settings:
    crm = CrmSettings(hubspot_token=SecretStr("pat-na1-suite-unused"))
    return settings.model_copy(update={"crm": crm})


async def pending(session: AsyncSession) -> dict[CrmObject, tuple[int, int | None]]:
    rows = (await session.scalars(select(CrmLink).where(CrmLink.state == CrmSyncState.PENDING))).all()
    return {row.object_type: (row.conversation_id, row.quote_id) for row in rows}


async def test_company_details_and_a_quote_mark_the_contact_and_deal_for_the_crm(
    db_session: AsyncSession, settings: Settings
) -> None:
    script = Script(
        [
            [call("save_customer_details", name="Dana Buyer", company="Acme")],
            "Thank you, Dana.",
            [call("create_quote", items=[{"sku": "CH-100", "qty": 2}])],
            "Here is your quote.",
        ]
    )
    driver = ChatDriver(db_session, SalesAgentService(model=script.model, clock=lambda: NOW), with_hubspot(settings))
    conversation = await driver.start()
    db_session.add(Product(sku="CH-100", name="Ergonomic chair", price=Decimal("249.99"), currency="USD", stock=9))
    conversation.sales_stage = SalesStage.QUOTING
    await db_session.flush()

    await driver.say("I'm Dana Buyer from Acme")
    assert await pending(db_session) == {
        CrmObject.CONTACT: (0, None),
        CrmObject.DEAL: (conversation.id, None),
    }
    await driver.say("Please send the quote for 2 chairs")
    after = await pending(db_session)
    assert after[CrmObject.DEAL][0] == conversation.id
    assert after[CrmObject.DEAL][1] is not None  # the new quote


async def test_without_a_crm_nothing_is_recorded(db_session: AsyncSession, settings: Settings) -> None:
    script = Script([[call("save_customer_details", name="Dana Buyer", company="Acme")], "Thank you, Dana."])
    driver = ChatDriver(db_session, SalesAgentService(model=script.model, clock=lambda: NOW), settings)
    await driver.start()
    await driver.say("I'm Dana Buyer from Acme")
    assert (await db_session.scalars(select(CrmLink))).all() == []


async def test_after_the_commit_the_worker_pushes_them(
    resources_for: ResourcesFor, settings: Settings, hubspot: FakeHubSpot
) -> None:
    configured = hubspot_settings(settings, hubspot)
    async with resources_for(configured) as resources:
        quoted = await quoted_conversation(resources.sessionmaker, [("DK-200", 1)])
        async with resources.sessionmaker() as session:
            await crm_service.request_sync(
                session,
                configured,
                customer_id=quoted.customer_id,
                conversation_id=quoted.conversation_id,
                now=NOW,
                quote_id=quoted.quote_id,
            )
            await session.commit()

        await schedule_crm_sync(resources, quoted.conversation_id)
        await run_jobs(resources)
        async with resources.sessionmaker() as session:
            states = set((await session.scalars(select(CrmLink.state))).all())
    assert states == {CrmSyncState.SYNCED}
    assert len(hubspot.contacts) == 1
    [deal] = hubspot.deals.values()
    assert deal["amount"] == "649.00"


async def run_jobs(resources: Resources) -> None:
    """The production worker's functions, in process, in burst mode, with these resources."""

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["resources"] = resources

    worker = Worker(
        functions=MESSAGING_FUNCTIONS,
        queue_name=queues.MESSAGING,
        on_startup=startup,
        redis_pool=resources.redis,
        burst=True,
        poll_delay=0.01,
        handle_signals=False,
        keep_result=0,
    )
    await worker.main()
    worker._pool = None  # type: ignore[assignment]  # the pool is the test's
