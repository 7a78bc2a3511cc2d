"""messages: an index on (recipient, at) for the cap on automatic replies per address

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_recipient", "messages", ["recipient", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_recipient", table_name="messages")
