"""Payment links (Stripe Checkout Sessions per accepted quote, webhook events) and CRM links (contacts and deals)

Revision ID: b3f7c2d9e815
Revises: b3e7d1a9c542
Create Date: 2026-11-30 06:00:00.000000+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b3f7c2d9e815"
down_revision: str | None = "b3e7d1a9c542"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAYMENT_STATUS = postgresql.ENUM("pending", "open", "paid", "expired", "failed", name="payment_status")
CRM_OBJECT = postgresql.ENUM("contact", "deal", name="crm_object")
CRM_SYNC_STATE = postgresql.ENUM("pending", "synced", "failed", name="crm_sync_state")


def upgrade() -> None:
    bind = op.get_bind()
    for enum in (PAYMENT_STATUS, CRM_OBJECT, CRM_SYNC_STATE):
        enum.create(bind, checkfirst=False)
    status = postgresql.ENUM(name="payment_status", create_type=False)
    op.add_column("quotes", sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("quotes", sa.Column("payment_status", status, nullable=True))
    op.add_column("quotes", sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "payment_links",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("quote_id", sa.BigInteger(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("status", status, nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_payment_links_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["quote_id"], ["quotes.id"], name=op.f("fk_payment_links_quote_id_quotes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_links")),
        sa.UniqueConstraint("checkout_session_id", name=op.f("uq_payment_links_checkout_session_id")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payment_links_idempotency_key")),
    )
    op.create_index(op.f("ix_payment_links_conversation_id"), "payment_links", ["conversation_id"])
    op.create_index(op.f("ix_payment_links_quote_id"), "payment_links", ["quote_id"])
    op.create_index(op.f("ix_payment_links_status"), "payment_links", ["status"])
    op.create_table(
        "payment_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("payment_link_id", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_link_id"],
            ["payment_links.id"],
            name=op.f("fk_payment_events_payment_link_id_payment_links"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_payment_events_event_id")),
    )
    op.create_index(op.f("ix_payment_events_checkout_session_id"), "payment_events", ["checkout_session_id"])
    op.create_index(op.f("ix_payment_events_payment_link_id"), "payment_events", ["payment_link_id"])
    op.create_table(
        "crm_links",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("object_type", postgresql.ENUM(name="crm_object", create_type=False), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("quote_id", sa.BigInteger(), nullable=True),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("state", postgresql.ENUM(name="crm_sync_state", create_type=False), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_crm_links_customer_id_customers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["quote_id"], ["quotes.id"], name=op.f("fk_crm_links_quote_id_quotes"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_links")),
        sa.UniqueConstraint(
            "provider",
            "object_type",
            "customer_id",
            "conversation_id",
            name=op.f("uq_crm_links_provider_object_type_customer_id_conversation_id"),
        ),
    )
    op.create_index(op.f("ix_crm_links_conversation_id"), "crm_links", ["conversation_id"])
    op.create_index(op.f("ix_crm_links_customer_id"), "crm_links", ["customer_id"])
    op.create_index(op.f("ix_crm_links_state"), "crm_links", ["state"])


def downgrade() -> None:
    op.drop_table("crm_links")
    op.drop_table("payment_events")
    op.drop_table("payment_links")
    op.drop_column("quotes", "paid_at")
    op.drop_column("quotes", "payment_status")
    op.drop_column("quotes", "accepted_at")
    bind = op.get_bind()
    for enum in (CRM_SYNC_STATE, CRM_OBJECT, PAYMENT_STATUS):
        enum.drop(bind, checkfirst=False)
