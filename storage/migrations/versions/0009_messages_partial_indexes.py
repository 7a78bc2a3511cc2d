"""messages: the indexes for the cap on automatic replies (recipient, at) and for WhatsApp's 24-hour window
(sender, channel, at) hold only the direction their one query reads (out and in), so a stored message updates
one of them, not both

Revision ID: 0009
Revises: 0008
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OUT = sa.text("direction = 'out'")
IN = sa.text("direction = 'in'")


def upgrade() -> None:
    op.drop_index("ix_messages_recipient", table_name="messages")
    op.create_index("ix_messages_recipient", "messages", ["recipient", "at"], unique=False,
                    sqlite_where=OUT, postgresql_where=OUT)
    op.drop_index("ix_messages_sender", table_name="messages")
    op.create_index("ix_messages_sender", "messages", ["sender", "channel", "at"], unique=False,
                    sqlite_where=IN, postgresql_where=IN)


def downgrade() -> None:
    op.drop_index("ix_messages_sender", table_name="messages")
    op.create_index("ix_messages_sender", "messages", ["sender", "channel", "direction", "at"], unique=False)
    op.drop_index("ix_messages_recipient", table_name="messages")
    op.create_index("ix_messages_recipient", "messages", ["recipient", "at"], unique=False)
