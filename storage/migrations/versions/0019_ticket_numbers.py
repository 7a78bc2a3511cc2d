"""the sequence ticket_numbers (PostgreSQL): ticket numbers without a row every new ticket locks

The number of a new ticket came from a row of ``counters`` per reference prefix, locked by the transaction that
took it until its commit: with several workers, every new ticket of every worker waited for the one before to
commit (measured: two workers 605-632 messages/s with it, 761-763 without). PostgreSQL now takes them from this
sequence, which starts after the highest number any prefix's counter gave. SQLite keeps its counters (one writer
at a time there).

Revision ID: 0019
Revises: 0018
"""
from __future__ import annotations

from alembic import op

from storage.repositories import FIRST_TICKET_NUMBER, TICKET_NUMBERS

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    given = op.get_bind().exec_driver_sql("SELECT max(value) FROM counters WHERE name LIKE 'ticket:%%'").scalar()
    op.execute(f"CREATE SEQUENCE {TICKET_NUMBERS} START WITH {int(given) + 1 if given else FIRST_TICKET_NUMBER}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # the counters go on from the sequence's last number, for every prefix a ticket has
    op.execute("INSERT INTO counters (name, value) SELECT DISTINCT 'ticket:' || regexp_replace(ref, '-[0-9]+$', ''), "
               f"(SELECT last_value FROM {TICKET_NUMBERS}) FROM tickets "
               "ON CONFLICT (name) DO UPDATE SET value = GREATEST(counters.value, EXCLUDED.value)")
    op.execute(f"DROP SEQUENCE {TICKET_NUMBERS}")
