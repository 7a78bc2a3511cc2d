"""The outgoing webhooks' storage: endpoints, events queued in the transaction of their change, deliveries.

How it works
------------
``webhook_endpoints`` mirrors the config's ``[[webhooks]]`` (name and events; :func:`sync_endpoints` on start), so
that every process that stores a change (``slabot run``, a staff action from the command line) queues the same
deliveries. :func:`record_event` is called inside the change's own transaction (a message stored, a ticket opened
or resolved, a deadline breached): when an endpoint takes the event type it writes one ``webhook_events`` row and
one ``webhook_deliveries`` row per such endpoint; otherwise nothing. A delivery is claimed by one worker at a time
(``pending`` -> ``sending`` in one UPDATE; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), and ends ``delivered`` or,
after its retries, ``failed``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage import models as m
from storage.direct import Direct


class WebhookState(StrEnum):
    """Where a delivery stands."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


# the audit trail's event kinds that are webhook events too
EVENT_TYPES = {"ticket_opened": "ticket.created", "resolved": "ticket.resolved"}
MESSAGE_CREATED = "message.created"
SLA_BREACHED = "sla.breached"

_PENDING, _SENDING = f"'{WebhookState.PENDING.value}'", f"'{WebhookState.SENDING.value}'"
_SUBSCRIBED = "SELECT {what} FROM webhook_endpoints WHERE events LIKE :pattern"
_RECORDED = ("INSERT INTO webhook_events (uid, type, at, ticket_id, message_id, dedupe, created_at) "
             "SELECT :uid, :type, :at, :ticket, :message, :dedupe, :now "
             f"WHERE EXISTS ({_SUBSCRIBED.format(what='1')})")
_FAN_OUT = ("INSERT INTO webhook_deliveries (event_id, endpoint, state, attempts, next_attempt_at, created_at) "
            f"{_SUBSCRIBED.format(what=f':event, name, {_PENDING}, 0, :now, :now')}")
_CLAIMED = ("d.id, d.endpoint, d.attempts, d.created_at, e.id, e.uid, e.type, e.at, e.ticket_id, e.message_id, "
            "e.body")
_DUE = (f"SELECT id FROM webhook_deliveries WHERE state = {_PENDING} AND next_attempt_at <= :now "
        "ORDER BY next_attempt_at, id LIMIT 1")
_CLAIM = (f"UPDATE webhook_deliveries SET state = {_SENDING}, claimed_by = :worker, claimed_at = :now, "
          f"attempts = attempts + 1 WHERE id = ({{due}}) AND state = {_PENDING} RETURNING id")


@dataclass(frozen=True)
class Delivery:
    """A claimed delivery with its event."""

    id: int
    endpoint: str
    attempts: int  # this one included
    created_at: datetime
    event_id: int
    uid: str
    type: str
    at: datetime
    ticket_id: int | None
    message_id: int | None
    body: str | None  # None until the first delivery of the event makes it


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery as ``slabot webhooks list`` and the tests see it."""

    endpoint: str
    uid: str
    type: str
    ticket_id: int | None
    state: WebhookState
    attempts: int
    last_status: int | None
    last_error: str | None


def sync_endpoints(session: Session, endpoints: Mapping[str, Sequence[str]]) -> None:
    """Make ``webhook_endpoints`` the config's endpoints (name -> event types)."""
    session.execute(delete(m.WebhookEndpoint).where(m.WebhookEndpoint.name.not_in(list(endpoints))))
    for name, events in endpoints.items():
        row = session.get(m.WebhookEndpoint, name) or m.WebhookEndpoint(name=name)
        row.events = " " + " ".join(events) + " "
        session.add(row)


def record_event(direct: Direct, type_: str, at: datetime, now: datetime, *, ticket_id: int | None = None,
                 message_id: int | None = None, dedupe: str | None = None) -> bool:
    """Queue the event ``type_`` for every endpoint that takes it, in the caller's transaction; False when none
    does (nothing written) or, with ``dedupe``, when that event was queued before."""
    events = m.WebhookEvent.__table__
    pattern = f"% {type_} %"
    sql = _RECORDED + (" ON CONFLICT (dedupe) DO NOTHING" if dedupe is not None else "") + " RETURNING id"
    row = direct.one(sql, {"uid": str(uuid.uuid4()), "type": type_, "at": direct.value(events, "at", at),
                           "ticket": ticket_id, "message": message_id, "dedupe": dedupe,
                           "now": direct.value(events, "created_at", now), "pattern": pattern})
    if row is None:
        return False
    direct.execute(_FAN_OUT, {"event": int(row[0]), "now": direct.value(events, "created_at", now),
                              "pattern": pattern})
    return True


# record_event's two statements after an INSERT of Direct.insert_then, in the same statement (PostgreSQL)
_RECORDED_AFTER = (
    "ev AS (INSERT INTO webhook_events (uid, type, at, ticket_id, message_id, dedupe, created_at) "
    "SELECT :_then_uid, :_then_type, :_then_at, :_then_ticket, {message}, NULL, :_then_now FROM new "
    "WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE events LIKE :_then_pattern) RETURNING id), "
    "fan AS (INSERT INTO webhook_deliveries (event_id, endpoint, state, attempts, next_attempt_at, created_at) "
    f"SELECT ev.id, e.name, {_PENDING}, 0, :_then_now, :_then_now FROM ev, webhook_endpoints e "
    "WHERE e.events LIKE :_then_pattern)")


def insert_recording(direct: Direct, table: Any, values: Mapping[str, Any], type_: str, at: datetime,
                     now: datetime, *, ticket_id: int | None, message_id: int | None = None,
                     own_id: bool = False, returning: bool = True) -> int | None:
    """Insert one row of ``table`` and :func:`record_event` ``type_`` about it (its ``message_id`` the new row's
    own id with ``own_id``, a message's): on PostgreSQL in one statement, one round trip where there would be three (the
    insert, the event, its deliveries); on SQLite, whose statements cost no round trip, one after the other.
    The new row's id; with ``returning=False`` (not ``own_id``) None, and on PostgreSQL the statement is sent, not
    waited for (:meth:`storage.direct.Direct.send`)."""
    if direct.dialect.name == "sqlite":
        row_id = direct.insert(table, values)
        record_event(direct, type_, at, now, ticket_id=ticket_id, message_id=row_id if own_id else message_id)
        return row_id if returning or own_id else None
    events = m.WebhookEvent.__table__
    then = _RECORDED_AFTER.format(message="new.id" if own_id else ":_then_message")
    params = {"_then_uid": str(uuid.uuid4()), "_then_type": type_, "_then_at": direct.value(events, "at", at),
              "_then_ticket": ticket_id, "_then_now": direct.value(events, "created_at", now),
              "_then_pattern": f"% {type_} %"}
    if not own_id:
        params["_then_message"] = message_id
    return direct.insert_then(table, values, then, params, returning=returning or own_id)


class WebhookRepository:
    """The deliveries' claims and outcomes, on plain statements."""

    def __init__(self, direct: Direct) -> None:
        self.direct = direct

    def claim_next(self, worker: str, now: datetime) -> Delivery | None:
        """Claim the next due delivery, or None when none is due."""
        d = self.direct
        lock = "" if d.dialect.name == "sqlite" else " FOR UPDATE SKIP LOCKED"
        claimed = d.one(_CLAIM.format(due=_DUE + lock), {
            "worker": worker, "now": d.value(m.WebhookDelivery.__table__, "claimed_at", now)})
        if claimed is None:
            return None
        row = d.one(f"SELECT {_CLAIMED} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id "
                    "WHERE d.id = :id", {"id": int(claimed[0])})
        assert row is not None
        made = d.decode(m.WebhookDelivery.__table__, ("created_at",), (row[3],))["created_at"]
        at = d.decode(m.WebhookEvent.__table__, ("at",), (row[7],))["at"]
        return Delivery(int(row[0]), str(row[1]), int(row[2]), made, int(row[4]), str(row[5]), str(row[6]), at,
                        row[8], row[9], row[10])

    def keep_body(self, event_id: int, body: str) -> str:
        """Store the event's body unless another worker did first; the body stored."""
        d = self.direct
        d.execute("UPDATE webhook_events SET body = :body WHERE id = :id AND body IS NULL", {"body": body,
                                                                                            "id": event_id})
        return str(d.scalar("SELECT body FROM webhook_events WHERE id = :id", {"id": event_id}))

    def finish(self, delivery_id: int, state: WebhookState, now: datetime, *, status: int | None = None,
               error: str | None = None, retry_at: datetime | None = None) -> None:
        """Record an attempt: delivered, failed, or back to pending until ``retry_at``."""
        values: dict[str, Any] = {"state": state.value, "claimed_by": None, "last_status": status,
                                  "last_error": error}
        if state is WebhookState.DELIVERED:
            values["delivered_at"] = now
        if retry_at is not None:
            values["next_attempt_at"] = retry_at
        self.direct.update(m.WebhookDelivery.__table__, delivery_id, values)

    def release_stale(self, before: datetime) -> int:
        """Deliveries a dead worker left ``sending``: pending again (a receiver de-duplicates by the event id)."""
        d = self.direct
        return int(d.execute(
            f"UPDATE webhook_deliveries SET state = {_PENDING}, claimed_by = NULL WHERE state = {_SENDING} "
            "AND claimed_at < :before", {"before": d.value(m.WebhookDelivery.__table__, "claimed_at", before)},
        ).rowcount)

    def breached(self, now: datetime, since: datetime, open_states: Iterable[str]) -> list[tuple[int, datetime]]:
        """Open tickets whose current response deadline passed between ``since`` and ``now`` without a staff
        response: (ticket id, deadline)."""
        d = self.direct
        states = ", ".join(f"'{s}'" for s in open_states)
        rows = d.execute(
            f"SELECT id, response_due FROM tickets WHERE state IN ({states}) AND response_due <= :now "
            "AND response_due > :since AND (first_responded_at IS NULL OR followup_at IS NOT NULL) ORDER BY id",
            {"now": d.value(m.Ticket.__table__, "response_due", now),
             "since": d.value(m.Ticket.__table__, "response_due", since)}).fetchall()
        return [(int(r[0]), d.decode(m.Ticket.__table__, ("response_due",), (r[1],))["response_due"])
                for r in rows]


def deliveries(session: Session) -> list[DeliveryRecord]:
    """Every delivery, oldest first."""
    rows = session.execute(select(m.WebhookDelivery, m.WebhookEvent).join(
        m.WebhookEvent, m.WebhookEvent.id == m.WebhookDelivery.event_id).order_by(m.WebhookDelivery.id)).all()
    return [DeliveryRecord(d.endpoint, e.uid, e.type, e.ticket_id, WebhookState(d.state), d.attempts,
                           d.last_status, d.last_error) for d, e in rows]


__all__ = ["EVENT_TYPES", "MESSAGE_CREATED", "SLA_BREACHED", "Delivery", "DeliveryRecord", "WebhookRepository",
           "WebhookState", "deliveries", "insert_recording", "record_event", "sync_endpoints"]
