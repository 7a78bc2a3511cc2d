"""Full-text search over tickets and messages: SQLite FTS5 tables kept by triggers, PostgreSQL GIN indexes;
canned_answers: the answers staff keep to insert in a reply

SQLite: ``search_tickets`` (reference, subject, sender address) and ``search_messages`` (message texts) are FTS5
tables on the rows of ``tickets`` and ``messages`` (external content), kept up to date by triggers, so every
writer (intake, desk, privacy) keeps them without knowing of them. A later migration that rebuilds ``tickets`` or
``messages`` (``batch_alter_table`` on SQLite) drops the triggers: it must create them again
(:func:`storage.search.sqlite_search_ddl`).
PostgreSQL: GIN indexes on the same texts' ``to_tsvector('simple', ...)``.

Revision ID: 0017
Revises: 0016
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.search import SEARCH_DROP_DDL, pg_search_ddl, sqlite_search_ddl

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canned_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("staff", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_canned_answers"),
        sa.UniqueConstraint("name", "language", name="uq_canned_answers_name"),
    )
    dialect = op.get_bind().dialect.name
    for statement in (sqlite_search_ddl(every_message=True) if dialect == "sqlite"
                      else pg_search_ddl(every_message=True)):  # automatic messages too, until 0021
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SEARCH_DROP_DDL[dialect]:
        op.execute(statement)
    op.drop_table("canned_answers")
