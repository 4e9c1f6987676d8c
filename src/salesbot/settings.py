"""Application settings: one `Settings` object with nested groups, read from the environment and `.env`.

Variable names are flat (``WAZZUP_API_KEY``, ``DEBOUNCE_SECONDS``) because deployments and DESIGN.md use them;
each group is its own ``BaseSettings`` with an env prefix so the code reads ``settings.wazzup.api_key``.
"""

from __future__ import annotations

import os
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from salesbot.kit.phones import supported_region

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "password", "admin", "dev", "test"})
# The defaults below and the values `.env.example` ships (tests/test_settings.py keeps the two in sync).
SHIPPED_DEFAULTS = frozenset({"dev-api-token", "admin", "dev-secret-key-change-me"})


# SALESBOT_ENV_FILE="" disables the .env file (the test suite does, so a developer's keys never leak in).
ENV_FILE = os.environ.get("SALESBOT_ENV_FILE", ".env") or None


def _config(prefix: str = "") -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class WazzupSettings(BaseSettings):
    model_config = _config("WAZZUP_")

    api_url: str = "https://api.wazzup24.com/v3"
    api_key: SecretStr = SecretStr("")
    channel_id: str = ""
    webhook_secret: SecretStr = SecretStr("")
    # "whatsapp" (personal, no 24 h rule) or "wapi" (WhatsApp Business API, 24 h customer-service window).
    transport: str = "whatsapp"
    max_text_length: int = Field(default=4000, ge=100, le=10000)
    # WABA template (templateGuid) sent when the 24 h window of a `wapi` channel is closed; empty = mark the
    # reply failed and flag a manager.
    window_template_id: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.api_key.get_secret_value() and self.channel_id and self.webhook_secret.get_secret_value())


class TwilioSettings(BaseSettings):
    model_config = _config("TWILIO_")

    api_url: str = "https://api.twilio.com"
    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")
    whatsapp_from: str = ""
    # Content API template sent when the 24 h window is closed; empty = mark the reply failed and flag a manager.
    window_template_sid: str = ""
    max_text_length: int = Field(default=1500, ge=100, le=1600)

    @property
    def enabled(self) -> bool:
        return bool(self.account_sid and self.auth_token.get_secret_value() and self.whatsapp_from)


class MetaSettings(BaseSettings):
    """Meta WhatsApp Cloud API (Graph API) for one business phone number."""

    model_config = _config("META_")

    api_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    # A permanent System User token with whatsapp_business_messaging permission.
    access_token: SecretStr = SecretStr("")
    phone_number_id: str = ""
    # The app secret signs every webhook (X-Hub-Signature-256); the verify token answers Meta's GET handshake.
    app_secret: SecretStr = SecretStr("")
    verify_token: SecretStr = SecretStr("")
    # Approved template sent when the 24 h window is closed, as "name" or "name:language" (default language
    # en_US); empty = mark the reply failed and flag a manager.
    window_template: str = ""
    max_text_length: int = Field(default=4096, ge=100, le=4096)
    # Sends per second from the number, across all workers. Meta's default throughput is 80 messages/s and counts
    # inbound messages too; numbers shared with the WhatsApp Business app (coexistence) have 20.
    max_sends_per_second: float = Field(default=60.0, gt=0, le=1000)
    # Meta's pair rate limit: about one message per 6 s to the same customer, bursts borrowing from later.
    pair_interval_seconds: float = Field(default=6.0, ge=0, le=60)
    pair_burst: int = Field(default=30, ge=1, le=45)

    @property
    def enabled(self) -> bool:
        return bool(
            self.access_token.get_secret_value() and self.phone_number_id and self.app_secret.get_secret_value()
        )

    @property
    def template_name_and_language(self) -> tuple[str, str] | None:
        name, _, language = self.window_template.strip().partition(":")
        return (name.strip(), language.strip() or "en_US") if name.strip() else None


class LLMSettings(BaseSettings):
    model_config = _config("LLM_")

    model: str = "offline"
    base_url: str = ""
    api_key: SecretStr = SecretStr("")
    fallback_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    request_timeout_seconds: float = Field(default=12.0, gt=0)
    max_requests_per_turn: int = Field(default=6, ge=1, le=50)

    _split = field_validator("fallback_models", mode="before")(_split_csv)


class MediaSettings(BaseSettings):
    """Files customers send (voice notes, photos, documents): what the worker downloads and keeps."""

    model_config = _config("MEDIA_")

    max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # MIME types kept; "type/*" matches a whole family.
    allowed_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["audio/*", "image/*", "application/pdf"]
    )
    # Downloads and transcription run inside the turn job: keep download + 2 x TRANSCRIBE_TIMEOUT_SECONDS + the
    # LLM's time under WORKER_JOB_TIMEOUT_SECONDS.
    download_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    _split = field_validator("allowed_types", mode="before")(_split_csv)


class TranscribeSettings(BaseSettings):
    """An OpenAI-compatible speech-to-text endpoint for voice notes (unset: customers are asked to type)."""

    model_config = _config("TRANSCRIBE_")

    # Ends in /v1 like LLM_BASE_URL; the request goes to {base_url}/audio/transcriptions.
    base_url: str = ""
    api_key: SecretStr = SecretStr("")
    model: str = "whisper-1"
    timeout_seconds: float = Field(default=12.0, gt=0, le=300)

    @property
    def configured(self) -> bool:
        return bool(self.base_url.strip())


class EmbeddingSettings(BaseSettings):
    model_config = _config("EMBEDDING_")

    # use-multilingual-v3 (default: installed with salesbot, no download), BAAI/bge-m3 or another fastembed model,
    # or offline (hashed n-grams, for tests).
    model: str = "use-multilingual-v3"
    model_path: str = ""
    # The offline embedder's dimension (the models bring their own); HNSW indexes up to 2000 dimensions.
    dim: int = Field(default=1024, ge=8, le=2000)
    batch_size: int = Field(default=32, ge=1, le=1024)
    cache_dir: str = ""
    # Threads of one embedding call (USE's BLAS, fastembed's onnxruntime). Their libraries' defaults, a thread per
    # core, keep the extra threads spinning between a serving process's occasional calls (bench/bench_embed_threads.py).
    threads: int = Field(default=1, ge=1, le=64)


class InventorySettings(BaseSettings):
    """Stock and price sync from an external system (`source`: "" = off, "file" or "zoho"), run by the worker."""

    model_config = _config("INVENTORY_")

    source: str = ""
    file_path: str = ""
    sync_minutes: int = Field(default=15, ge=1, le=1440)
    update_prices: bool = True
    zoho_accounts_url: str = "https://accounts.zoho.com"
    zoho_api_url: str = "https://www.zohoapis.com/inventory/v1"
    zoho_client_id: str = ""
    zoho_client_secret: SecretStr = SecretStr("")
    zoho_refresh_token: SecretStr = SecretStr("")
    zoho_organization_id: str = ""
    # Which Zoho quantity becomes the stock offered to customers: available_stock, actual_available_stock or
    # stock_on_hand.
    zoho_stock_field: str = "available_stock"

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("", "file", "zoho"):
            raise ValueError("INVENTORY_SOURCE must be empty, 'file' or 'zoho'")
        return value

    @property
    def enabled(self) -> bool:
        if self.source == "file":
            return bool(self.file_path)
        if self.source == "zoho":
            return bool(
                self.zoho_client_id
                and self.zoho_client_secret.get_secret_value()
                and self.zoho_refresh_token.get_secret_value()
                and self.zoho_organization_id
            )
        return False


class StripeSettings(BaseSettings):
    """Payment links: a Stripe Checkout Session per accepted quote, and the webhook that reports its payment."""

    model_config = _config("STRIPE_")

    api_url: str = "https://api.stripe.com"
    # A secret (sk_...) or restricted key allowed to write Checkout Sessions and coupons; empty = no payment links.
    api_key: SecretStr = SecretStr("")
    # The signing secret (whsec_...) of the `POST /webhooks/stripe` endpoint.
    webhook_secret: SecretStr = SecretStr("")
    # Signed events older (or newer) than this are refused, as Stripe's own libraries do.
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)

    @property
    def enabled(self) -> bool:
        return bool(self.api_key.get_secret_value())


class CrmSettings(BaseSettings):
    """The CRM that receives contacts and deals: HubSpot (private-app token) or Zoho CRM (OAuth refresh token)."""

    model_config = _config()

    hubspot_api_url: str = "https://api.hubapi.com"
    hubspot_token: SecretStr = SecretStr("")
    # The deal pipeline new deals go into ("default" is HubSpot's built-in sales pipeline).
    hubspot_pipeline: str = "default"
    zoho_accounts_url: str = "https://accounts.zoho.com"
    zoho_api_domain: str = "https://www.zohoapis.com"
    zoho_client_id: str = ""
    zoho_client_secret: SecretStr = SecretStr("")
    zoho_refresh_token: SecretStr = SecretStr("")

    @property
    def provider(self) -> str:
        """The configured CRM: "hubspot", "zoho" or "" (none)."""
        if self.hubspot_token.get_secret_value():
            return "hubspot"
        if self.zoho_client_id and self.zoho_refresh_token.get_secret_value():
            return "zoho"
        return ""

    @model_validator(mode="after")
    def _one_crm(self) -> Self:
        if self.hubspot_token.get_secret_value() and (
            self.zoho_client_id or self.zoho_refresh_token.get_secret_value()
        ):
            raise ValueError("HUBSPOT_TOKEN and ZOHO_* are both set: configure one CRM")
        if self.zoho_refresh_token.get_secret_value() and not (
            self.zoho_client_id and self.zoho_client_secret.get_secret_value()
        ):
            raise ValueError("ZOHO_REFRESH_TOKEN needs ZOHO_CLIENT_ID and ZOHO_CLIENT_SECRET")
        return self


class ConversationSettings(BaseSettings):
    model_config = _config()

    debounce_seconds: float = Field(default=3.0, ge=0, le=120)
    debounce_max_seconds: float = Field(default=15.0, ge=0, le=600)
    human_takeover_hours: float = Field(default=12.0, gt=0)
    opt_out_keywords: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["STOP", "UNSUBSCRIBE", "ОТПИСАТЬСЯ", "إلغاء"]
    )
    opt_in_keywords: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["START"])
    playbook_path: str = ""
    # How often a turn discards its draft and regenerates because newer customer messages arrived meanwhile.
    turn_max_regenerations: int = Field(default=2, ge=0, le=5)

    _split = field_validator("opt_out_keywords", "opt_in_keywords", mode="before")(_split_csv)

    @model_validator(mode="after")
    def _cap_not_below_window(self) -> Self:
        if self.debounce_max_seconds < self.debounce_seconds:
            raise ValueError("DEBOUNCE_MAX_SECONDS must be >= DEBOUNCE_SECONDS")
        return self


class OutboxSettings(BaseSettings):
    model_config = _config("OUTBOX_")

    # Minimum gap between two messages to the same recipient (parts of a long reply arrive in order).
    pacing_seconds: float = Field(default=1.0, ge=0, le=30)
    # Transient send failures back off exponentially from this base (with jitter) up to the maximum.
    retry_base_seconds: float = Field(default=2.0, gt=0, le=60)
    retry_max_seconds: float = Field(default=300.0, gt=0, le=3600)
    # Attempts per message before it is marked failed and shown to managers.
    max_send_attempts: int = Field(default=6, ge=1, le=20)


class AlertSettings(BaseSettings):
    """Where the team hears about handoffs, failed deliveries and big quotes (every configured channel is used)."""

    model_config = _config()

    telegram_api_url: str = "https://api.telegram.org"
    telegram_bot_token: SecretStr = SecretStr("")
    telegram_chat_id: str = ""
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = ""
    # Recipients, comma-separated.
    smtp_to: Annotated[list[str], NoDecode] = Field(default_factory=list)
    smtp_starttls: bool = True
    alert_webhook_url: str = ""
    # Signs each webhook body: X-Salesbot-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>.
    alert_webhook_secret: SecretStr = SecretStr("")
    # A quote whose total (in the quote's currency) is above this alerts the team; unset: never.
    alert_quote_above: Decimal | None = Field(default=None, gt=0)
    # Attempts per alert and channel; transient failures back off exponentially from the base up to the maximum.
    alert_max_attempts: int = Field(default=8, ge=1, le=30)
    alert_retry_base_seconds: float = Field(default=5.0, gt=0, le=600)
    alert_retry_max_seconds: float = Field(default=900.0, gt=0, le=86400)

    _split = field_validator("smtp_to", mode="before")(_split_csv)

    @field_validator("alert_quote_above", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def telegram_configured(self) -> bool:
        return bool(self.telegram_bot_token.get_secret_value() and self.telegram_chat_id)

    @property
    def email_configured(self) -> bool:
        return bool(self.smtp_host and self.smtp_from and self.smtp_to)

    @property
    def webhook_configured(self) -> bool:
        return bool(self.alert_webhook_url)


class AuthSettings(BaseSettings):
    model_config = _config()

    api_token: SecretStr = SecretStr("dev-api-token")
    # Only create the first admin account, while the users table is empty (salesbot.accounts).
    admin_username: str = "admin"
    admin_password: SecretStr = SecretStr("admin")
    secret_key: SecretStr = SecretStr("dev-secret-key-change-me")
    # A bearer token for Prometheus that opens /metrics only (API_TOKEN opens it too); empty: API_TOKEN only.
    metrics_token: SecretStr = SecretStr("")


class Settings(BaseSettings):
    """Everything configurable about salesbot. `.env.example` documents every variable."""

    model_config = _config()

    # Unset means development, but only while no provider credentials are configured: a deployment that can reach
    # real customers must say which mode it is in (see `_explicit_mode_with_provider_credentials`).
    salesbot_env: Environment | None = None
    salesbot_data_dir: Path = Path(".salesbot")
    database_url: str = ""
    redis_url: str = ""
    public_base_url: str = "http://localhost:8000"
    # The console provider backs the simulator and `salesbot chat`; off by default in production.
    console_enabled: bool | None = None
    log_level: str = "INFO"
    # ISO 3166 region of the business: national numbers ("050 123 4567") are read as this country's.
    phone_default_region: str = "AE"
    # arq's job timeout; a SIGKILLed worker's job is re-run after this + 10 s, so it bounds crash recovery.
    worker_job_timeout_seconds: float = Field(default=45.0, ge=1, le=600)
    # Conversation turns one worker process holds at once. A turn mostly waits on the LLM (I/O, not CPU), so one
    # process serves many: capacity is about this divided by the turn time (100 at 4 s a turn: 1,500 a minute).
    worker_max_jobs: int = Field(default=100, ge=1, le=1000)
    # Deliveries, takeovers and short cron jobs run in their own slots, never behind the turns' LLM calls.
    worker_messaging_max_jobs: int = Field(default=20, ge=1, le=1000)
    # On SIGTERM/SIGINT a worker stops taking jobs and lets running turns (and then deliveries) finish for up to
    # this long; a second signal, or 0, cancels them at once (they are re-run after a restart). A turn's budget fits.
    worker_shutdown_grace_seconds: float = Field(default=30.0, ge=0, le=600)
    # How long a signed document link (a quotation PDF sent to a customer) stays valid.
    document_link_days: float = Field(default=7.0, gt=0, le=365)
    # Photos of the products a reply names, sent after its text (0: none).
    max_product_images: int = Field(default=3, ge=0, le=10)
    # A turn's whole time (every model request, fallback and regeneration); then the offline responder answers or
    # the chat is handed to a manager. Below the job timeout so a turn ends before arq cancels it (when unset and
    # the job timeout is 50 s or less, half of it).
    turn_budget_seconds: float = Field(default=25.0, gt=0, le=600)
    # OTLP/HTTP collector base URL (e.g. http://otel-collector:4318): traces are exported when set, to its /v1/traces.
    otel_exporter_otlp_endpoint: str = ""

    wazzup: WazzupSettings = Field(default_factory=WazzupSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    meta: MetaSettings = Field(default_factory=MetaSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    transcribe: TranscribeSettings = Field(default_factory=TranscribeSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    inventory: InventorySettings = Field(default_factory=InventorySettings)
    conversation: ConversationSettings = Field(default_factory=ConversationSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    stripe: StripeSettings = Field(default_factory=StripeSettings)
    crm: CrmSettings = Field(default_factory=CrmSettings)

    @property
    def env(self) -> Environment:
        return self.salesbot_env or Environment.DEVELOPMENT

    @property
    def data_dir(self) -> Path:
        return self.salesbot_data_dir

    @property
    def console_provider_enabled(self) -> bool:
        if self.console_enabled is None:
            return self.env is not Environment.PRODUCTION
        return self.console_enabled

    @property
    def provider_credentials(self) -> list[str]:
        """The provider credentials that are set: with any of them, salesbot can write to real customers."""
        configured = {
            "WAZZUP_API_KEY": self.wazzup.api_key.get_secret_value(),
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token.get_secret_value(),
            "META_ACCESS_TOKEN": self.meta.access_token.get_secret_value(),
        }
        return [name for name, value in configured.items() if value]

    @model_validator(mode="after")
    def _explicit_mode_with_provider_credentials(self) -> Self:
        credentials = self.provider_credentials
        if not credentials:
            return self
        if self.salesbot_env is None:
            raise ValueError(
                f"{', '.join(credentials)} set but SALESBOT_ENV is not: set SALESBOT_ENV=development for a provider "
                "sandbox or local fakes, or SALESBOT_ENV=production for real customers"
            )
        placeholders = [name for name, secret in self._own_secrets().items() if _is_placeholder(secret)]
        if placeholders:
            raise ValueError(
                f"refusing to start with provider credentials ({', '.join(credentials)}) and placeholder "
                f"{', '.join(placeholders)}: set real values (any SALESBOT_ENV)"
            )
        return self

    def _own_secrets(self) -> dict[str, SecretStr]:
        return {
            "API_TOKEN": self.auth.api_token,
            "ADMIN_PASSWORD": self.auth.admin_password,
            "SECRET_KEY": self.auth.secret_key,
        }

    @field_validator("phone_default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        return supported_region(value)

    @model_validator(mode="after")
    def _turn_budget_below_job_timeout(self) -> Self:
        if self.turn_budget_seconds < self.worker_job_timeout_seconds:
            return self
        if "turn_budget_seconds" in self.model_fields_set:
            raise ValueError("TURN_BUDGET_SECONDS must be below WORKER_JOB_TIMEOUT_SECONDS")
        # The default (25 s) does not fit a short job timeout: leave the turn half of it for its answer.
        self.turn_budget_seconds = self.worker_job_timeout_seconds / 2
        return self

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Self:
        if self.salesbot_env is not Environment.PRODUCTION:
            return self
        problems: list[str] = []
        secrets = self._own_secrets()
        if self.wazzup.api_key.get_secret_value() or self.wazzup.webhook_secret.get_secret_value():
            secrets["WAZZUP_WEBHOOK_SECRET"] = self.wazzup.webhook_secret
        if self.twilio.account_sid:
            secrets["TWILIO_AUTH_TOKEN"] = self.twilio.auth_token
        if self.meta.access_token.get_secret_value() or self.meta.phone_number_id:
            secrets["META_APP_SECRET"] = self.meta.app_secret
            secrets["META_VERIFY_TOKEN"] = self.meta.verify_token
        if self.auth.metrics_token.get_secret_value():
            secrets["METRICS_TOKEN"] = self.auth.metrics_token
        for name, secret in secrets.items():
            value = secret.get_secret_value()
            if _is_placeholder(secret):
                problems.append(f"{name} is a placeholder")
            elif len(value) < 16 and name != "ADMIN_PASSWORD":
                problems.append(f"{name} is shorter than 16 characters")
        if len(self.auth.admin_password.get_secret_value()) < 12:
            problems.append("ADMIN_PASSWORD is shorter than 12 characters")
        if not self.database_url:
            problems.append("DATABASE_URL is required in production")
        if not self.redis_url:
            problems.append("REDIS_URL is required in production")
        if not self.conversation.playbook_path:
            problems.append("PLAYBOOK_PATH is required in production (the shipped playbook is a demo business)")
        if self.console_enabled:
            problems.append("CONSOLE_ENABLED must be off in production (the console webhook and simulator are open)")
        if self.stripe.enabled and not self.stripe.webhook_secret.get_secret_value():
            problems.append("STRIPE_API_KEY needs STRIPE_WEBHOOK_SECRET (without it no payment is ever recorded)")
        if self.llm.model.strip().lower() != "offline" and not (
            self.llm.base_url or self.llm.api_key.get_secret_value()
        ):
            problems.append(
                f"LLM_MODEL={self.llm.model} needs LLM_API_KEY or LLM_BASE_URL (or LLM_MODEL=offline): production "
                "does not switch to the offline responder silently"
            )
        if problems:
            raise ValueError("refusing to start with SALESBOT_ENV=production: " + "; ".join(problems))
        return self


def _is_placeholder(secret: SecretStr) -> bool:
    """The shipped example and default values, and the usual stand-ins, are not secrets."""
    value = secret.get_secret_value()
    return (
        value.lower() in PLACEHOLDER_SECRETS
        or value in SHIPPED_DEFAULTS
        or "change-me" in value.lower()
        or value.startswith("dev-")
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings instance (tests build their own `Settings(...)` and pass it explicitly)."""
    return Settings()
