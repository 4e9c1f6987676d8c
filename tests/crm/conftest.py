"""CRM sync against recording fakes of HubSpot and Zoho CRM served over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from arq.connections import ArqRedis
from pydantic import SecretStr

from salesbot.resources import Resources, open_resources
from salesbot.settings import CrmSettings, Settings
from tests.fakes.crm_api import FakeHubSpot, FakeZoho, serve_crm


@pytest.fixture
async def hubspot() -> AsyncIterator[FakeHubSpot]:
    async with serve_crm(FakeHubSpot()) as fake:
        yield fake


@pytest.fixture
async def zoho() -> AsyncIterator[FakeZoho]:
    async with serve_crm(FakeZoho()) as fake:
        yield fake


def hubspot_settings(settings: Settings, fake: FakeHubSpot) -> Settings:
    crm = CrmSettings(hubspot_api_url=fake.url, hubspot_token=SecretStr(fake.token))
    return settings.model_copy(update={"crm": crm})


def zoho_settings(settings: Settings, fake: FakeZoho) -> Settings:
    crm = CrmSettings(
        zoho_accounts_url=fake.url,
        zoho_api_domain=fake.url,
        zoho_client_id=fake.client_id,
        zoho_client_secret=SecretStr(fake.client_secret),
        zoho_refresh_token=SecretStr(fake.refresh_token),
    )
    return settings.model_copy(update={"crm": crm})


ResourcesFor = Callable[[Settings], AbstractAsyncContextManager[Resources]]


@pytest.fixture
def resources_for(redis: ArqRedis, clean_db: None) -> ResourcesFor:
    """Process resources for settings of the test's choosing (database truncated afterwards)."""

    @asynccontextmanager
    async def opened(settings: Settings) -> AsyncIterator[Resources]:
        async with open_resources(settings, redis=redis) as resources:
            yield resources

    return opened
