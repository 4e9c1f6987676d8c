"""Payment and CRM settings: flat environment names, one CRM at a time, no payment links without the webhook."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from salesbot.settings import Settings
from tests.test_settings import PRODUCTION_OK, STRONG


def test_flat_names_fill_the_stripe_and_crm_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_API_URL", "http://127.0.0.1:12111")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_51suite")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_suite")
    monkeypatch.setenv("HUBSPOT_API_URL", "http://127.0.0.1:12112")
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-na1-suite")
    settings = Settings()
    assert settings.stripe.api_url == "http://127.0.0.1:12111"
    assert settings.stripe.enabled
    assert settings.stripe.webhook_tolerance_seconds == 300
    assert (settings.crm.provider, settings.crm.hubspot_api_url) == ("hubspot", "http://127.0.0.1:12112")


def test_zoho_needs_its_client_and_only_one_crm_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOHO_REFRESH_TOKEN", "1000.refresh")
    with pytest.raises(ValidationError, match="ZOHO_REFRESH_TOKEN needs ZOHO_CLIENT_ID and ZOHO_CLIENT_SECRET"):
        Settings()
    monkeypatch.setenv("ZOHO_CLIENT_ID", "1000.CLIENT")
    monkeypatch.setenv("ZOHO_CLIENT_SECRET", "secret")
    monkeypatch.setenv("ZOHO_API_DOMAIN", "https://www.zohoapis.eu")
    settings = Settings()
    assert (settings.crm.provider, settings.crm.zoho_api_domain) == ("zoho", "https://www.zohoapis.eu")
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-na1-suite")
    with pytest.raises(ValidationError, match="configure one CRM"):
        Settings()


def test_production_refuses_payment_links_without_the_webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", STRONG)
    monkeypatch.setenv("SECRET_KEY", STRONG + "x")
    monkeypatch.setenv("ADMIN_PASSWORD", STRONG + "y")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_live_51suite")
    with pytest.raises(ValidationError, match="STRIPE_API_KEY needs STRIPE_WEBHOOK_SECRET"):
        Settings(**PRODUCTION_OK)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_suite_live")
    assert Settings(**PRODUCTION_OK).stripe.enabled
