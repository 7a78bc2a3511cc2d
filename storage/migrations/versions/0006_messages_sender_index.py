"""messages: an index on (sender, channel, direction, at) for WhatsApp's 24-hour window

Every WhatsApp send asks when the customer last wrote; without the index that
read went through every message.

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_sender", "messages", ["sender", "channel", "direction", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_sender", table_name="messages")
