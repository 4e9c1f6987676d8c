"""Application settings: one `Settings` object with nested groups, read from the environment and `.env`.

Variable names are flat (``WAZZUP_API_KEY``, ``DEBOUNCE_SECONDS``) because deployments and DESIGN.md use them;
each group is its own ``BaseSettings`` with an env prefix so the code reads ``settings.wazzup.api_key``.
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "password", "admin", "dev", "test"})


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


class LLMSettings(BaseSettings):
    model_config = _config("LLM_")

    model: str = "offline"
    base_url: str = ""
    api_key: SecretStr = SecretStr("")
    fallback_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    request_timeout_seconds: float = Field(default=12.0, gt=0)
    max_requests_per_turn: int = Field(default=6, ge=1, le=50)

    _split = field_validator("fallback_models", mode="before")(_split_csv)


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


class AuthSettings(BaseSettings):
    model_config = _config()

    api_token: SecretStr = SecretStr("dev-api-token")
    admin_username: str = "admin"
    admin_password: SecretStr = SecretStr("admin")
    secret_key: SecretStr = SecretStr("dev-secret-key-change-me")


class Settings(BaseSettings):
    """Everything configurable about salesbot. `.env.example` documents every variable."""

    model_config = _config()

    salesbot_env: Environment = Environment.DEVELOPMENT
    salesbot_data_dir: Path = Path(".salesbot")
    database_url: str = ""
    redis_url: str = ""
    public_base_url: str = "http://localhost:8000"
    # The console provider backs the simulator and `salesbot chat`; off by default in production.
    console_enabled: bool | None = None
    log_level: str = "INFO"
    # arq's job timeout; a SIGKILLed worker's job is re-run after this + 10 s, so it bounds crash recovery.
    worker_job_timeout_seconds: float = Field(default=45.0, ge=1, le=600)

    wazzup: WazzupSettings = Field(default_factory=WazzupSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    inventory: InventorySettings = Field(default_factory=InventorySettings)
    conversation: ConversationSettings = Field(default_factory=ConversationSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    @property
    def env(self) -> Environment:
        return self.salesbot_env

    @property
    def data_dir(self) -> Path:
        return self.salesbot_data_dir

    @property
    def console_provider_enabled(self) -> bool:
        if self.console_enabled is None:
            return self.salesbot_env is not Environment.PRODUCTION
        return self.console_enabled

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Self:
        if self.salesbot_env is not Environment.PRODUCTION:
            return self
        problems: list[str] = []
        secrets = {
            "API_TOKEN": self.auth.api_token,
            "ADMIN_PASSWORD": self.auth.admin_password,
            "SECRET_KEY": self.auth.secret_key,
        }
        if self.wazzup.api_key.get_secret_value() or self.wazzup.webhook_secret.get_secret_value():
            secrets["WAZZUP_WEBHOOK_SECRET"] = self.wazzup.webhook_secret
        if self.twilio.account_sid:
            secrets["TWILIO_AUTH_TOKEN"] = self.twilio.auth_token
        for name, secret in secrets.items():
            value = secret.get_secret_value()
            if value.lower() in PLACEHOLDER_SECRETS or "change-me" in value.lower() or value.startswith("dev-"):
                problems.append(f"{name} is a placeholder")
            elif len(value) < 16 and name != "ADMIN_PASSWORD":
                problems.append(f"{name} is shorter than 16 characters")
        if len(self.auth.admin_password.get_secret_value()) < 12:
            problems.append("ADMIN_PASSWORD is shorter than 12 characters")
        if not self.database_url:
            problems.append("DATABASE_URL is required in production")
        if not self.redis_url:
            problems.append("REDIS_URL is required in production")
        if problems:
            raise ValueError("refusing to start with SALESBOT_ENV=production: " + "; ".join(problems))
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings instance (tests build their own `Settings(...)` and pass it explicitly)."""
    return Settings()
