"""outbox: unconfirmed sends (a send that may have been accepted past the provider's duplicate window)

Revision ID: 5e1f0a2c7b9d
Revises: 7d3e5a91c2b4
Create Date: 2026-11-30 03:00:00.000000+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1f0a2c7b9d"
down_revision: str | Sequence[str] | None = "7d3e5a91c2b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD VALUE runs inside the migration's transaction (PostgreSQL >= 12); the value is not used here.
    op.execute("ALTER TYPE delivery_status ADD VALUE IF NOT EXISTS 'unconfirmed'")
    op.add_column("messages", sa.Column("uncertain_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # PostgreSQL cannot drop an enum value: held rows become `failed` (a manager was flagged for them already).
    op.execute("UPDATE messages SET delivery_status = 'failed' WHERE delivery_status = 'unconfirmed'")
    op.drop_column("messages", "uncertain_since")
