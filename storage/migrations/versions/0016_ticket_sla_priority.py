"""a ticket's priority of the preset's matrix (R25), the rule that gave it and why

Revision ID: 0016
Revises: 0015
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("sla_priority", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("priority_rule", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("priority_reasons", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        for name in ("priority_reasons", "priority_rule", "sla_priority"):
            batch_op.drop_column(name)
