"""The providers of one process, built once from settings around the shared HTTP client and Redis pool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from salesbot.messaging.base import MessagingProvider
from salesbot.messaging.console import ConsoleProvider
from salesbot.messaging.meta import MetaProvider
from salesbot.messaging.twilio import TwilioProvider
from salesbot.messaging.wazzup import WazzupProvider
from salesbot.models import Channel
from salesbot.resources import Resources


@dataclass(frozen=True)
class Providers:
    by_channel: Mapping[Channel, MessagingProvider]

    def get(self, channel: Channel) -> MessagingProvider:
        return self.by_channel[channel]

    @property
    def meta(self) -> MetaProvider:
        """The Meta adapter itself (its GET verification handshake is not part of the common protocol)."""
        provider = self.by_channel[Channel.META]
        assert isinstance(provider, MetaProvider)
        return provider


def build_providers(resources: Resources) -> Providers:
    """Every channel's adapter; unconfigured ones reject webhooks and raise `ProviderNotConfiguredError` on send."""
    settings = resources.settings
    return Providers(
        by_channel={
            Channel.WAZZUP: WazzupProvider(settings.wazzup, resources.http),
            Channel.TWILIO: TwilioProvider(settings.twilio, resources.http, public_base_url=settings.public_base_url),
            Channel.META: MetaProvider(settings.meta, resources.http, resources.redis),
            Channel.CONSOLE: ConsoleProvider(resources.redis, enabled=settings.console_provider_enabled),
        }
    )
