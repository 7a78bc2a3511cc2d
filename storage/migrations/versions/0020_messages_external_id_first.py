"""uq_messages_external as (channel, external_id, direction) on PostgreSQL: a lookup of both directions stays exact

The duplicate check and the thread lookup ask for a message id in both directions (``direction IN ('in',
'out')``). With the direction second in the index, PostgreSQL's planner, where the table has no statistics yet (a
new database, or autovacuum off), takes the direction as a filter and scans every message of the channel: a cost
that grows with the table (measured: 12 pages read for one lookup among 4,000 messages, 3 with the id second;
``tests/test_postgres_path.py``). With the id second the lookup reads its own entries whatever the planner knows.
The constraint means the same. SQLite, which looks up each direction of the list on its own, keeps its table as it is.

Revision ID: 0020
Revises: 0019
"""
from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_NAME = "uq_messages_external"


def _columns(columns: list[str]) -> None:
    op.drop_constraint(_NAME, "messages", type_="unique")
    op.create_unique_constraint(_NAME, "messages", columns)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _columns(["channel", "external_id", "direction"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _columns(["channel", "direction", "external_id"])
