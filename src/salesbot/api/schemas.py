"""Request and response bodies of the REST API (validated at the boundary, so bad input is a 422 naming the field)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from salesbot.accounts.service import USERNAME_REGEX
from salesbot.conversations.manager_actions import MAX_MANAGER_TEXT
from salesbot.kit.phones import mask_phone, phone_from_chat_id
from salesbot.kit.text import printable
from salesbot.kit.urls import HTTP_URL_PATTERN, MAX_URL_LENGTH, http_url
from salesbot.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    Direction,
    Message,
    Owner,
    PaymentStatus,
    Product,
    Quote,
    SalesStage,
)


def _not_null(value: Any) -> Any:
    """For PATCH bodies: an omitted field keeps its value, an explicit null is refused (these are not nullable)."""
    if value is None:
        raise ValueError("cannot be null; omit the field to keep its value")
    return value


def _drop_null(schema: dict[str, Any]) -> None:
    """The OpenAPI schema of a PATCH field: its type, not nullable (omit a field to keep its value)."""
    options = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    schema.pop("default", None)


F = TypeVar("F")
# A PATCH field: optional in the body, not nullable (an explicit null is a 422 naming the field).
Patch = Annotated[F | None, AfterValidator(_not_null), Field(json_schema_extra=_drop_null)]

# One rule in the OpenAPI schema (a pattern clients and schemathesis can read) and in validation (with readable
# messages): no control characters (tab and newlines are fine); "non-blank" texts need one visible character.
_CONTROL_CLASS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
# Whitespace spelled out as the characters Python's `str.strip()` removes: JSON Schema patterns are ECMA-262, whose
# `\s` leaves out U+0085 (NEL) and U+001C-U+001F, so a schema written with `\s` admits texts the validator refuses.
WHITESPACE_CLASS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
TEXT_PATTERN = rf"^[^{_CONTROL_CLASS}]*$"
NON_BLANK_PATTERN = rf"^[^{_CONTROL_CLASS}]*[^{WHITESPACE_CLASS}{_CONTROL_CLASS}][^{_CONTROL_CLASS}]*$"


def _printable_value(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > 2000:
            raise ValueError("attribute texts are at most 2000 characters")
        return printable(value)
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


_printable = AfterValidator(printable)
_non_blank_check = AfterValidator(_non_blank)
_strip = AfterValidator(str.strip)
_TEXT_SCHEMA = Field(json_schema_extra={"pattern": TEXT_PATTERN})
_NON_BLANK_SCHEMA = Field(json_schema_extra={"pattern": NON_BLANK_PATTERN})

# Text fields: length limits, no control characters (pattern in the schema), then names trimmed.
Description = Annotated[str, StringConstraints(max_length=20_000), _printable, _TEXT_SCHEMA]
Category = Annotated[str, StringConstraints(max_length=120), _printable, _strip, _TEXT_SCHEMA]
# A photo of the product: an http(s) URL, taken as given (the provider fetches it when the photo is sent).
ImageUrl = Annotated[
    str,
    StringConstraints(max_length=MAX_URL_LENGTH),
    AfterValidator(http_url),
    Field(json_schema_extra={"pattern": HTTP_URL_PATTERN}),
]
CustomerName = Annotated[
    str, StringConstraints(min_length=1, max_length=200), _printable, _non_blank_check, _strip, _NON_BLANK_SCHEMA
]
Sku = Annotated[
    str, StringConstraints(min_length=1, max_length=64), _printable, _non_blank_check, _strip, _NON_BLANK_SCHEMA
]
ProductName = Annotated[
    str, StringConstraints(min_length=1, max_length=300), _printable, _non_blank_check, _strip, _NON_BLANK_SCHEMA
]
ManagerText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_MANAGER_TEXT), _printable, _non_blank_check, _NON_BLANK_SCHEMA
]
# A manager account's username (`salesbot users add`).
Username = Annotated[str, StringConstraints(pattern=USERNAME_REGEX)]
AttributeKey = Annotated[
    str, StringConstraints(min_length=1, max_length=100), _printable, _non_blank_check, _NON_BLANK_SCHEMA
]
AttributeValue = StrictStr | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictBool | None
# Product attributes are a flat map (brand, colour, warranty_months...): texts, numbers, booleans or null.
Attributes = Annotated[
    dict[AttributeKey, Annotated[AttributeValue, AfterValidator(_printable_value)]],
    Field(max_length=50),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": 50,
            "propertyNames": {"minLength": 1, "maxLength": 100, "pattern": NON_BLANK_PATTERN},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": 2000, "pattern": TEXT_PATTERN},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
            "examples": [{"brand": "HP", "pages_per_minute": 30, "duplex": True}],
        }
    ),
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
PRICE_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"


def _price_text(value: Any) -> Any:
    """Prices travel as decimal strings ("249.90"): exact, unlike JSON numbers; the schema says the same."""
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not re.fullmatch(PRICE_PATTERN, value):
        raise ValueError('give the price as a decimal string with at most 2 decimals, e.g. "249.90"')
    return value


Price = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2),
    BeforeValidator(_price_text),
    WithJsonSchema({"type": "string", "pattern": PRICE_PATTERN, "examples": ["249.90"]}),
]


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer: 7 and 7.0 are the same number; 7.5, "7" and true are not integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number")
    return value


Stock = Annotated[int, Field(ge=0, le=2_147_483_647), BeforeValidator(_whole_number)]


def _iso_datetime(value: Any) -> Any:
    """ISO 8601 only: pydantic would also read `0.5` or `1700000000` as Unix times; the schema promises ISO."""
    if isinstance(value, str) and not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        raise ValueError("use an ISO 8601 date-time, e.g. 2026-11-20T09:30:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime)]

# Query-string parameters (FastAPI applies these constraints and names the parameter in the 422).
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,4})?$"
PHONE_PATTERN = r"^\+?[ ()./-]*[0-9][0-9 ()./-]*$"
SEARCH_PATTERN = TEXT_PATTERN
DB_ID_MAX = 2**63 - 1


class CustomerOut(BaseModel):
    id: int
    name: str | None
    company: str | None
    email: str | None
    phone: str = Field(description="The customer's number in +E.164 form (from the provider's chat address).")
    phone_masked: str
    chat_id: str = Field(description="The provider's address of the chat, verbatim.")
    channel: Channel
    language: str | None
    opted_out_at: datetime | None

    @classmethod
    def of(cls, customer: Customer) -> Self:
        return cls(
            id=customer.id,
            name=customer.name,
            company=customer.company,
            email=customer.email,
            phone=phone_from_chat_id(customer.chat_id),
            phone_masked=mask_phone(customer.chat_id),
            chat_id=customer.chat_id,
            channel=customer.channel,
            language=customer.language,
            opted_out_at=customer.opted_out_at,
        )


class ConversationOut(BaseModel):
    id: int
    customer: CustomerOut
    channel: Channel
    status: ConversationStatus
    stage: SalesStage
    owner: Owner
    owner_until: datetime | None
    assignee: str | None = Field(description="Username of the manager the conversation is assigned to.")
    needs_attention: bool
    language: str | None
    message_count: int
    turn_count: int
    tokens_in_total: int
    tokens_out_total: int
    llm_cost_total: Decimal
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, conversation: Conversation, customer: Customer) -> Self:
        return cls(
            id=conversation.id,
            customer=CustomerOut.of(customer),
            channel=conversation.channel,
            status=conversation.status,
            stage=conversation.sales_stage,
            owner=conversation.owner,
            owner_until=conversation.owner_until,
            assignee=conversation.assignee.username if conversation.assignee is not None else None,
            needs_attention=conversation.needs_attention,
            language=conversation.language,
            message_count=conversation.message_count,
            turn_count=conversation.turn_count,
            tokens_in_total=conversation.tokens_in_total,
            tokens_out_total=conversation.tokens_out_total,
            llm_cost_total=conversation.llm_cost_total,
            last_message_at=conversation.last_message_at,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
        )


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    direction: Direction
    author: Author
    text: str
    content_type: str
    media: list[dict[str, Any]]
    delivery_status: DeliveryStatus | None
    error: str | None
    provider_message_id: str | None
    part_index: int
    created_at: datetime
    sent_at: datetime | None
    # The turn record (bot replies only).
    model: str | None
    fallback_used: bool | None
    tokens_in: int | None
    tokens_out: int | None
    cost: Decimal | None
    latency_ms: int | None
    tool_calls: list[dict[str, Any]]

    @classmethod
    def of(cls, message: Message) -> Self:
        return cls.model_validate(message)


class QuoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    conversation_id: int
    items: list[dict[str, Any]]
    subtotal: Decimal
    discount_pct: Decimal
    discount_amount: Decimal
    total: Decimal
    currency: str
    created_at: datetime
    accepted_at: datetime | None = Field(description="When the customer accepted the quote.")
    payment_status: PaymentStatus | None = Field(
        description="The payment link's state: pending, open, paid, expired, failed; null when none was asked for."
    )
    paid_at: datetime | None

    @classmethod
    def of(cls, quote: Quote) -> Self:
        return cls.model_validate(quote)


class EventOut(BaseModel):
    """One audited manager action."""

    model_config = ConfigDict(from_attributes=True)

    actor: str = Field(description="The username, or `api` for the shared API_TOKEN.")
    action: str = Field(
        description="take_over, hand_back, reply, close, reopen, change_stage, assign or rename_customer"
    )
    at: datetime
    details: dict[str, Any]


class ConversationDetail(ConversationOut):
    summary: str | None
    messages: list[MessageOut]
    quotes: list[QuoteOut]
    events: list[EventOut] = Field(description="Manager actions on this conversation, oldest first.")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Items matching the filters, across all pages.")
    page: int
    page_size: int
    pages: int = Field(description="Number of pages (0 when nothing matches).")


class ConversationPatch(BaseModel):
    """Fields a manager may change; at least one. Stage changes follow the sales FSM."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    status: Patch[ConversationStatus] = None
    stage: Patch[SalesStage] = None
    owner: Patch[Owner] = None
    customer_name: Patch[CustomerName] = None
    assignee: Username | None = Field(default=None, description="A manager's username; null unassigns.")

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one of status, stage, owner, customer_name, assignee")
        return self


class ManagerMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: ManagerText


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str
    name: str
    description: str
    category: str
    price: Decimal
    currency: str
    stock: int
    attributes: dict[str, Any]
    active: bool
    image_url: str | None
    embedding_model: str | None = Field(description="The model that embedded the current text (null: not embedded).")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, product: Product) -> Self:
        return cls.model_validate(product)


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: ProductName
    description: Description = ""
    category: Category = ""
    price: Price
    # None: the playbook's currency (prices are the business's, never silently dollars).
    currency: Currency | None = None
    stock: Stock = 0
    attributes: Attributes = Field(default_factory=dict)
    active: StrictBool = True
    image_url: ImageUrl | None = None


class ProductPatch(BaseModel):
    """Fields to change; omitted fields keep their value. Text changes re-embed the product."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    sku: Patch[Sku] = None
    name: Patch[ProductName] = None
    description: Patch[Description] = None
    category: Patch[Category] = None
    price: Patch[Price] = None
    currency: Patch[Currency] = None
    stock: Patch[Stock] = None
    attributes: Patch[Attributes] = None
    active: Patch[StrictBool] = None
    # null removes the photo.
    image_url: ImageUrl | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class ErasedCustomerOut(BaseModel):
    """What was deleted with the customer."""

    customer_id: int
    conversations: int
    messages: int
    quotes: int
    memories: int
