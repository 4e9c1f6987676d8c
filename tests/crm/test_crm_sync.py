"""Contacts and deals upserted in HubSpot and Zoho CRM by the sync job: idempotent by stored ids, retried, visible."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from salesbot.crm import service
from salesbot.crm.tasks import crm_provider, sync_crm
from salesbot.models import Conversation, CrmLink, CrmObject, CrmSyncState, Customer, SalesStage
from salesbot.models._columns import utcnow
from salesbot.resources import Resources
from salesbot.settings import Settings
from tests.crm.conftest import ResourcesFor, hubspot_settings, zoho_settings
from tests.fakes.crm_api import FakeHubSpot, FakeZoho
from tests.payments.conftest import Quoted, quoted_conversation

PHONE = "+15550100777"


async def customer_with_quote(resources: Resources, **kw: Any) -> Quoted:
    """Dana Buyer of Acme (e-mail given), 10 chairs at 10 % off: 2249.91 USD."""
    quoted = await quoted_conversation(resources.sessionmaker, [("CH-100", 10)], discount="10", chat_id=PHONE, **kw)
    async with resources.sessionmaker() as session:
        customer = await session.get_one(Customer, quoted.customer_id)
        customer.email = "dana@acme.example"
        await session.commit()
    return quoted


async def request(resources: Resources, quoted: Quoted, **kw: Any) -> None:
    async with resources.sessionmaker() as session:
        assert await service.request_sync(
            session,
            resources.settings,
            customer_id=quoted.customer_id,
            conversation_id=quoted.conversation_id,
            now=utcnow(),
            **kw,
        )
        await session.commit()


async def run_sync(resources: Resources, quoted: Quoted) -> str:
    async with resources.sessionmaker() as session:
        provider = crm_provider(resources)
        assert provider is not None
        outcome = await service.sync_conversation(
            session, resources.settings, provider, quoted.conversation_id, now=utcnow()
        )
        await session.commit()
    return outcome.result


async def links(resources: Resources) -> dict[CrmObject, CrmLink]:
    async with resources.sessionmaker() as session:
        rows = (await session.scalars(select(CrmLink))).all()
    return {row.object_type: row for row in rows}


async def test_hubspot_gets_the_contact_and_an_associated_deal_then_updates_them_by_id(
    resources_for: ResourcesFor, settings: Settings, hubspot: FakeHubSpot
) -> None:
    async with resources_for(hubspot_settings(settings, hubspot)) as resources:
        quoted = await customer_with_quote(resources)
        await request(resources, quoted, quote_id=quoted.quote_id)
        assert await run_sync(resources, quoted) == "synced"

        [(contact_id, contact)] = hubspot.contacts.items()
        assert contact == {
            "firstname": "Dana",
            "lastname": "Buyer",
            "company": "Acme",
            "email": "dana@acme.example",
            "phone": PHONE,
        }
        [(deal_id, deal)] = hubspot.deals.items()
        assert deal["dealname"] == f"Acme - WhatsApp #{quoted.conversation_id}"
        assert (deal["amount"], deal["deal_currency_code"]) == ("2249.91", "USD")
        assert (deal["dealstage"], deal["pipeline"]) == ("contractsent", "default")
        assert "CH-100 Ergonomic chair x 10" in deal["description"]
        assert hubspot.associations[deal_id] == [contact_id]
        stored = await links(resources)
        assert stored[CrmObject.CONTACT].external_id == contact_id
        assert stored[CrmObject.DEAL].external_id == deal_id
        assert {link.state for link in stored.values()} == {CrmSyncState.SYNCED}

        # The customer pays: the same deal is won, nothing is created twice.
        async with resources.sessionmaker() as session:
            conversation = await session.get_one(Conversation, quoted.conversation_id)
            conversation.sales_stage = SalesStage.CLOSING
            await session.commit()
        await request(resources, quoted)
        assert await run_sync(resources, quoted) == "synced"
        assert len(hubspot.contacts) == len(hubspot.deals) == 1
        assert hubspot.deals[deal_id]["dealstage"] == "contractsent"
        patches = [r.path for r in hubspot.requests if r.method == "PATCH"]
        assert patches == [f"/crm/v3/objects/contacts/{contact_id}", f"/crm/v3/objects/deals/{deal_id}"]
        # A sync with nothing pending sends nothing.
        before = len(hubspot.requests)
        assert await run_sync(resources, quoted) == "skipped"
        assert len(hubspot.requests) == before


async def test_hubspot_contact_that_already_exists_by_email_is_adopted(
    resources_for: ResourcesFor, settings: Settings, hubspot: FakeHubSpot
) -> None:
    hubspot.contacts["42"] = {"email": "dana@acme.example", "firstname": "D."}
    async with resources_for(hubspot_settings(settings, hubspot)) as resources:
        quoted = await customer_with_quote(resources)
        await request(resources, quoted)
        assert await run_sync(resources, quoted) == "synced"
    assert list(hubspot.contacts) == ["42"]
    assert hubspot.contacts["42"]["firstname"] == "Dana"
    [deal_id] = hubspot.deals
    assert hubspot.associations[deal_id] == ["42"]


async def test_transient_failures_back_off_and_refusals_are_kept_for_the_admin(
    resources_for: ResourcesFor, settings: Settings, hubspot: FakeHubSpot
) -> None:
    async with resources_for(hubspot_settings(settings, hubspot)) as resources:
        quoted = await customer_with_quote(resources)
        await request(resources, quoted)
        hubspot.fail_next.append((503, {"status": "error", "message": "Service unavailable", "category": "ERROR"}))

        assert await run_sync(resources, quoted) == "retry"
        stored = await links(resources)
        contact = stored[CrmObject.CONTACT]
        assert (contact.state, contact.attempts) == (CrmSyncState.PENDING, 1)
        assert "503" in (contact.last_error or "")
        assert contact.next_attempt_at is not None
        assert contact.next_attempt_at > utcnow()
        # Not due yet: the job sends nothing.
        calls = len(hubspot.requests)
        assert await run_sync(resources, quoted) == "waiting"
        assert len(hubspot.requests) == calls

        async with resources.sessionmaker() as session:
            await session.execute(update(CrmLink).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
            await session.commit()
        assert await run_sync(resources, quoted) == "synced"
        assert (await links(resources))[CrmObject.CONTACT].last_error is None

    # A token HubSpot refuses: failed at once, with HubSpot's answer, no retries.
    wrong = hubspot_settings(settings, hubspot)
    wrong = wrong.model_copy(
        update={"crm": wrong.crm.model_copy(update={"hubspot_token": SecretStr("pat-na1-revoked")})}
    )
    async with resources_for(wrong) as resources:
        await request(resources, quoted)
        assert await run_sync(resources, quoted) == "failed"
        stored = await links(resources)
        assert stored[CrmObject.CONTACT].state is CrmSyncState.FAILED
        assert "INVALID_AUTHENTICATION" in (stored[CrmObject.CONTACT].last_error or "")


async def test_zoho_token_is_refreshed_once_shared_and_renewed_after_a_401(
    resources_for: ResourcesFor, settings: Settings, zoho: FakeZoho
) -> None:
    async with resources_for(zoho_settings(settings, zoho)) as resources:
        quoted = await customer_with_quote(resources)
        await request(resources, quoted, quote_id=quoted.quote_id)
        assert await run_sync(resources, quoted) == "synced"

        [(contact_id, contact)] = zoho.contacts.items()
        assert contact["Last_Name"] == "Buyer"
        assert contact["First_Name"] == "Dana"
        assert contact["Email"] == "dana@acme.example"
        assert contact["Mobile"] == PHONE
        upsert = next(r for r in zoho.requests if r.path == "/crm/v5/Contacts/upsert")
        assert upsert.body["duplicate_check_fields"] == ["Email"]
        [(deal_id, deal)] = zoho.deals.items()
        assert deal["Contact_Name"] == {"id": contact_id}
        assert (deal["Stage"], deal["Amount"]) == ("Proposal/Price Quote", 2249.91)
        assert "2249.91 USD" in deal["Description"]
        assert zoho.refreshes == 1

        # Another sync (any worker: the token is in Redis) reuses the token.
        await request(resources, quoted)
        assert await run_sync(resources, quoted) == "synced"
        assert zoho.refreshes == 1
        # Zoho revoked it early: one refresh, and the same records are updated.
        zoho.expire_tokens()
        await request(resources, quoted)
        assert await run_sync(resources, quoted) == "synced"
        assert zoho.refreshes == 2
        assert list(zoho.contacts) == [contact_id]
        assert list(zoho.deals) == [deal_id]
        puts = [r.body["data"][0]["id"] for r in zoho.requests if r.method == "PUT"]
        # The first PUT after the revocation got the 401 and was sent again with the new token.
        assert puts == [contact_id, deal_id, contact_id, contact_id, deal_id]


async def test_zoho_refusals_name_the_field(resources_for: ResourcesFor, settings: Settings, zoho: FakeZoho) -> None:
    configured = zoho_settings(settings, zoho)
    async with resources_for(configured) as resources:
        quoted = await customer_with_quote(resources)
        await request(resources, quoted)
        zoho.fail_next.append(
            (
                400,
                {
                    "data": [
                        {
                            "code": "MANDATORY_NOT_FOUND",
                            "details": {"api_name": "Last_Name"},
                            "message": "required field not found",
                            "status": "error",
                        }
                    ]
                },
            )
        )
        assert await run_sync(resources, quoted) == "failed"
        stored = await links(resources)
        assert "MANDATORY_NOT_FOUND" in (stored[CrmObject.CONTACT].last_error or "")
        assert "(Last_Name)" in (stored[CrmObject.CONTACT].last_error or "")
        assert stored[CrmObject.DEAL].state is CrmSyncState.FAILED


async def test_the_phone_goes_to_the_crm_but_never_into_a_log_line(
    resources_for: ResourcesFor, settings: Settings, hubspot: FakeHubSpot, caplog: pytest.LogCaptureFixture
) -> None:
    async with resources_for(hubspot_settings(settings, hubspot)) as resources:
        quoted = await customer_with_quote(resources)
        await request(resources, quoted)
        hubspot.fail_next.append((502, {"status": "error", "message": f"bad gateway for {PHONE}", "category": "X"}))
        with caplog.at_level(logging.DEBUG):
            assert await run_sync(resources, quoted) == "retry"
            async with resources.sessionmaker() as session:
                await session.execute(update(CrmLink).values(next_attempt_at=utcnow()))
                await session.commit()
            assert await run_sync(resources, quoted) == "synced"
    assert next(iter(hubspot.contacts.values()))["phone"] == PHONE
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "crm.synced" in logged
    assert "5550100777" not in logged


async def test_the_job_syncs_and_reschedules_itself_after_a_transient_failure(
    resources_for: ResourcesFor, settings: Settings, hubspot: FakeHubSpot
) -> None:
    from arq import Retry

    async with resources_for(hubspot_settings(settings, hubspot)) as resources:
        quoted = await customer_with_quote(resources)
        await request(resources, quoted)
        hubspot.fail_next.append((429, {"status": "error", "message": "rate limited", "category": "RATE_LIMITS"}))
        ctx: Any = {"resources": resources, "job_try": 1}
        with pytest.raises(Retry) as retry:
            await sync_crm(ctx, quoted.conversation_id)
        assert retry.value.defer_score == 30_000
        async with resources.sessionmaker() as session:
            await session.execute(update(CrmLink).values(next_attempt_at=utcnow()))
            await session.commit()
        assert await sync_crm(ctx, quoted.conversation_id) == "synced"
    assert Decimal(next(iter(hubspot.deals.values()))["amount"]) == Decimal("2249.91")


async def test_a_refresh_token_zoho_refuses_fails_the_sync_with_zohos_answer(
    resources_for: ResourcesFor, settings: Settings, zoho: FakeZoho
) -> None:
    configured = zoho_settings(settings, zoho)
    revoked = configured.model_copy(
        update={"crm": configured.crm.model_copy(update={"zoho_refresh_token": SecretStr("1000.revoked.token")})}
    )
    async with resources_for(revoked) as resources:
        quoted = await customer_with_quote(resources)
        await request(resources, quoted)
        assert await run_sync(resources, quoted) == "failed"
        assert "invalid_code" in ((await links(resources))[CrmObject.CONTACT].last_error or "")
    assert zoho.contacts == {}
