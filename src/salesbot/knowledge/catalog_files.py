"""Reading a catalog or inventory file (CSV, JSON or JSON Lines) into raw rows, each with where it came from.

Nothing here knows what a product is: the rows' keys are the lower-cased column names, their values as the file
holds them. A row that cannot even be read (unbalanced quotes, more values than columns, a JSON line that does not
parse) is a `RowError` with its line (CSV, JSON Lines) or item (JSON array) number; a file that cannot be read at
all, or lacks a required column, is an `IngestError` and nothing is imported.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRODUCT_FILE_SUFFIXES = {".csv", ".json", ".jsonl", ".ndjson"}
UNSUPPORTED_FILE = "unsupported file type (use .csv, .json or .jsonl)"


class IngestError(RuntimeError):
    """The whole import cannot proceed (unreadable file, missing columns, incompatible vector column)."""


@dataclass(frozen=True)
class FieldProblem:
    """What is wrong with one column of a row; `message` names the column ("price must not be negative...")."""

    column: str
    message: str


@dataclass(frozen=True)
class RowError:
    """A row (or item, or file) that was not imported, and every reason why."""

    line: int
    message: str
    sku: str | None = None
    unit: str = "line"
    problems: tuple[FieldProblem, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}"
        return f"{where} (sku {self.sku}): {self.message}" if self.sku else f"{where}: {self.message}"


@dataclass(frozen=True)
class RawRow:
    line: int
    values: dict[str, Any]
    unit: str = "line"


class _LineCounter:
    """Feeds csv.reader line by line and counts the lines it consumed (for start-of-record line numbers)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.count = 0

    def __iter__(self) -> _LineCounter:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.count += 1
        return line


def read_rows(path: Path, *, required: Sequence[str]) -> tuple[list[RawRow], list[RowError]]:
    """Rows of a CSV, JSON or JSON Lines file with lower-cased keys; rows that cannot be read are errors."""
    suffix = path.suffix.lower()
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"cannot read {path}: {exc}") from exc
    if suffix == ".csv":
        return _read_csv(content, required)
    if suffix in (".jsonl", ".ndjson"):
        return _read_json_lines(content)
    if suffix == ".json":
        return _read_json(content, path)
    raise IngestError(f"{path}: {UNSUPPORTED_FILE}")


def _read_csv(content: str, required: Sequence[str]) -> tuple[list[RawRow], list[RowError]]:
    counter = _LineCounter(iter(content.splitlines(keepends=True)))
    reader = csv.reader(counter)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise IngestError("the file is empty") from None
    except csv.Error as exc:
        raise IngestError(f"line 1: unreadable header: {exc}") from exc
    missing = [name for name in required if name not in header]
    if missing:
        raise IngestError(f"line 1: missing required column(s): {', '.join(missing)}")
    duplicates = {name for name in header if name and header.count(name) > 1}
    if duplicates:
        raise IngestError(f"line 1: duplicate column(s): {', '.join(sorted(duplicates))}")
    rows: list[RawRow] = []
    errors: list[RowError] = []
    while True:
        start = counter.count + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(start, f"unreadable CSV: {exc}"))
            continue
        if not values or not any(value.strip() for value in values):
            continue
        if len(values) > len(header) and any(value.strip() for value in values[len(header) :]):
            errors.append(RowError(start, f"{len(values)} values but the header has {len(header)} columns"))
            continue
        rows.append(RawRow(start, {name: value for name, value in zip(header, values, strict=False) if name}))
    return rows, errors


def _normalize_keys(item: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key).strip().lower(): value for key, value in item.items()}


def _read_json(content: str, path: Path) -> tuple[list[RawRow], list[RowError]]:
    try:
        document = json.loads(content)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if isinstance(document, dict):
        document = document.get("products", document.get("items"))
    if not isinstance(document, list):
        raise IngestError(f'{path}: expected a JSON array of objects (or {{"products": [...]}})')
    rows: list[RawRow] = []
    errors: list[RowError] = []
    for number, item in enumerate(document, start=1):
        if isinstance(item, dict):
            rows.append(RawRow(number, _normalize_keys(item), unit="item"))
        else:
            errors.append(RowError(number, "not a JSON object", unit="item"))
    return rows, errors


def _read_json_lines(content: str) -> tuple[list[RawRow], list[RowError]]:
    rows: list[RawRow] = []
    errors: list[RowError] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(RowError(number, f"invalid JSON: {exc.msg}"))
            continue
        if isinstance(item, dict):
            rows.append(RawRow(number, _normalize_keys(item)))
        else:
            errors.append(RowError(number, "not a JSON object"))
    return rows, errors
