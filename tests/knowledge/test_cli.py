"""`salesbot ingest products|knowledge` and `salesbot reindex` through the real command line entry point."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.agent.playbook import DEFAULT_PLAYBOOK_PATH
from salesbot.cli import build_parser, main
from salesbot.knowledge.seed import DEMO_KNOWLEDGE
from salesbot.models import KnowledgeChunk, Product
from salesbot.settings import Settings, get_settings
from tests.knowledge.test_ingest_products import ROWS, write_csv


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("EMBEDDING_MODEL", "offline")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_parser() -> None:
    args = build_parser().parse_args(["ingest", "products", "catalog.csv", "--full"])
    assert (args.kind, args.path, args.full) == ("products", "catalog.csv", True)
    args = build_parser().parse_args(["ingest", "knowledge", "docs/"])
    assert (args.kind, args.path) == ("knowledge", "docs/")
    args = build_parser().parse_args(["reindex", "--check"])
    assert (args.check, args.force) == (True, False)
    assert build_parser().parse_args(["dev", "--no-demo"]).no_demo is True


async def test_ingest_and_reindex_commands(
    cli_env: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    csv_path = write_csv(tmp_path / "catalog.csv", [*ROWS, "BAD,Broken,,,-1,,,\n"])
    assert await asyncio.to_thread(main, ["ingest", "products", str(csv_path)]) == 0
    output = capsys.readouterr()
    assert "added 4, updated 0, unchanged 0, deactivated 0, rejected 1 (embedded 4)" in output.out
    assert "rejected line 7 (sku BAD): price must not be negative" in output.err

    assert await asyncio.to_thread(main, ["ingest", "products", str(csv_path)]) == 0
    assert "added 0, updated 0, unchanged 4" in capsys.readouterr().out

    assert await asyncio.to_thread(main, ["ingest", "knowledge", str(DEMO_KNOWLEDGE)]) == 0
    assert "5 files: chunks added" in capsys.readouterr().out

    assert await asyncio.to_thread(main, ["reindex", "--check"]) == 0
    assert await asyncio.to_thread(main, ["reindex", "--force"]) == 0
    assert "products: 4 of 4 rows re-embedded" in capsys.readouterr().out

    async with sessionmaker() as session:
        assert len((await session.execute(select(Product))).scalars().all()) == 4
        assert (await session.execute(select(KnowledgeChunk.source).distinct())).scalars().all()

    # A file that cannot be imported: exit 1, nothing written.
    assert await asyncio.to_thread(main, ["ingest", "products", str(tmp_path / "missing.csv")]) == 1
    assert "error:" in capsys.readouterr().err


async def test_products_without_a_currency_take_the_playbooks(
    cli_env: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = yaml.safe_load(DEFAULT_PLAYBOOK_PATH.read_text(encoding="utf-8"))
    data["currency"] = "SAR"
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PLAYBOOK_PATH", str(playbook))
    get_settings.cache_clear()
    rows = ["NC-1,Desk lamp,LED desk lamp,Furniture,120,,5,Acme\n", "US-1,Dock,USB-C dock,Accessories,99,USD,2,Acme\n"]

    assert await asyncio.to_thread(main, ["ingest", "products", str(write_csv(tmp_path / "c.csv", rows))]) == 0

    async with sessionmaker() as session:
        products = (await session.scalars(select(Product))).all()
    stored = {product.sku: product.currency for product in products}
    assert stored == {"NC-1": "SAR", "US-1": "USD"}


async def test_a_strict_import_of_a_bad_file_lists_every_bad_row_and_imports_nothing(
    cli_env: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [*ROWS, "BAD,Broken,,,-1,,,\n", "TWO,,,,abc,EURO,,\n"]  # lines 7 and 8
    csv_path = write_csv(tmp_path / "catalog.csv", rows)
    args = build_parser().parse_args(["ingest", "products", str(csv_path), "--strict"])
    assert (args.strict, args.full) == (True, False)

    assert await asyncio.to_thread(main, ["ingest", "products", str(csv_path), "--strict"]) == 1

    err = capsys.readouterr().err
    assert "rejected line 7 (sku BAD): price must not be negative, got '-1'" in err
    assert "rejected line 8 (sku TWO): name is missing; price is not a number" in err
    assert "currency must be a 3-letter ISO 4217 code such as AED or USD, got 'EURO'" in err
    assert "error: 2 bad row(s), nothing imported (--strict)" in err
    async with sessionmaker() as session:
        assert (await session.scalars(select(Product))).all() == []
