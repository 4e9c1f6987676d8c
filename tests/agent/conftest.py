"""Agent fixtures: the demo catalog (real hybrid search, offline embedder) inside the test's transaction."""

from __future__ import annotations

import pytest
from pydantic_ai import models
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.playbook import Playbook, load_playbook
from salesbot.knowledge.embeddings import get_embedder
from salesbot.knowledge.seed import seed_demo_data
from salesbot.settings import Settings
from tests.fakes.pipeline import pipeline, pipeline_overrides

__all__ = ["pipeline", "pipeline_overrides"]


@pytest.fixture(autouse=True)
def _no_real_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    """No agent test reaches a real LLM: models that would make a network request refuse to (the HTTP tests allow
    requests to their local stand-in server explicitly)."""
    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", False)


@pytest.fixture
async def catalog_session(db_session: AsyncSession, settings: Settings) -> AsyncSession:
    """The test's session with the demo business's catalog and knowledge base loaded (rolled back afterwards)."""
    await seed_demo_data(db_session, get_embedder(settings))
    await db_session.flush()
    return db_session


@pytest.fixture
def playbook() -> Playbook:
    return load_playbook()
