"""vector columns follow the configured embedding model's dimension

The initial schema declared `vector(1024)` (BGE-M3). The default model is now the multilingual Universal
Sentence Encoder (512 dimensions), and the models declare the configured model's dimension
(`salesbot.models.EMBEDDING_DIM`): this migration sizes both embedding columns to it and rebuilds their HNSW
indexes. Vectors of another dimension were made by another model and cannot be searched with this one, so
they are dropped (`embedding_model` cleared) and `salesbot reindex` makes them again.

Revision ID: 171037881a75
Revises: a4c8e2f61d93
Create Date: 2026-11-30 03:05:00.000000+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from salesbot.models.product import EMBEDDING_DIM

revision: str = "171037881a75"
down_revision: str | Sequence[str] | None = "a4c8e2f61d93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, HNSW index) pairs; the index parameters are those of the initial schema.
_TABLES = (("products", "ix_products_embedding_hnsw"), ("knowledge_chunks", "ix_knowledge_chunks_embedding_hnsw"))
_INITIAL_DIM = 1024


def _resize(dim: int) -> None:
    connection = op.get_bind()
    for table, index in _TABLES:
        current = connection.execute(
            sa.text(
                "SELECT atttypmod FROM pg_attribute "
                "WHERE attrelid = CAST(:table AS regclass) AND attname = 'embedding' AND NOT attisdropped"
            ),
            {"table": table},
        ).scalar_one()
        if current == dim:
            continue
        # DDL takes no bind parameters: names are the constants above, dim an int.
        op.execute(f"DROP INDEX IF EXISTS {index}")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN embedding TYPE vector({int(dim)}) USING NULL")
        op.execute(f"UPDATE {table} SET embedding_model = NULL")  # noqa: S608
        op.execute(
            f"CREATE INDEX {index} ON {table} USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )


def upgrade() -> None:
    _resize(EMBEDDING_DIM)


def downgrade() -> None:
    _resize(_INITIAL_DIM)
