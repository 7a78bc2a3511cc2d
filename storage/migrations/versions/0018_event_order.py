"""events.xid (PostgreSQL): the transaction that wrote each event, so the staff chat posts each one once

Several workers commit events out of the order of their ids: a checkpoint on the id alone passed over an event
whose transaction committed after a later one was posted. On PostgreSQL every event now records its
transaction's id (``pg_current_xact_id()``), and the staff chat reads only the events of transactions that have all
ended, in the order (xid, id), from a checkpoint of both (:mod:`storage.staffchat`). The events written before this
migration all carry its own transaction's id, and the checkpoint starts there. SQLite commits one writer at a time,
in the order of the ids: nothing changes there.

Revision ID: 0018
Revises: 0017
"""
from __future__ import annotations

from alembic import op

from storage.staffchat import ANNOUNCED, ANNOUNCED_XID, EVENT_XID_INDEX

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # the 64-bit transaction id (with its epoch, never wraps), as a bigint
    op.execute("ALTER TABLE events ADD COLUMN xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint")
    op.execute(f"CREATE INDEX {EVENT_XID_INDEX} ON events (xid, id)")
    # a staff chat that posted before: its checkpoint is this transaction's (every earlier event carries it)
    op.execute(f"INSERT INTO counters (name, value) SELECT '{ANNOUNCED_XID}', pg_current_xact_id()::text::bigint "
               f"FROM counters WHERE name = '{ANNOUNCED}' "
               "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DELETE FROM counters WHERE name = '{ANNOUNCED_XID}'")
    op.execute(f"DROP INDEX {EVENT_XID_INDEX}")
    op.execute("ALTER TABLE events DROP COLUMN xid")
