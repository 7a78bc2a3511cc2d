"""The staff chat's claims in the database: updates handled once, what is posted, pages, the weekly summary.

The staff chat (:mod:`bot.staffchat`) posts what the audit trail records
(tickets opened, follow-up questions, billing events, alerts) from a checkpoint, so nothing is lost
across a restart; it pages on-call for every open critical ticket not yet
acknowledged, each page an event of the trail; and it handles each Telegram
update once, by the highest update id handled. Every checkpoint is a counter
that only goes forward (:func:`storage.repositories.raise_counter`).

With several workers on PostgreSQL, transactions commit out of the order of
their events' ids: one that took an id early can commit after one that took a
later id was read and posted. So on PostgreSQL each event records the id of
the transaction that wrote it (``events.xid``, migration 0018), and the posts
are read in the order (xid, id), from a checkpoint of both, and only from
transactions older than every one still running (the snapshot's ``xmin``):
every event that can still appear comes after the checkpoint. The snapshot
counts every write transaction of the server, other databases' too: so an
event waits for them at most ``HOLD_BACK_SECONDS`` (by its time, ``at``), then
is posted all the same, and the events after it wait with it; an event of a
slabot transaction that ran longer than that could then come after the
checkpoint and not be posted (slabot's transactions take milliseconds). The
first round ever sets the checkpoint at the last event committed before it:
the history is not posted, whatever runs elsewhere on the server. SQLite
admits one writer at a time, whose ids commit in order: the id alone is its
checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from storage import models as m
from storage.direct import Direct
from storage.records import OPEN_STATES
from storage.repositories import counter, raise_counter

ANNOUNCED = "telegram:announced"  # the last event posted to the staff chat
ANNOUNCED_XID = "telegram:announced_xid"  # PostgreSQL: the transaction id of that event
EVENT_XID_INDEX = "ix_events_xid"  # events (xid, id), PostgreSQL only (migration 0018), outside the models
HOLD_BACK_SECONDS = 30  # PostgreSQL: the longest an event waits for older transactions to end (see the docstring)
WEEKLY = "telegram:weekly_report"  # the ISO week (year * 100 + week) whose Monday summary was posted
UPDATES = "telegram:update"  # the highest Telegram update id handled
OPENED = "ticket_opened"
FOLLOW_UP = "follow_up"  # a customer's follow-up question on an answered ticket (R24): staff are told at once
PAGED, ACKNOWLEDGED = "critical_paged", "critical_acknowledged"
BILLING_EVENTS = ("quote_agreed", "quote_declined", "separate_invoice", "punch_card_renewed")  # staff are told
# events that say "staff_told": posted to the staff chat, with or without a ticket
ALERT_EVENTS = ("message_needs_staff", "message_failed", "message_unknown", "message_bounced", "attachment_failed",
                "mail_kept_aside", "mail_skipped", "response_undone", "webhook_failed", "invoice_not_sent")
DASHBOARD_ACTION = "dashboard_action"  # what staff did in the dashboard: the staff chat hears of it
POST_BATCH = 20  # events posted per round



def _in_list(values: Sequence[str]) -> str:
    """Constant values as the inside of an SQL ``IN (...)``."""
    return ", ".join(f"'{v}'" for v in values)


_POSTED_KINDS = (f"((e.kind IN ({_in_list((OPENED, FOLLOW_UP, *BILLING_EVENTS, DASHBOARD_ACTION))}) "
                 f"AND e.ticket_id IS NOT NULL) OR e.kind IN ({_in_list(ALERT_EVENTS)}))")
_PENDING_SQL = (
    "SELECT e.id, coalesce(e.ticket_id, msg.ticket_id), e.kind, e.data, msg.recipient, NULL, 1 FROM events e "
    "LEFT JOIN messages msg ON msg.id = e.message_id "
    f"WHERE e.id > :after AND {_POSTED_KINDS} ORDER BY e.id LIMIT {POST_BATCH}")
_PENDING_PG_SQL = (
    "SELECT e.id, coalesce(e.ticket_id, msg.ticket_id), e.kind, e.data, msg.recipient, e.xid, "
    "(e.xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint "
    f"OR e.at < now() - interval '{HOLD_BACK_SECONDS} seconds') "
    "FROM events e LEFT JOIN messages msg ON msg.id = e.message_id "
    f"WHERE (e.xid, e.id) > (:xid, :after) AND {_POSTED_KINDS} "
    f"ORDER BY e.xid, e.id LIMIT {POST_BATCH}")
_PAGES_SQL = (
    "SELECT t.id, t.ref, a.name, "
    f"(SELECT count(*) FROM events e WHERE e.ticket_id = t.id AND e.kind = '{PAGED}'), "
    f"(SELECT max(e.at) FROM events e WHERE e.ticket_id = t.id AND e.kind = '{PAGED}') "
    "FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id "
    f"WHERE t.priority = 'critical' AND t.state IN ({_in_list(OPEN_STATES)}) "
    "AND t.first_responded_at IS NULL AND NOT EXISTS (SELECT 1 FROM events e WHERE e.ticket_id = t.id "
    f"AND e.kind = '{ACKNOWLEDGED}') ORDER BY t.queue_priority DESC, t.id")  # R15: critical Premium first


@dataclass(frozen=True)
class StaffChatPost:
    """An event of the audit trail to post to the staff chat: a ticket opened, a billing event, an alert."""

    event_id: int
    ticket_id: int | None  # an alert on a message has its message's ticket
    kind: str
    data: dict[str, Any]  # the event's data; an alert on a message has the message's ``recipient`` too
    xid: int | None = None  # PostgreSQL: the id of the transaction that wrote it


@dataclass(frozen=True)
class PageDue:
    """An open critical ticket, not acknowledged, due a page to on-call."""

    ticket_id: int
    ref: str
    account: str | None
    pages: int  # pages so far


def _set_counter(direct: Direct, name: str, value: int) -> None:
    direct.execute("INSERT INTO counters (name, value) VALUES (:name, :value) ON CONFLICT (name) "
                   "DO UPDATE SET value = :value", {"name": name, "value": value})


class StaffChatRepository:
    """The staff chat's queries, on plain statements (:meth:`storage.database.Database.run_direct`)."""

    def __init__(self, direct: Direct) -> None:
        self.direct = direct

    def first_time(self, update_id: int) -> bool:
        """Record ``update_id`` as handled; False when it (or a later one) was handled already.

        Telegram numbers updates in increasing order, so the highest handled id is enough.
        """
        return raise_counter(self.direct, UPDATES, update_id)

    def pending_posts(self) -> list[StaffChatPost]:
        """Tickets opened, billing events and alerts after the checkpoint, oldest first (a batch at a time).

        The first time, none: the checkpoint is set to the last event, so the history is not posted. On
        PostgreSQL in the order of the transactions that wrote them (see the module's docstring).
        """
        d = self.direct
        after = counter(d, ANNOUNCED)
        by_xid = d.dialect.name == "postgresql"
        if after is None:  # the first start: from now on, not the whole history
            if not by_xid:
                raise_counter(d, ANNOUNCED, int(d.scalar("SELECT max(id) FROM events") or 0))
                return []
            # every event committed before now is history: the checkpoint is the last of them in (xid, id) order
            # (an event of a transaction still running at this first start may be passed over), or, with none,
            # the transactions that ended before now
            last = d.one("SELECT xid, id FROM events WHERE xid IS NOT NULL ORDER BY xid DESC, id DESC LIMIT 1")
            if last is None:
                last = (int(d.scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")) - 1, 0)
            raise_counter(d, ANNOUNCED, int(last[1]))
            _set_counter(d, ANNOUNCED_XID, int(last[0]))
            return []
        if by_xid:
            rows = d.execute(_PENDING_PG_SQL, {"after": after, "xid": counter(d, ANNOUNCED_XID) or 0}).fetchall()
        else:
            rows = d.execute(_PENDING_SQL, {"after": after}).fetchall()
        pending = []
        for event_id, ticket_id, kind, data, recipient, xid, ready in rows:
            if not ready:  # held back, and the events after it with it (the checkpoint must not pass it)
                break
            values = d.decode(m.Event.__table__, ("data",), (data,))["data"] or {}
            if recipient and "recipient" not in values:
                values["recipient"] = recipient
            pending.append(StaffChatPost(int(event_id), None if ticket_id is None else int(ticket_id), str(kind),
                                         values, None if xid is None else int(xid)))
        return pending

    def posted(self, post: StaffChatPost) -> None:
        """Move the checkpoint past ``post``: it was posted (only forward)."""
        d = self.direct
        if post.xid is None:
            raise_counter(d, ANNOUNCED, post.event_id)
            return
        if (post.xid, post.event_id) > (counter(d, ANNOUNCED_XID) or 0, counter(d, ANNOUNCED) or 0):
            _set_counter(d, ANNOUNCED_XID, post.xid)
            _set_counter(d, ANNOUNCED, post.event_id)

    def pages_due(self, now: datetime, every: timedelta) -> list[PageDue]:
        """Open critical tickets not acknowledged whose last page is ``every`` old (or never paged), in queue
        order (R15: critical Premium, critical Business, the others)."""
        d = self.direct
        due = []
        for ticket_id, ref, account, pages, last in d.execute(_PAGES_SQL).fetchall():
            last_at = d.decode(m.Event.__table__, ("at",), (last,))["at"]
            if last_at is None or now - last_at >= every:
                due.append(PageDue(int(ticket_id), str(ref), account, int(pages)))
        return due

    def paged(self, ticket_id: int, page: int, chat: int, at: datetime, actor: str = "slabot") -> None:
        """Record page number ``page`` of the ticket, sent to ``chat``."""
        self.direct.insert(m.Event.__table__, {"kind": PAGED, "at": at, "ticket_id": ticket_id, "actor": actor,
                                               "data": {"page": page, "chat": chat}})

    def account_staff(self, account_id: int | None) -> str | None:
        """The staff member of the account (None: no account, or none named)."""
        if account_id is None:
            return None
        row = self.direct.one("SELECT staff FROM accounts WHERE id = :id", {"id": account_id})
        if row is None:
            raise KeyError(account_id)
        return None if row[0] is None else str(row[0])

    def weekly_posted(self) -> int | None:
        """The ISO week (year * 100 + week) whose summary was posted last; None before the first."""
        return counter(self.direct, WEEKLY)

    def weekly_done(self, week: int) -> None:
        """Record the week ``week`` (year * 100 + week) as posted, unless a later one is."""
        raise_counter(self.direct, WEEKLY, week)


__all__ = ["ACKNOWLEDGED", "ALERT_EVENTS", "ANNOUNCED_XID", "EVENT_XID_INDEX", "BILLING_EVENTS", "DASHBOARD_ACTION", "OPENED", "PageDue", "StaffChatPost",
           "StaffChatRepository"]
