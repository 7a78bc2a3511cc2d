"""delivery reconciliation: uncertain sends, media fetch state, early status callbacks

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("uncertain_since", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("attachments") as batch:
        batch.add_column(sa.Column("fetch_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("fetch_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("next_fetch_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("fetch_failed", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "early_statuses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=400), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_early_statuses")),
    )
    op.create_index(op.f("ix_early_statuses_external_id"), "early_statuses", ["external_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_early_statuses_external_id"), table_name="early_statuses")
    op.drop_table("early_statuses")
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("fetch_failed")
        batch.drop_column("next_fetch_at")
        batch.drop_column("fetch_error")
        batch.drop_column("fetch_attempts")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("uncertain_since")
