"""The product's default embedder in the real processes: the other system tests run the fast n-gram embedder,
whose vectors the template database holds. Here the scenario's database is moved to the default model the way
an operator would (`salesbot reindex`: columns resized to its dimension, catalog re-embedded), then the API and a
worker run with it.

A Russian and an Arabic question get the demo catalog's laptops, the turn's facts are remembered with the
model's vectors, and nothing in the logs says vector search was off or memory could not be written (with a
database embedded by another model than the processes', the search says so and falls back to full text).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from salesbot.knowledge.embeddings import embedding_dimension
from salesbot.models import Channel, CustomerMemory, Product
from salesbot.settings import EmbeddingSettings
from tests.system.conftest import MakeSystem
from tests.system.harness import Inbound, SystemConfig, check_every_turn_answered, wazzup_chat

pytestmark = pytest.mark.system

DEFAULT_MODEL = EmbeddingSettings.model_fields["model"].default
# "I need a laptop for the office", "I need a laptop for work at the office".
QUESTIONS = {
    wazzup_chat(1): "Мне нужен ноутбук для офиса",
    wazzup_chat(2): "أحتاج لابتوب للعمل في المكتب",
}


async def test_the_default_embedder_searches_and_remembers_in_the_real_processes(make_system: MakeSystem) -> None:
    assert DEFAULT_MODEL != "offline"
    config = SystemConfig(debounce_seconds=0.3, debounce_max_seconds=2, embedding_model=DEFAULT_MODEL)
    async with make_system(config) as system:
        dimension = embedding_dimension(EmbeddingSettings(model=DEFAULT_MODEL))
        async with system.db.engine.connect() as connection:
            models = set((await connection.execute(select(Product.embedding_model).distinct())).scalars())
            column = await connection.scalar(
                text(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'products'::regclass AND attname = 'embedding'"
                )
            )
        assert models == {DEFAULT_MODEL}
        assert column == f"vector({dimension})"

        await system.start(workers=1)
        for chat, question in QUESTIONS.items():
            ack = await system.webhooks.deliver(Inbound(Channel.WAZZUP, chat, question))
            assert ack.status == 200
        await system.replies_reached(dict.fromkeys(QUESTIONS, 1), timeout=120)
        await system.settled(timeout=60)
        await check_every_turn_answered(system)

        replies = system.sent.refresh()
        async with system.db.engine.connect() as connection:
            laptops = set(
                (await connection.execute(select(Product.name).where(Product.category == "Laptops"))).scalars()
            )
            remembered = list((await connection.execute(select(CustomerMemory.embedding_model))).scalars())
        for chat in QUESTIONS:
            said = " ".join(sent.text or "" for sent in replies[chat])
            assert any(name in said for name in laptops), (chat, said)
        assert remembered
        assert set(remembered) == {DEFAULT_MODEL}
        logs = system.logs()
        assert "knowledge.vector_search_disabled" not in logs
        assert "memory.write_failed" not in logs
