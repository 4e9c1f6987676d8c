"""Extra databases on the test cluster, for tests that change the schema or need data of their own."""

from __future__ import annotations

from salesbot.devstack import EmbeddedPostgres
from salesbot.migrate import upgrade


def migrated_database(postgres: EmbeddedPostgres, name: str) -> str:
    """A freshly created (or reused) database of the test cluster, migrated to head; returns its URL."""
    postgres.create_database(name)
    url = postgres.url(name)
    upgrade(url)  # alembic runs its own event loop: call from sync fixtures only
    return url
