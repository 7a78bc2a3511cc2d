"""mail intake: IMAP checkpoints per mailbox, flagged (bounced) addresses, mail kept aside

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=400), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_checkpoints")),
        sa.UniqueConstraint("mailbox", name=op.f("uq_mail_checkpoints_mailbox")),
    )
    op.create_table(
        "address_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], name=op.f("fk_address_flags_message_id_messages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_address_flags")),
        sa.UniqueConstraint("channel", "address", name=op.f("uq_address_flags_channel")),
    )
    op.create_table(
        "kept_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=400), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reprocessed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kept_mail")),
    )


def downgrade() -> None:
    op.drop_table("kept_mail")
    op.drop_table("address_flags")
    op.drop_table("mail_checkpoints")
