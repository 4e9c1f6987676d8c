"""channel meta: the Meta WhatsApp Cloud API provider

Revision ID: 7d3e5a91c2b4
Revises: 153f1065314e
Create Date: 2026-11-30 03:00:00.000000+00:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "7d3e5a91c2b4"
down_revision: str | Sequence[str] | None = "153f1065314e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every column of the PostgreSQL enum type `channel`.
_COLUMNS = (("customers", "channel"), ("conversations", "channel"), ("messages", "channel"))


def upgrade() -> None:
    op.execute("ALTER TYPE channel ADD VALUE IF NOT EXISTS 'meta'")


def downgrade() -> None:
    # PostgreSQL cannot drop an enum value: rebuild the type without it. Rows on the Meta channel make the cast
    # fail, so a downgrade never silently loses them.
    op.execute("ALTER TYPE channel RENAME TO channel_with_meta")
    op.execute("CREATE TYPE channel AS ENUM ('wazzup', 'twilio', 'console')")
    for table, column in _COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE channel USING {column}::text::channel")
    op.execute("DROP TYPE channel_with_meta")
