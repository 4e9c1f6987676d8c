"""customer memories: facts remembered about a customer across conversations

Revision ID: 4c1f8e2a9b6d
Revises: 171037881a75
Create Date: 2026-11-30 04:00:00.000000+00:00

"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op

from salesbot.models.product import EMBEDDING_DIM

revision: str = "4c1f8e2a9b6d"
down_revision: str | Sequence[str] | None = "171037881a75"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_memories",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        # Same dimension as the products' and knowledge chunks' columns (the embedding model's).
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(dim=EMBEDDING_DIM), nullable=True),
        sa.Column("embedding_model", sa.String(length=200), nullable=True),
        sa.Column("conversation_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_customer_memories_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_memories_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_customer_memories_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_memories")),
        sa.UniqueConstraint("customer_id", "kind", "key", name=op.f("uq_customer_memories_customer_id_kind_key")),
    )
    op.create_index(op.f("ix_customer_memories_customer_id"), "customer_memories", ["customer_id"], unique=False)
    op.create_index(
        "ix_customer_memories_customer_updated", "customer_memories", ["customer_id", "updated_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_customer_memories_customer_updated", table_name="customer_memories")
    op.drop_index(op.f("ix_customer_memories_customer_id"), table_name="customer_memories")
    op.drop_table("customer_memories")
