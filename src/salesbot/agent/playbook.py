"""The business playbook: who the assistant speaks for, what is sold, policies, stage guidance, fixed messages.

The business edits a YAML file (`PLAYBOOK_PATH`, default: the example `playbook.yaml` shipped in this package).
It is re-read when the file changes, so an edit takes effect on the next turn without a restart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
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
    # Printed on quotation documents: the postal address and a PNG/JPEG logo (a path relative to the playbook).
    address: str = ""
    logo: str = ""
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


class DiscountRule(_Strict):
    """A discount a quote may carry when every condition set here holds (unset conditions always hold)."""

    max_pct: Decimal = Field(gt=0, le=100)
    # Units of one product on the quote ("10 or more units of a product").
    min_units: int | None = Field(default=None, ge=1)
    # The quote's subtotal before the discount, in the playbook's currency.
    min_subtotal: Decimal | None = Field(default=None, gt=0)

    def applies(self, units: Sequence[int], subtotal: Decimal | None) -> bool:
        """Whether a quote with these quantities per product and this subtotal (None: unknown) qualifies."""
        if self.min_units is not None and max(units, default=0) < self.min_units:
            return False
        return self.min_subtotal is None or (subtotal is not None and subtotal >= self.min_subtotal)

    def describe(self, currency: str) -> str:
        conditions = []
        if self.min_units is not None:
            conditions.append(f"{self.min_units} or more units of one product")
        if self.min_subtotal is not None:
            conditions.append(f"a quote subtotal of {currency} {self.min_subtotal.normalize():,f} or more")
        return f"up to {self.max_pct.normalize():f}% for " + (" and ".join(conditions) or "any quote")


class DiscountPolicy(_Strict):
    """The cap on any quote, and the rules that say which quote may carry how much of it."""

    max_pct: Decimal = Field(ge=0, le=100)
    rules: list[DiscountRule] = Field(default_factory=list)
    conditions: str = ""

    @model_validator(mode="after")
    def _rules_within_cap(self) -> DiscountPolicy:
        over = [rule.max_pct for rule in self.rules if rule.max_pct > self.max_pct]
        if over:
            raise ValueError(f"discount.rules: a rule allows {max(over).normalize():f}%, above max_pct")
        if self.max_pct > 0 and not self.rules:
            raise ValueError(
                "discount.rules: max_pct allows a discount but no rule says when (add rules with max_pct and "
                "conditions such as min_units or min_subtotal, or set max_pct to 0)"
            )
        return self

    def allowed_pct(self, units: Sequence[int], subtotal: Decimal | None) -> Decimal:
        """The highest discount a quote qualifies for (0 when none); `subtotal` None: unknown or not comparable."""
        best = Decimal(0)
        for rule in self.rules:
            if rule.applies(units, subtotal):
                best = max(best, rule.max_pct)
        return min(best, self.max_pct)

    def describe(self, currency: str) -> str:
        if not self.rules:
            return "No discounts."
        return "Discounts: " + "; ".join(rule.describe(currency) for rule in self.rules) + "."


class FinancingPlan(_Strict):
    """One instalment plan of the partner bank: the term, its rate and the smallest amount it finances."""

    months: int = Field(ge=1, le=360)
    annual_rate: Decimal = Field(ge=0, le=100)
    # In the playbook's currency.
    min_amount: Decimal = Field(default=Decimal(0), ge=0)

    def describe(self, currency: str) -> str:
        text = f"{self.months} months at {self.annual_rate.normalize():f}% a year"
        if self.min_amount:
            text += f" from {currency} {self.min_amount.normalize():,f}"
        return text


class FinancingPolicy(_Strict):
    """The plans calculate_financing may use: the model chooses a term, the plan gives the rate."""

    plans: list[FinancingPlan] = Field(default_factory=list)
    terms: str = ""

    @model_validator(mode="before")
    @classmethod
    def _replaced_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"default_annual_rate", "max_months"} & data.keys():
            raise ValueError(
                "financing.default_annual_rate and financing.max_months were replaced by financing.plans: "
                "a list of {months, annual_rate, min_amount}, one per term the business offers"
            )
        return data

    @field_validator("plans")
    @classmethod
    def _one_plan_per_term(cls, plans: list[FinancingPlan]) -> list[FinancingPlan]:
        terms = [plan.months for plan in plans]
        repeated = sorted({months for months in terms if terms.count(months) > 1})
        if repeated:
            raise ValueError(f"more than one plan for {', '.join(map(str, repeated))} months")
        return sorted(plans, key=lambda plan: plan.months)

    def plan(self, months: int) -> FinancingPlan | None:
        return next((plan for plan in self.plans if plan.months == months), None)

    @property
    def max_months(self) -> int:
        return max((plan.months for plan in self.plans), default=0)

    @property
    def default_annual_rate(self) -> Decimal:
        """The highest plan rate (kept for callers that show one standard rate; tools use `plan`)."""
        return max((plan.annual_rate for plan in self.plans), default=Decimal(0))

    def describe(self, currency: str) -> str:
        if not self.plans:
            return "No financing plans."
        return "Financing plans: " + "; ".join(plan.describe(currency) for plan in self.plans) + "."


class StageGuide(_Strict):
    goal: str
    guidance: list[str] = Field(default_factory=list)


class LocalizedText(_Strict):
    """One fixed message in every supported language (English is the fallback)."""

    en: str = Field(min_length=1)
    ar: str = ""
    ru: str = ""
    # Ukrainian: the offline responder answers in it, so its fixed messages (handoff) should too.
    uk: str = ""

    def get(self, language: str) -> str:
        value = getattr(self, language, "") if language in (*SUPPORTED_LANGUAGES, "uk") else ""
        return str(value or self.en)


class FixedMessages(_Strict):
    # The last automated message when the chat goes to a manager (request_human, usage limit).
    handoff: LocalizedText
    # When no model at all could answer (should not happen: the offline responder is always last).
    unavailable: LocalizedText
    # When the draft kept stating prices or stock that no tool returned, or quoted the instructions.
    safe_answer: LocalizedText
    # The payment link of an accepted quote ({quote}: its number, {total}: amount and currency, {url}: the link).
    payment_link: LocalizedText = Field(
        default_factory=lambda: LocalizedText(en="To pay quote #{quote} ({total}) securely online: {url}")
    )
    # After the payment of quote #{quote} arrived.
    payment_received: LocalizedText = Field(
        default_factory=lambda: LocalizedText(en="Thank you! We received your payment for quote #{quote}.")
    )


class FollowUpRule(_Strict):
    """One automated follow-up: when `trigger` has held for `after_hours` with no word from the customer, send
    `text` once (per quote, or per stall: a customer message starts a new one).

    Triggers: `quote_unanswered` (the conversation's latest quote got no customer message since), `stalled` (the
    conversation sits in `stage` with no customer message since the last message).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    trigger: Literal["quote_unanswered", "stalled"]
    after_hours: float = Field(gt=0, le=24 * 30)
    # `stalled`: the stage the conversation stalls in (required); `quote_unanswered`: only in this stage (optional).
    stage: SalesStage | None = None
    text: LocalizedText
    # Outside the 24-hour customer-service window free text is not allowed: "template" sends the channel's
    # approved template (META_WINDOW_TEMPLATE, TWILIO_WINDOW_TEMPLATE_SID, WAZZUP_WINDOW_TEMPLATE_ID) instead,
    # "skip" sends nothing. Either way the admin shows what happened and why.
    outside_window: Literal["template", "skip"] = "skip"

    @model_validator(mode="after")
    def _stalled_needs_a_stage(self) -> FollowUpRule:
        if self.trigger == "stalled" and self.stage is None:
            raise ValueError(f"follow_ups: rule {self.name!r} (stalled) needs a stage")
        return self

    @property
    def after(self) -> timedelta:
        return timedelta(hours=self.after_hours)


class FollowUpPolicy(_Strict):
    # Automated follow-ups per conversation within any 24 hours (0 turns them off).
    max_per_day: int = Field(default=2, ge=0, le=10)
    rules: list[FollowUpRule] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[FollowUpRule]) -> list[FollowUpRule]:
        names = [rule.name for rule in rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"follow_ups: rule names must be unique ({', '.join(repeated)})")
        return rules

    def rule(self, name: str) -> FollowUpRule | None:
        return next((rule for rule in self.rules if rule.name == name), None)


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
    # How long a quotation's prices hold, printed on the document.
    quote_validity_days: int = Field(default=14, ge=1, le=365)
    stages: dict[SalesStage, StageGuide]
    messages: FixedMessages
    # The offline responder's texts in the business's own words: text key -> language -> text.
    offline_texts: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Automated follow-ups (reminders, nudges); none when absent.
    follow_ups: FollowUpPolicy = Field(default_factory=FollowUpPolicy)

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

    def allowed_discount(self, units: Sequence[int], subtotal: Decimal, currency: str) -> Decimal:
        """The highest discount a quote with these quantities per product and subtotal qualifies for. Subtotal
        conditions are written in the playbook's currency: a quote in another currency never meets them."""
        return self.discount.allowed_pct(units, subtotal if currency.upper() == self.currency else None)

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
                self.discount.describe(self.currency),
                self.discount.conditions,
                self.financing.describe(self.currency),
                self.financing.terms,
            )
            if part
        )


class PlaybookError(ValueError):
    pass


_cache: dict[Path, tuple[int, Playbook]] = {}
_lock = threading.Lock()

T = TypeVar("T")
# Values computed from a playbook (its policy figures, the n-grams of its confidential text...) for the last few
# playbook instances: a playbook is immutable, so each is computed once, not on every turn. Keyed by the instance
# (held here, so its id cannot be reused): a copy (`model_copy`) or a reloaded file is another playbook.
DERIVED_PLAYBOOKS = 8
_derived: OrderedDict[int, tuple[Playbook, dict[Hashable, Any]]] = OrderedDict()
_derived_lock = threading.Lock()


def derived(playbook: Playbook, build: Callable[..., T], *args: Hashable) -> T:
    """`build(playbook, *args)`, computed once per playbook instance and arguments."""
    key = (build, *args)
    with _derived_lock:
        entry = _derived.get(id(playbook))
        if entry is None or entry[0] is not playbook:
            entry = _derived[id(playbook)] = (playbook, {})
            while len(_derived) > DERIVED_PLAYBOOKS:
                _derived.popitem(last=False)
        _derived.move_to_end(id(playbook))
        values = entry[1]
        if key in values:
            return cast(T, values[key])
    value = build(playbook, *args)  # outside the lock: a race only computes the same value twice
    with _derived_lock:
        values[key] = value
    return value


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
