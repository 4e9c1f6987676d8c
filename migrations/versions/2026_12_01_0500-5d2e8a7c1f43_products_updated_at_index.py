"""An index on products.updated_at: each turn's catalog fingerprint reads max(updated_at)

The agent remembers the catalog's SKUs that hold many digits (so the phone detector leaves them alone) and checks
on every turn whether the catalog changed. That check was count(*) and max(updated_at): a sequential scan, 31 ms of
PostgreSQL's time per turn at 100,000 products. It is now max(id) and max(updated_at), each one end of an index.

Revision ID: 5d2e8a7c1f43
Revises: beb0723be701
Create Date: 2026-12-01 05:00:00.000000+00:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "5d2e8a7c1f43"
down_revision: str | None = "beb0723be701"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_products_updated_at", "products", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_products_updated_at", table_name="products")
