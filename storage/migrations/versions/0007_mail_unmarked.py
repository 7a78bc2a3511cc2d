"""mail_unmarked: IMAP mail committed but not yet marked seen or moved, so a restart marks it too

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_unmarked",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("mailbox", sa.String(length=400), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_mail_unmarked"),
    )


def downgrade() -> None:
    op.drop_table("mail_unmarked")
