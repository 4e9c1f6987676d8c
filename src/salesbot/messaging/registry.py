"""The providers of one process, built once from settings around the shared HTTP client and Redis pool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from salesbot.messaging.base import MessagingProvider
from salesbot.messaging.console import ConsoleProvider
from salesbot.messaging.twilio import TwilioProvider
from salesbot.messaging.wazzup import WazzupProvider
from salesbot.models import Channel
from salesbot.resources import Resources


@dataclass(frozen=True)
class Providers:
    by_channel: Mapping[Channel, MessagingProvider]

    def get(self, channel: Channel) -> MessagingProvider:
        return self.by_channel[channel]


def build_providers(resources: Resources) -> Providers:
    """Every channel's adapter; unconfigured ones reject webhooks and raise `ProviderNotConfiguredError` on send."""
    settings = resources.settings
    return Providers(
        by_channel={
            Channel.WAZZUP: WazzupProvider(settings.wazzup, resources.http),
            Channel.TWILIO: TwilioProvider(settings.twilio, resources.http, public_base_url=settings.public_base_url),
            Channel.CONSOLE: ConsoleProvider(resources.redis, enabled=settings.console_provider_enabled),
        }
    )
