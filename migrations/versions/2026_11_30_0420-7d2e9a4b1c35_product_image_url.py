"""products.image_url: a photo of the product (http or https), sent after a reply that names the product

Revision ID: 7d2e9a4b1c35
Revises: 4c1f8e2a9b6d
Create Date: 2026-11-30 04:20:00.000000+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d2e9a4b1c35"
down_revision: str | Sequence[str] | None = "4c1f8e2a9b6d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("products", sa.Column("image_url", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    op.drop_column("products", "image_url")
