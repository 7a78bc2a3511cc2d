"""tickets: drop the index on state (ix_tickets_open_queue begins with state and serves every query on it) and the
one on contact_id (no query looks tickets up by contact); each cost every new ticket a page written

Revision ID: 0008
Revises: 0007
"""
from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_tickets_state", table_name="tickets")
    op.drop_index("ix_tickets_contact_id", table_name="tickets")


def downgrade() -> None:
    op.create_index("ix_tickets_contact_id", "tickets", ["contact_id"], unique=False)
    op.create_index("ix_tickets_state", "tickets", ["state"], unique=False)
