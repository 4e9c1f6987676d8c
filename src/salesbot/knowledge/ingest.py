"""Catalog and knowledge ingestion: `salesbot ingest products FILE [--full]`, `salesbot ingest knowledge PATH`.

Products (CSV, JSON or JSON Lines), one product per row/object:

| column        | required | meaning                                                                        |
|---------------|----------|--------------------------------------------------------------------------------|
| `sku`         | yes      | the product's unique code (upsert key), up to 64 characters                    |
| `name`        | yes      | up to 300 characters                                                           |
| `price`       | yes      | a non-negative number (`1299`, `1299.50`, `1,299.50`), rounded to 2 decimals   |
| `description` | no       | free text in any language (several languages in one field are fine)            |
| `category`    | no       | e.g. `Laptops`, up to 120 characters                                           |
| `currency`    | no       | ISO 4217 code, default: the playbook's `currency` (PLAYBOOK_PATH)              |
| `stock`       | no       | a non-negative whole number, default 0                                         |
| `active`      | no       | `true`/`false` (also yes/no, 1/0), default true                                |
| `attributes`  | no       | a JSON object                                                                  |
| `image_url`   | no       | a photo of the product, an http or https URL (taken as given; empty: none)     |
| anything else | no       | kept as an attribute (`brand`, `warranty_months`...)                           |

Rows are upserted by SKU in one transaction. Bad rows (missing SKU or name, negative or malformed numbers,
duplicate SKUs...) are reported with their line number (CSV, JSON Lines) or item number (JSON) and skipped.
Only rows whose embedded text changed (content hash) or that were embedded by another model are embedded
again; `--full` deactivates active products that the file no longer lists.

Knowledge: Markdown or text files (a file or a folder, recursively), chunked by headings and paragraphs
(`chunking.py`). A file's chunks replace those previously ingested from the same source path; unchanged chunks
keep their vectors.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from tqdm import tqdm

from salesbot.kit.logging import get_logger
from salesbot.kit.urls import http_url
from salesbot.knowledge.chunking import Chunk, chunk_file
from salesbot.knowledge.documents import chunk_document, content_hash, product_document
from salesbot.knowledge.embeddings import Embedder, Matrix
from salesbot.knowledge.vector_index import (
    KNOWLEDGE,
    PRODUCTS,
    VectorTable,
    column_dimension,
    create_vector_index,
    drop_vector_index,
    set_dimension,
)
from salesbot.models import KnowledgeChunk, Product

log = get_logger(__name__)

# Serializes catalog writers (imports, inventory syncs, reindex) across processes for one transaction.
CATALOG_LOCK_ID = 0x5A1E5B07
PRODUCT_FILE_SUFFIXES = {".csv", ".json", ".jsonl", ".ndjson"}
KNOWLEDGE_FILE_SUFFIXES = {".md", ".markdown", ".txt"}
KNOWN_COLUMNS = {
    "sku",
    "name",
    "description",
    "category",
    "price",
    "currency",
    "stock",
    "active",
    "attributes",
    "image_url",
}
DEFAULT_CURRENCY = "USD"
MAX_PRICE = Decimal("999999999999.99")
WRITE_BATCH = 500
# Above this many new vectors (and more than the table already holds) the HNSW index is rebuilt once at the
# end instead of being updated row by row, which is several times faster for a first import.
REBUILD_INDEX_ABOVE = 5000

_THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class IngestError(RuntimeError):
    """The whole import cannot proceed (unreadable file, missing columns, incompatible vector column)."""


class RowProblem(ValueError):
    """One row is invalid; the message says why."""


@dataclass(frozen=True)
class RowError:
    line: int
    message: str
    sku: str | None = None
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}"
        return f"{where} (sku {self.sku}): {self.message}" if self.sku else f"{where}: {self.message}"


@dataclass(frozen=True)
class ProductRecord:
    line: int
    sku: str
    name: str
    price: Decimal
    description: str = ""
    category: str = ""
    currency: str = DEFAULT_CURRENCY
    stock: int = 0
    active: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)
    image_url: str | None = None

    @property
    def document(self) -> str:
        return product_document(
            sku=self.sku,
            name=self.name,
            category=self.category,
            description=self.description,
            attributes=self.attributes,
        )


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    embedded: int = 0
    rejected: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"deactivated {self.deactivated}, rejected {len(self.rejected)} (embedded {self.embedded})"
        )


@dataclass
class KnowledgeReport:
    files: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    embedded: int = 0
    rejected: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.files} files: chunks added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"removed {self.removed}, rejected files {len(self.rejected)} (embedded {self.embedded})"
        )


# ---- value parsing (shared with the inventory file source) -------------------------------------------------


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool | int | float | Decimal):
        return str(value)
    raise RowProblem(f"expected text, got {type(value).__name__}")


def parse_price(value: Any, *, column: str = "price") -> Decimal:
    """A non-negative amount with 2 decimals: numbers, "1299.5" or "1,299.50" (thousands separators)."""
    if isinstance(value, bool):
        raise RowProblem(f"{column} must be a number")
    raw = as_text(value)
    if not raw:
        raise RowProblem(f"{column} is missing")
    if _THOUSANDS.match(raw):
        raw = raw.replace(",", "")
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise RowProblem(f"{column} is not a number: {raw[:40]!r}") from None
    if not amount.is_finite():
        raise RowProblem(f"{column} is not a number: {raw[:40]!r}")
    if amount < 0:
        raise RowProblem(f"{column} must not be negative: {raw}")
    amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if amount > MAX_PRICE:
        raise RowProblem(f"{column} is too large: {raw}")
    return amount


def parse_stock(value: Any, *, column: str = "stock") -> int:
    """A non-negative whole number ("12", 12, "12.0"); empty means 0."""
    if isinstance(value, bool):
        raise RowProblem(f"{column} must be a whole number")
    raw = as_text(value)
    if not raw:
        return 0
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise RowProblem(f"{column} is not a number: {raw[:40]!r}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise RowProblem(f"{column} must be a whole number: {raw[:40]!r}")
    if number < 0:
        raise RowProblem(f"{column} must not be negative: {raw}")
    if number > 2_000_000_000:
        raise RowProblem(f"{column} is too large: {raw}")
    return int(number)


def parse_currency(value: Any, *, default: str = DEFAULT_CURRENCY) -> str:
    raw = as_text(value).upper()
    if not raw:
        return default
    if not _CURRENCY.match(raw):
        raise RowProblem(f"currency must be a 3-letter ISO code: {raw[:20]!r}")
    return raw


def _parse_bool(value: Any, column: str) -> bool:
    if isinstance(value, bool):
        return value
    raw = as_text(value).lower()
    if raw in ("", "true", "yes", "y", "1"):
        return True
    if raw in ("false", "no", "n", "0"):
        return False
    raise RowProblem(f"{column} must be true or false: {raw[:20]!r}")


def _limited(value: Any, column: str, limit: int, *, required: bool = False) -> str:
    raw = as_text(value)
    if required and not raw:
        raise RowProblem(f"{column} is missing")
    if len(raw) > limit:
        raise RowProblem(f"{column} is longer than {limit} characters")
    return raw


def _attribute_value(value: Any) -> Any:
    if isinstance(value, str):
        stripped = value.strip()
        return int(stripped) if stripped.isdigit() and len(stripped) < 16 else stripped
    return value


def parse_image_url(value: Any) -> str | None:
    raw = as_text(value)
    if not raw:
        return None
    try:
        return http_url(raw)
    except ValueError as error:
        raise RowProblem(f"image_url {error}: {raw[:60]!r}") from None


def parse_product(raw: Mapping[str, Any], line: int, *, default_currency: str = DEFAULT_CURRENCY) -> ProductRecord:
    """One product from a row/object whose keys are lower-case column names; raises `RowProblem`."""
    attributes: dict[str, Any] = {}
    raw_attributes = raw.get("attributes")
    if isinstance(raw_attributes, dict):
        attributes.update(raw_attributes)
    elif raw_attributes not in (None, ""):
        try:
            decoded = json.loads(as_text(raw_attributes))
        except json.JSONDecodeError:
            raise RowProblem("attributes is not valid JSON") from None
        if not isinstance(decoded, dict):
            raise RowProblem("attributes must be a JSON object")
        attributes.update(decoded)
    for key, value in raw.items():
        if key not in KNOWN_COLUMNS and key and value not in (None, ""):
            attributes[key] = _attribute_value(value)
    return ProductRecord(
        line=line,
        sku=_limited(raw.get("sku"), "sku", 64, required=True),
        name=_limited(raw.get("name"), "name", 300, required=True),
        price=parse_price(raw.get("price")),
        description=as_text(raw.get("description")),
        category=_limited(raw.get("category"), "category", 120),
        currency=parse_currency(raw.get("currency"), default=default_currency),
        stock=parse_stock(raw.get("stock")),
        active=_parse_bool(raw.get("active"), "active"),
        attributes=attributes,
        image_url=parse_image_url(raw.get("image_url")),
    )


# ---- reading files ------------------------------------------------------------------------------------------


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
    raise IngestError(f"{path}: unsupported file type (use .csv, .json or .jsonl)")


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


def read_product_file(
    path: Path, *, default_currency: str = DEFAULT_CURRENCY
) -> tuple[list[ProductRecord], list[RowError]]:
    """Valid products and the errors of invalid rows (a SKU seen twice keeps its first row)."""
    rows, errors = read_rows(path, required=("sku", "name", "price"))
    records: list[ProductRecord] = []
    first_seen: dict[str, int] = {}
    for row in rows:
        sku = as_text(row.values.get("sku"))[:64] or None
        try:
            record = parse_product(row.values, row.line, default_currency=default_currency)
        except RowProblem as problem:
            errors.append(RowError(row.line, str(problem), sku, row.unit))
            continue
        if record.sku in first_seen:
            errors.append(
                RowError(row.line, f"duplicate sku, first seen at {row.unit} {first_seen[record.sku]}", sku, row.unit)
            )
            continue
        first_seen[record.sku] = row.line
        records.append(record)
    errors.sort(key=lambda error: error.line)
    return records, errors


# ---- writing ------------------------------------------------------------------------------------------------


async def lock_catalog(session: AsyncSession) -> None:
    """Serialize catalog writers until this transaction ends."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": CATALOG_LOCK_ID})


async def ensure_vector_dimension(session: AsyncSession, table: VectorTable, embedder: Embedder) -> None:
    """The column must hold this embedder's vectors: an empty one is adapted, a filled one needs `reindex`."""
    dim = await column_dimension(session, table)
    if dim == embedder.dim:
        return
    model = Product if table is PRODUCTS else KnowledgeChunk
    filled = (await session.execute(select(func.count()).where(model.embedding.is_not(None)))).scalar_one()
    if filled:
        raise IngestError(
            f"{table.table}.embedding holds {dim}-dimensional vectors but {embedder.name} makes {embedder.dim}: "
            "run `salesbot reindex` first"
        )
    await set_dimension(session, table, embedder.dim)


async def embed_in_batches(
    embedder: Embedder, documents: Sequence[str], *, batch_size: int, progress: bool, label: str
) -> Matrix:
    """All vectors for `documents`, embedded `batch_size` at a time with a progress bar."""
    if not documents:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    parts: list[Matrix] = []
    with tqdm(total=len(documents), desc=f"embedding {label}", unit=label, disable=not progress, leave=False) as bar:
        for start in range(0, len(documents), batch_size):
            batch = documents[start : start + batch_size]
            parts.append(await embedder.embed_documents(batch))
            bar.update(len(batch))
    return np.concatenate(parts)


def _product_values(record: ProductRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "description": record.description,
        "category": record.category,
        "price": record.price,
        "currency": record.currency,
        "stock": record.stock,
        "attributes": record.attributes,
        "active": record.active,
        "image_url": record.image_url,
    }


async def import_products(
    session: AsyncSession,
    records: Sequence[ProductRecord],
    embedder: Embedder,
    *,
    full: bool = False,
    rejected: Sequence[RowError] = (),
    batch_size: int = 32,
    progress: bool = False,
) -> ImportReport:
    """Upsert `records` by SKU (flushes; the caller commits). See the module docstring for the rules."""
    report = ImportReport(rejected=list(rejected))
    if full and not records:
        raise IngestError("refusing a --full import without a single valid product (it would deactivate everything)")
    await lock_catalog(session)
    await ensure_vector_dimension(session, PRODUCTS, embedder)

    columns = (
        Product.id,
        Product.sku,
        Product.name,
        Product.description,
        Product.category,
        Product.price,
        Product.currency,
        Product.stock,
        Product.attributes,
        Product.active,
        Product.image_url,
        Product.content_hash,
        Product.embedding_model,
        Product.embedding.is_not(None).label("has_embedding"),
    )
    existing: dict[str, Any] = {}
    if full or len(records) > 2000:
        existing = {row.sku: row for row in await session.execute(select(*columns))}
    else:
        skus = [record.sku for record in records]
        existing = {row.sku: row for row in await session.execute(select(*columns).where(Product.sku.in_(skus)))}

    new: list[tuple[ProductRecord, str]] = []
    changed: list[tuple[int, ProductRecord, str, bool]] = []  # id, record, hash, needs a vector
    for record in records:
        document = record.document
        digest = content_hash(document)
        row = existing.get(record.sku)
        if row is None:
            new.append((record, digest))
            continue
        values = _product_values(record)
        fields_changed = any(getattr(row, key) != value for key, value in values.items())
        needs_vector = not row.has_embedding or row.content_hash != digest or row.embedding_model != embedder.name
        if fields_changed:
            report.updated += 1
        else:
            report.unchanged += 1
        if fields_changed or needs_vector:
            changed.append((row.id, record, digest, needs_vector))

    to_embed = [record.document for record, _ in new] + [record.document for _, record, _, needs in changed if needs]
    vectors = await embed_in_batches(embedder, to_embed, batch_size=batch_size, progress=progress, label="products")
    report.embedded = len(to_embed)

    rebuild_index = len(to_embed) > REBUILD_INDEX_ABOVE and len(to_embed) > len(existing)
    if rebuild_index:
        await drop_vector_index(session, PRODUCTS)
    now = datetime.now(UTC)
    new_rows = [
        {
            "sku": record.sku,
            **_product_values(record),
            "embedding": vectors[position],
            "embedding_model": embedder.name,
            "content_hash": digest,
        }
        for position, (record, digest) in enumerate(new)
    ]
    for start in range(0, len(new_rows), WRITE_BATCH):
        await session.execute(insert(Product), new_rows[start : start + WRITE_BATCH])
    report.added = len(new_rows)

    position = len(new)
    with_vector: list[dict[str, Any]] = []
    without_vector: list[dict[str, Any]] = []
    for product_id, record, digest, needs in changed:
        values = {"id": product_id, **_product_values(record), "updated_at": now}
        if needs:
            values.update(embedding=vectors[position], embedding_model=embedder.name, content_hash=digest)
            position += 1
            with_vector.append(values)
        else:
            without_vector.append(values)
    for batch in (with_vector, without_vector):
        for start in range(0, len(batch), WRITE_BATCH):
            await session.execute(update(Product), batch[start : start + WRITE_BATCH])

    if full:
        keep = {record.sku for record in records} | {error.sku for error in rejected if error.sku}
        stale_ids = [row.id for sku, row in existing.items() if row.active and sku not in keep]
        for start in range(0, len(stale_ids), WRITE_BATCH):
            await session.execute(
                update(Product)
                .where(Product.id.in_(stale_ids[start : start + WRITE_BATCH]))
                .values(active=False, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        report.deactivated = len(stale_ids)
    if rebuild_index:
        await create_vector_index(session, PRODUCTS)
    await session.flush()
    log.info("knowledge.products_imported", **{k: v for k, v in vars(report).items() if k != "rejected"})
    return report


async def ingest_product_file(
    session: AsyncSession,
    path: Path,
    embedder: Embedder,
    *,
    full: bool = False,
    default_currency: str | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> ImportReport:
    """Import a product file; rows without a currency take `default_currency` (default: the shipped playbook's, the
    command line passes the configured one): prices are the business's, never silently dollars."""
    if path.suffix.lower() not in PRODUCT_FILE_SUFFIXES:
        raise IngestError(f"{path}: unsupported file type (use .csv, .json or .jsonl)")
    if default_currency is None:
        from salesbot.agent.playbook import load_playbook

        default_currency = load_playbook().currency
    records, rejected = read_product_file(path, default_currency=default_currency)
    return await import_products(
        session, records, embedder, full=full, rejected=rejected, batch_size=batch_size, progress=progress
    )


# ---- knowledge ----------------------------------------------------------------------------------------------


def knowledge_files(path: Path) -> list[tuple[str, Path]]:
    """(source, file) pairs: a file is its own name, a folder's files are named relative to the folder."""
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise IngestError(f"{path} does not exist")
    return sorted(
        (file.relative_to(path).as_posix(), file)
        for file in path.rglob("*")
        if file.is_file() and file.suffix.lower() in KNOWLEDGE_FILE_SUFFIXES and not file.name.startswith(".")
    )


async def ingest_knowledge_path(
    session: AsyncSession, path: Path, embedder: Embedder, *, batch_size: int = 32, progress: bool = False
) -> KnowledgeReport:
    """Chunk and upsert every Markdown/text file under `path` (flushes; the caller commits)."""
    report = KnowledgeReport()
    files = knowledge_files(path)
    await ensure_vector_dimension(session, KNOWLEDGE, embedder)
    plan: list[tuple[str, list[Chunk]]] = []
    for source, file in files:
        try:
            content = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            report.rejected.append(RowError(0, f"{source}: cannot read: {exc}", unit="file"))
            continue
        if len(source) > 500:
            report.rejected.append(RowError(0, f"{source[:80]}...: path longer than 500 characters", unit="file"))
            continue
        plan.append((source, chunk_file(file, content)))
    report.files = len(plan)
    sources = [source for source, _ in plan]
    rows = await session.execute(
        select(
            KnowledgeChunk.id,
            KnowledgeChunk.source,
            KnowledgeChunk.chunk_index,
            KnowledgeChunk.content_hash,
            KnowledgeChunk.embedding_model,
            KnowledgeChunk.embedding.is_not(None).label("has_embedding"),
        ).where(KnowledgeChunk.source.in_(sources))
    )
    existing = {(row.source, row.chunk_index): row for row in rows}

    pending: list[tuple[str, Chunk, str, Any]] = []  # source, chunk, hash, existing row
    for source, chunks in plan:
        for chunk in chunks:
            digest = content_hash(chunk_document(title=chunk.title, content=chunk.content))
            row = existing.pop((source, chunk.index), None)
            if (
                row is not None
                and row.has_embedding
                and row.content_hash == digest
                and row.embedding_model == embedder.name
            ):
                report.unchanged += 1
                continue
            pending.append((source, chunk, digest, row))
    documents = [chunk_document(title=chunk.title, content=chunk.content) for _, chunk, _, _ in pending]
    vectors = await embed_in_batches(embedder, documents, batch_size=batch_size, progress=progress, label="chunks")
    report.embedded = len(documents)
    now = datetime.now(UTC)
    for position, (source, chunk, digest, row) in enumerate(pending):
        values: dict[str, Any] = {
            "title": chunk.title,
            "content": chunk.content,
            "language": chunk.language,
            "embedding": vectors[position],
            "embedding_model": embedder.name,
            "content_hash": digest,
        }
        if row is None:
            await session.execute(insert(KnowledgeChunk), [{"source": source, "chunk_index": chunk.index, **values}])
            report.added += 1
        else:
            await session.execute(update(KnowledgeChunk), [{"id": row.id, **values, "updated_at": now}])
            report.updated += 1
    # Chunks beyond a file's new length (the file got shorter) are gone.
    leftover = [row.id for row in existing.values()]
    if leftover:
        await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.id.in_(leftover)))
    report.removed = len(leftover)
    await session.flush()
    log.info("knowledge.documents_imported", **{k: v for k, v in vars(report).items() if k != "rejected"})
    return report
