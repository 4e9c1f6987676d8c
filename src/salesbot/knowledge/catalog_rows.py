"""The catalog row model: one product as a catalog file describes it, checked column by column.

| column        | required | meaning                                                                        |
|---------------|----------|--------------------------------------------------------------------------------|
| `sku`         | yes      | the product's unique code (upsert key), up to 64 characters                    |
| `name`        | yes      | up to 300 characters                                                           |
| `price`       | yes      | a non-negative number (`1299`, `1299.50`, `1,299.50`, `١٬٢٩٩٫٥٠`), 2 decimals   |
| `description` | no       | free text in any language (several languages in one field are fine)            |
| `category`    | no       | e.g. `Laptops`, up to 120 characters                                           |
| `currency`    | no       | ISO 4217 code, default: the playbook's `currency` (PLAYBOOK_PATH)              |
| `stock`       | no       | a non-negative whole number, default 0                                         |
| `active`      | no       | `true`/`false` (also yes/no, 1/0), default true                                |
| `attributes`  | no       | a JSON object                                                                  |
| `image_url`   | no       | a photo of the product, an http or https URL (taken as given; empty: none)     |
| anything else | no       | kept as an attribute (`brand`, `warranty_months`...)                           |

Numbers may be written with Arabic-Indic digits. Every column of a row is checked, so a rejected row lists all
its problems at once ("line 14 (sku LAP-9): price is not a number..., got 'abc'; stock must not be negative,
got '-2'"). A SKU seen twice in one file keeps its first row; the later ones are errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from salesbot.kit.text import has_control_characters
from salesbot.kit.urls import http_url
from salesbot.knowledge.catalog_files import FieldProblem, RowError, read_rows
from salesbot.knowledge.documents import product_document

DEFAULT_CURRENCY = "USD"
REQUIRED_COLUMNS = ("sku", "name", "price")
MAX_PRICE = Decimal("999999999999.99")
MAX_STOCK = 2_000_000_000

_THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# The Arabic decimal and thousands separators; Decimal already reads Arabic-Indic digits.
_ARABIC_SEPARATORS = str.maketrans({"\u066b": ".", "\u066c": ","})
_TRUE = ("", "true", "yes", "y", "1")
_FALSE = ("false", "no", "n", "0")


class RowProblem(ValueError):
    """One value is invalid: `column` and what is wrong with it ("must not be negative, got '-5'")."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(f"{column} {problem}")
        self.column = column
        self.problem = problem


def _shown(raw: str, limit: int = 40) -> str:
    return repr(raw if len(raw) <= limit else raw[:limit] + "...")


def as_text(value: Any, *, column: str = "value") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool | int | float | Decimal):
        return str(value)
    raise RowProblem(column, f"must be text, got {type(value).__name__}")


def _decimal(raw: str) -> Decimal:
    """A number as a business writes it: "1299.5", "1,299.50" (thousands separators), Arabic-Indic digits and
    separators ("١٬٢٩٩٫٥٠"); NaN when it is not one. "1,29" or "1.299,00" are ambiguous, so not numbers."""
    number = raw.translate(_ARABIC_SEPARATORS)
    if _THOUSANDS.match(number):
        number = number.replace(",", "")
    try:
        return Decimal(number)
    except InvalidOperation:
        return Decimal("NaN")


def parse_price(value: Any, *, column: str = "price") -> Decimal:
    """A non-negative amount rounded to 2 decimals, written as `_decimal` reads it."""
    if isinstance(value, bool):
        raise RowProblem(column, f"must be a number, got {value}")
    raw = as_text(value, column=column)
    if not raw:
        raise RowProblem(column, "is missing")
    amount = _decimal(raw)
    if not amount.is_finite():
        raise RowProblem(column, f"is not a number (write it like 1299.50 or 1,299.50), got {_shown(raw)}")
    if amount < 0:
        raise RowProblem(column, f"must not be negative, got {_shown(raw)}")
    amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if amount > MAX_PRICE:
        raise RowProblem(column, f"is too large (at most {MAX_PRICE:,}), got {_shown(raw)}")
    return amount


def parse_stock(value: Any, *, column: str = "stock") -> int:
    """A non-negative whole number ("12", 12, "12.0", "1,200", "١٢"); empty means 0."""
    if isinstance(value, bool):
        raise RowProblem(column, f"must be a whole number, got {value}")
    raw = as_text(value, column=column)
    if not raw:
        return 0
    number = _decimal(raw)
    if number.is_nan():
        raise RowProblem(column, f"is not a number, got {_shown(raw)}")
    if not number.is_finite() or number != number.to_integral_value():
        raise RowProblem(column, f"must be a whole number, got {_shown(raw)}")
    if number < 0:
        raise RowProblem(column, f"must not be negative, got {_shown(raw)}")
    if number > MAX_STOCK:
        raise RowProblem(column, f"is too large (at most {MAX_STOCK:,}), got {_shown(raw)}")
    return int(number)


def parse_currency(value: Any, *, default: str = DEFAULT_CURRENCY) -> str:
    """An ISO 4217 code in any case; empty means `default` (an empty `default` leaves it empty)."""
    raw = as_text(value, column="currency")
    if not raw:
        return default
    if not _CURRENCY.match(raw.upper()):
        raise RowProblem("currency", f"must be a 3-letter ISO 4217 code such as AED or USD, got {_shown(raw, 20)}")
    return raw.upper()


def parse_active(value: Any, *, column: str = "active") -> bool:
    if isinstance(value, bool):
        return value
    raw = as_text(value, column=column)
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise RowProblem(column, f"must be true or false (or yes/no, 1/0), got {_shown(raw, 20)}")


def parse_image_url(value: Any, *, column: str = "image_url") -> str | None:
    raw = as_text(value, column=column)
    if not raw:
        return None
    try:
        return http_url(raw)
    except ValueError as error:
        raise RowProblem(column, f"{error}, got {_shown(raw, 60)}") from None


def parse_text(value: Any, *, column: str, limit: int | None = None, required: bool = False) -> str:
    raw = as_text(value, column=column)
    if required and not raw:
        raise RowProblem(column, "is missing")
    if limit is not None and len(raw) > limit:
        raise RowProblem(column, f"is longer than {limit} characters ({len(raw)})")
    _printable(raw, column)
    return raw


def _printable(value: Any, column: str) -> None:
    """PostgreSQL cannot store NUL (nor jsonb a \\u0000); no catalog text needs the other control characters."""
    if isinstance(value, str) and has_control_characters(value):
        raise RowProblem(column, "must not contain control characters")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _printable(str(key), column)
            _printable(item, column)
    elif isinstance(value, list):
        for item in value:
            _printable(item, column)


def parse_attributes(value: Any, *, column: str = "attributes") -> dict[str, Any]:
    """A JSON object, given as one (JSON files) or as its text (a CSV cell); empty means none."""
    decoded: Any = value
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowProblem(column, f"is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(decoded, Mapping):
        raise RowProblem(column, f'must be a JSON object like {{"brand": "HP"}}, got {type(decoded).__name__}')
    _printable(decoded, column)
    return dict(decoded)


def parse_free_column(value: Any, *, column: str) -> Any:
    """A column the model does not know, kept as an attribute: whole numbers become numbers unless a leading zero
    would be lost ("0042" stays text), other text stays text, JSON values stay as they are."""
    _printable(value, column)
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.isdecimal() and len(stripped) < 16 and (len(stripped) == 1 or int(stripped[0]) != 0):
            return int(stripped)
        return stripped
    return value


def _column(parse: Callable[..., Any], **options: Any) -> BeforeValidator:
    """Validates with `parse(value, column=<the field's or free column's name>)`; a `RowProblem` becomes that
    column's error."""

    def validate(value: Any, info: ValidationInfo) -> Any:
        return parse(value, column=info.field_name or "value", **options)

    return BeforeValidator(validate)


def _required_currency(value: Any, *, column: str) -> str:
    code = parse_currency(value, default="")
    if not code:
        raise RowProblem(column, "is missing (give the column, or set the playbook's currency)")
    return code


def _free_column(value: Any) -> Any:
    # Extras are validated without a field name: `field_problems` names the column from the error's location.
    return parse_free_column(value, column="value")


class CatalogRow(BaseModel):
    """One valid product; construct it with `model_validate(values, context={"default_currency": ...})`."""

    model_config = ConfigDict(frozen=True, extra="allow")
    # Columns the model does not know: checked, then moved into `attributes`.
    __pydantic_extra__: dict[str, Annotated[Any, BeforeValidator(_free_column)]]

    sku: Annotated[str, _column(parse_text, limit=64, required=True)]
    name: Annotated[str, _column(parse_text, limit=300, required=True)]
    price: Annotated[Decimal, _column(parse_price)]
    description: Annotated[str, _column(parse_text)] = ""
    category: Annotated[str, _column(parse_text, limit=120)] = ""
    currency: Annotated[str, _column(_required_currency)]
    stock: Annotated[int, _column(parse_stock)] = 0
    active: Annotated[bool, _column(parse_active)] = True
    attributes: Annotated[dict[str, Any], _column(parse_attributes)] = Field(default_factory=dict)
    image_url: Annotated[str | None, _column(parse_image_url)] = None

    @model_validator(mode="before")
    @classmethod
    def _fill_in(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data
        values = {key: value for key, value in data.items() if key}
        # Absent and empty required columns get the same "is missing"; blank free columns are no attributes.
        for column in REQUIRED_COLUMNS:
            values.setdefault(column, "")
        for key in [key for key in values if key not in KNOWN_COLUMNS]:
            if values[key] is None or (isinstance(values[key], str) and not values[key].strip()):
                del values[key]
        currency = values.get("currency")
        if currency is None or (isinstance(currency, str) and not currency.strip()):
            values["currency"] = (info.context or {}).get("default_currency", "")
        return values

    @model_validator(mode="after")
    def _free_columns_into_attributes(self) -> Self:
        extra = self.__pydantic_extra__ or {}
        self.attributes.update(extra)
        extra.clear()
        return self

    @property
    def document(self) -> str:
        return product_document(
            sku=self.sku,
            name=self.name,
            category=self.category,
            description=self.description,
            attributes=self.attributes,
        )


KNOWN_COLUMNS = frozenset(CatalogRow.model_fields)


def field_problems(error: ValidationError) -> tuple[FieldProblem, ...]:
    """The row's problems, one per column (the model's columns first, then free ones), each naming its column."""
    problems: list[FieldProblem] = []
    for item in error.errors(include_url=False):
        column = str(item["loc"][0]) if item["loc"] else "row"
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, RowProblem):
            message = f"{column} {cause.problem}"
        elif item["type"] == "missing":
            message = f"{column} is missing"
        else:
            message = f"{column}: {item['msg']}"
        problems.append(FieldProblem(column, message))
    return tuple(problems)


def read_product_file(
    path: Path, *, default_currency: str = DEFAULT_CURRENCY
) -> tuple[list[CatalogRow], list[RowError]]:
    """Valid products and the errors of invalid rows, every problem of each row, by line; a SKU seen twice keeps
    its first row. Raises `IngestError` for a file that cannot be read or lacks a required column."""
    rows, errors = read_rows(path, required=REQUIRED_COLUMNS)
    context = {"default_currency": default_currency}
    records: list[CatalogRow] = []
    first_seen: dict[str, int] = {}
    for row in rows:
        try:
            record = CatalogRow.model_validate(row.values, context=context)
        except ValidationError as error:
            problems = field_problems(error)
            message = "; ".join(problem.message for problem in problems)
            errors.append(RowError(row.line, message, _sku_of(row.values), row.unit, problems))
            continue
        if record.sku in first_seen:
            message = f"duplicate sku, first seen at {row.unit} {first_seen[record.sku]}"
            errors.append(RowError(row.line, message, record.sku, row.unit, (FieldProblem("sku", message),)))
            continue
        first_seen[record.sku] = row.line
        records.append(record)
    errors.sort(key=lambda error: error.line)
    return records, errors


def _sku_of(values: Mapping[str, Any]) -> str | None:
    """The row's SKU as written, to name a rejected row by (whatever else is wrong with it)."""
    try:
        return as_text(values.get("sku"))[:64] or None
    except RowProblem:
        return None
