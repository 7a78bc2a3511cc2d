"""tickets: the current response deadline (R24). ``response_due`` is the deadline of the customer's latest question
(the first-response deadline until a follow-up question comes), ``followup_at`` when the follow-up question that
waits for staff arrived (NULL when none waits), ``responded_at`` when staff last answered; existing tickets start
from their first response

Revision ID: 0011
Revises: 0010
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("response_due", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("followup_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE tickets SET response_due = first_response_due, responded_at = first_responded_at")


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_column("responded_at")
        batch_op.drop_column("followup_at")
        batch_op.drop_column("response_due")
