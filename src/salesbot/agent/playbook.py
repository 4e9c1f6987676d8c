"""The business playbook: who the assistant speaks for, what is sold, policies, stage guidance, fixed messages.

The business edits a YAML file (`PLAYBOOK_PATH`, default: the example `playbook.yaml` shipped in this package).
It is re-read when the file changes, so an edit takes effect on the next turn without a restart.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from salesbot.agent.language import SUPPORTED_LANGUAGES
from salesbot.kit.phones import digits_only
from salesbot.models import SalesStage

DEFAULT_PLAYBOOK_PATH = Path(__file__).with_name("playbook.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Company(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    website: str = ""
    # The business's own public numbers: the model may see and give them (they are never masked as PII).
    phones: list[str] = Field(default_factory=list)

    @field_validator("phones")
    @classmethod
    def _phone_like(cls, value: list[str]) -> list[str]:
        for phone in value:
            if not 7 <= len(digits_only(phone)) <= 17:
                raise ValueError(f"company.phones: {phone!r} is not a phone number")
        return value


class Assistant(_Strict):
    name: str = Field(min_length=1)
    persona: str = ""


class DiscountPolicy(_Strict):
    max_pct: Decimal = Field(ge=0, le=100)
    conditions: str = ""


class FinancingPolicy(_Strict):
    default_annual_rate: Decimal = Field(ge=0, le=100)
    max_months: int = Field(default=60, ge=1, le=360)
    terms: str = ""


class StageGuide(_Strict):
    goal: str
    guidance: list[str] = Field(default_factory=list)


class LocalizedText(_Strict):
    """One fixed message in every supported language (English is the fallback)."""

    en: str = Field(min_length=1)
    ar: str = ""
    ru: str = ""

    def get(self, language: str) -> str:
        value = getattr(self, language, "") if language in SUPPORTED_LANGUAGES else ""
        return str(value or self.en)


class FixedMessages(_Strict):
    # The last automated message when the chat goes to a manager (request_human, usage limit).
    handoff: LocalizedText
    # When no model at all could answer (should not happen: the offline responder is always last).
    unavailable: LocalizedText
    # When the draft kept stating prices or stock that no tool returned, or quoted the instructions.
    safe_answer: LocalizedText


class Playbook(_Strict):
    company: Company
    assistant: Assistant
    offer: str = Field(min_length=1, description="what the business sells, in a few sentences")
    currency: str = Field(min_length=3, max_length=3)
    delivery: str = ""
    payment: str = ""
    discount: DiscountPolicy
    financing: FinancingPolicy
    default_language: str = "en"
    # The business's time zone: "today" in the instructions is the business's date.
    timezone: str = "UTC"
    stages: dict[SalesStage, StageGuide]
    messages: FixedMessages

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("default_language")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in SUPPORTED_LANGUAGES:
            raise ValueError(f"default_language must be one of {', '.join(SUPPORTED_LANGUAGES)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @model_validator(mode="after")
    def _every_stage(self) -> Playbook:
        missing = [stage.value for stage in SalesStage if stage not in self.stages]
        if missing:
            raise ValueError(f"stages: guidance missing for {', '.join(missing)}")
        return self

    def public_text(self) -> str:
        """The facts a customer may be told verbatim (company, offer, delivery, payment, policies)."""
        return "\n".join(
            part
            for part in (
                self.company.name,
                self.company.description,
                self.company.website,
                *self.company.phones,
                self.offer,
                self.delivery,
                self.payment,
                self.discount.conditions,
                self.financing.terms,
            )
            if part
        )


class PlaybookError(ValueError):
    pass


_cache: dict[Path, tuple[int, Playbook]] = {}
_lock = threading.Lock()


def parse_playbook(data: Any, *, source: str = "playbook") -> Playbook:
    try:
        return Playbook.model_validate(data)
    except ValueError as error:
        raise PlaybookError(f"{source}: {error}") from error


def load_playbook(path: str | Path | None = None) -> Playbook:
    """The playbook at `path` (PLAYBOOK_PATH), or the shipped example; cached until the file changes."""
    resolved = Path(path).expanduser().resolve() if path else DEFAULT_PLAYBOOK_PATH
    try:
        mtime = resolved.stat().st_mtime_ns
    except OSError as error:
        raise PlaybookError(f"cannot read the playbook {resolved}: {error}") from error
    with _lock:
        cached = _cache.get(resolved)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    try:
        data = yaml.safe_load(resolved.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PlaybookError(f"cannot read the playbook {resolved}: {error}") from error
    playbook = parse_playbook(data, source=str(resolved))
    with _lock:
        _cache[resolved] = (mtime, playbook)
    return playbook
