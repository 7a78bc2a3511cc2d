"""The SLA report's query: the tickets received in a period, with their times and who worked on them.

Three statements however many tickets: the tickets (with their account's staff
member), the last ``taken`` event of each, and the first staff reply of each.
Tickets without a plan (unverified senders) are not on any SLA clock and are
left out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from storage import models as m
from storage.records import ReportTicketRecord, TicketState
from storage.repositories import Repository


def _pauses(raw: list[list[str]] | None) -> tuple[tuple[datetime, datetime | None], ...]:
    return tuple((datetime.fromisoformat(p[0]), datetime.fromisoformat(p[1]) if p[1] else None) for p in raw or ())


class ReportRepository(Repository):
    """See the module docstring."""

    def received_between(self, start: datetime, end: datetime, plan: str | None = None) -> list[ReportTicketRecord]:
        """Tickets with a plan received in ``[start, end)``, oldest first; only ``plan``'s when given."""
        ids: Select[int] = select(m.Ticket.id).where(
            m.Ticket.received_at >= start, m.Ticket.received_at < end, m.Ticket.plan.is_not(None))
        if plan is not None:
            ids = ids.where(m.Ticket.plan == plan)
        s = self.session
        taken: dict[int, str] = {}
        for ticket_id, actor in s.execute(select(m.Event.ticket_id, m.Event.actor).where(
                m.Event.kind == "taken", m.Event.ticket_id.in_(ids)).order_by(m.Event.id)):
            if ticket_id is not None:
                taken[ticket_id] = str(actor)  # the last one wins: the ticket's current owner
        replied: dict[int, str] = {}
        for ticket_id, staff in s.execute(select(m.Message.ticket_id, m.Message.staff).where(
                m.Message.direction == "out", m.Message.auto.is_(False), m.Message.staff.is_not(None),
                m.Message.ticket_id.in_(ids)).order_by(m.Message.at, m.Message.id)):
            if ticket_id is not None:
                replied.setdefault(ticket_id, str(staff))
        rows = s.execute(
            select(m.Ticket, m.Account.name, m.Account.staff)
            .outerjoin(m.Account, m.Account.id == m.Ticket.account_id)
            .where(m.Ticket.id.in_(ids)).order_by(m.Ticket.received_at, m.Ticket.id)
        ).all()
        return [self._record(t, account, staff, taken.get(t.id), replied.get(t.id)) for t, account, staff in rows]

    @staticmethod
    def _record(t: m.Ticket, account: str | None, staff: str | None, taken_by: str | None,
                first_responder: str | None) -> ReportTicketRecord:
        terms: dict[str, Any] | None = t.terms or None
        assert t.plan is not None
        return ReportTicketRecord(
            id=t.id, ref=t.ref, plan=t.plan, priority=t.priority, state=TicketState(t.state), account=account,
            terms=terms, received_at=t.received_at, first_responded_at=t.first_responded_at, resolved_at=t.resolved_at,
            needs_release=bool(t.needs_release), pauses=_pauses(t.pauses), assigned_staff=staff,
            taken_by=taken_by, first_responder=first_responder, sla_priority=t.sla_priority,
        )
