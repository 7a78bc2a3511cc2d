"""the message search without slabot's automatic messages: the inbound ones and those a person wrote

An acknowledgement's words are its template's: a search for one of them found every ticket, and its reference and
the contact's name are found through the ticket and its contact anyway. Its text is the longest a new ticket
writes, and putting it in the search index was most of what the index cost the intake (PostgreSQL: about a tenth
of the server's CPU per message; ``docs/performance.md``). PostgreSQL: the GIN index on the messages becomes partial
(:data:`storage.search.SEARCHED_MESSAGES`; the search asks with the same condition). SQLite: the FTS5 triggers
index those messages only, and the automatic ones are taken out of the index.

Revision ID: 0021
Revises: 0020
"""
from __future__ import annotations

from alembic import op

from storage.search import pg_message_search_ddl, sqlite_message_search_ddl

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def _search(every_message: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        statements = sqlite_message_search_ddl(every_message=every_message)
    else:
        statements = ["DROP INDEX IF EXISTS ix_search_messages", *pg_message_search_ddl(every_message=every_message)]
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    _search(every_message=False)


def downgrade() -> None:
    _search(every_message=True)
