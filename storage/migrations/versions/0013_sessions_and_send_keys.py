"""dashboard_sessions: staff logins kept server-side (revocable, expiring; only a hash of the token); outbox.send_key:
a marker fixed when a row is queued, so a send repeated after a crash is recognised (e-mail's Message-ID)

Revision ID: 0013
Revises: 0012
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=100), nullable=False),
        sa.Column("password_tag", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dashboard_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_dashboard_sessions_token_hash"),
    )
    op.create_index("ix_dashboard_sessions_user_name", "dashboard_sessions", ["user_name"])
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("send_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("send_key")
    op.drop_index("ix_dashboard_sessions_user_name", table_name="dashboard_sessions")
    op.drop_table("dashboard_sessions")
