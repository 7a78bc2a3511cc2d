"""What staff do to a ticket: reply, ask for clarification, resolve, link an unverified ticket.

Every action is one transaction. A staff reply goes to the customer over the
ticket's own channel through the outbox; the first one records the first
response (R8: the automatic acknowledgement never does; a request for
clarification does) and cancels the pending reminders; so does the answer to
a customer's follow-up question (R24: its response is recorded). Asking for
clarification pauses the resolution clock until the customer answers (R14; the
intake resumes it).

Every staff response goes through :func:`record_response`: a reply when it is
queued, an answered phone call when it is logged (:mod:`bot.calls`). A reply
that then fails for good (bounced, refused, needs staff) goes through
:func:`reply_failed`: unless another response stands, the ticket is unanswered
again, its reminders are planned again from the original deadline (R16), and
staff are told (event ``response_undone``, posted to the staff chat).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.texts import reply_subject
from channels.messages import ChannelName, utc_now
from sla_engine.deadlines import Pause, first_response_due, reminder_schedule, resolution_window
from sla_engine.errors import PolicyError
from sla_engine.policy import Preset, Priority, SlaTerms, queue_rank
from storage.database import Database, Session
from storage.direct import Direct
from storage.records import (
    CALLBACK_SPEC,
    OPEN_STATES,
    OutboundDraft,
    TicketRecord,
    TicketState,
    follow_up_spec,
)
from storage.repositories import (
    AccountRepository,
    OutboxRepository,
    ReminderRepository,
    TicketRepository,
)

TAKEN, NOTE, REOPENED, LINKED = "taken", "note", "reopened", "linked"  # events of the audit trail
RESPONSE_UNDONE = "response_undone"  # the event that tells staff a reply failed and the ticket is unanswered again


@dataclass(frozen=True)
class Recorded:
    """What a staff response answered: the ticket's first question (R8), or a follow-up question (R24)."""

    first: bool
    follow_up: bool


def record_response(source: Session | Direct, ticket: TicketRecord, now: datetime, *,
                    at: datetime | None = None) -> Recorded:
    """A staff response on ``ticket`` (a reply queued, an answered call) made ``at`` (default ``now``). The first
    one records the first response and cancels the pending reminders (R8, R16); one while a follow-up question
    waits answers that question and cancels its reminders, a missed call's callback keeping its own rule (R24)."""
    first = ticket.first_responded_at is None
    follow_up = not first and ticket.followup_at is not None
    if not (first or follow_up):
        return Recorded(False, False)
    when = at or now
    values: dict[str, object] = {"responded_at": when, "followup_at": None, "updated_at": now}
    if first:
        values["first_responded_at"] = when
    TicketRepository(source).update_ticket(ticket.id, **values)
    if first:
        ReminderRepository(source).cancel_for(ticket.id, now)
    else:
        ReminderRepository(source).cancel_deadline_reminders(ticket.id, now, CALLBACK_SPEC)
    return Recorded(first, follow_up)


def reply_failed(source: Session | Direct, message_id: int, now: datetime) -> bool:
    """A message failed for good: when it was a staff reply and no other response stands, the ticket is unanswered
    again, its reminders planned again from the original deadline, and staff told; True when it was undone."""
    tickets = TicketRepository(source)
    found = tickets.staff_message(message_id)
    if found is None:
        return False
    ticket_id, purpose = found
    ticket = tickets.get(ticket_id)
    follow_up = tickets.follow_up_answered_by(ticket_id, message_id)
    if follow_up is not None:
        return _follow_up_waits_again(source, ticket, message_id, follow_up, now)
    if (ticket.first_responded_at is None or ticket.state not in OPEN_STATES
            or tickets.standing_responses(ticket_id, message_id)):
        return False
    values: dict[str, object] = {"first_responded_at": None, "updated_at": now}
    if purpose == "clarify" and ticket.state == TicketState.WAITING:
        # the question never reached the customer: nobody waits for their answer (R14)
        values.update(state=TicketState.OPEN.value, waiting_since=None, pauses=[
            [p.isoformat(), e.isoformat() if e else None] for p, e in ticket.pauses if e is not None])
    tickets.update_ticket(ticket_id, **values)
    planned = 0
    if ticket.terms and ticket.first_response_due is not None:
        schedule = reminder_schedule(ticket.received_at, SlaTerms.from_dict(ticket.terms),
                                     due=ticket.first_response_due)
        # what fell due meanwhile is not pinged late, but the breach still escalates (the notice says the rest)
        planned = ReminderRepository(source).plan_again(
            ticket_id, ((r.spec, r.at, r.escalate) for r in schedule if r.at > now or r.escalate))
    tickets.add_event(RESPONSE_UNDONE, now, ticket_id=ticket_id, message_id=message_id, data={
        "due": ticket.first_response_due.isoformat() if ticket.first_response_due else None,
        "reminders": planned, "staff_told": True})
    return True


def _follow_up_waits_again(source: Session | Direct, ticket: TicketRecord, message_id: int,
                           follow_up: tuple[datetime, int, datetime | None], now: datetime) -> bool:
    """The failed staff message had answered a follow-up question (R24): unless another response to it stands
    (or a newer question waits), the question waits again with its own deadline (``response_due`` kept), its
    reminders are planned again, and staff told; True when it was undone."""
    tickets = TicketRepository(source)
    asked_at, question_id, answered_before = follow_up
    if (ticket.state not in OPEN_STATES or ticket.followup_at is not None
            or tickets.standing_responses_since(ticket.id, message_id, asked_at)):
        return False
    tickets.update_ticket(ticket.id, followup_at=asked_at, responded_at=answered_before, updated_at=now)
    planned = 0
    if ticket.terms and ticket.response_due is not None:
        schedule = reminder_schedule(asked_at, SlaTerms.from_dict(ticket.terms), due=ticket.response_due)
        planned = ReminderRepository(source).plan_again(ticket.id, (
            (follow_up_spec(r.spec, question_id), r.at, r.escalate) for r in schedule if r.at > now or r.escalate))
    tickets.add_event(RESPONSE_UNDONE, now, ticket_id=ticket.id, message_id=message_id, data={
        "due": ticket.response_due.isoformat() if ticket.response_due else None, "reminders": planned,
        "staff_told": True, "follow_up": True})
    return True


class DeskError(Exception):
    """A staff action that cannot be done (unknown ticket, ticket closed)."""


@dataclass(frozen=True)
class ActionResult:
    """What a staff action did; ``delivery_state`` is where a reply stands (``queued``: in the outbox)."""

    ref: str
    message_id: int | None
    first_response: bool
    state: TicketState
    delivery_state: str | None = None
    follow_up: bool = False  # it answered a follow-up question of the customer (R24)


@dataclass(frozen=True)
class PriorityChange:
    """A priority set by staff (R25): the deadlines before and after, recomputed from receipt."""

    ref: str
    old: str | None
    new: str
    first_response_due: tuple[datetime | None, datetime | None]
    response_due: tuple[datetime | None, datetime | None]
    resolution_due_max: tuple[datetime | None, datetime | None]
    reminders: int
    note: str | None = None  # why the plan serves it at another priority than asked

    def to_dict(self) -> dict[str, object]:
        """The JSON of the change (also the data of its ``priority_changed`` event)."""
        def iso(pair: tuple[datetime | None, datetime | None]) -> dict[str, str | None]:
            return {"old": pair[0].isoformat() if pair[0] else None, "new": pair[1].isoformat() if pair[1] else None}

        return {"ref": self.ref, "old": self.old, "new": self.new, "first_response_due": iso(self.first_response_due),
                "response_due": iso(self.response_due), "resolution_due_max": iso(self.resolution_due_max),
                "reminders": self.reminders, "note": self.note}



class Desk:
    """Staff actions on tickets."""

    def __init__(self, db: Database, now: Callable[[], datetime] = utc_now) -> None:
        self.db = db
        self.now = now

    def _ticket(self, tickets: TicketRepository, ref: str) -> TicketRecord:
        ticket = tickets.by_ref(ref)
        if ticket is None:
            raise DeskError(f"no ticket {ref}")
        return ticket

    def reply(self, ref: str, text: str, staff: str, *, clarify: bool = False) -> ActionResult:
        """Send ``text`` to the ticket's contact person; ``clarify`` asks a question and pauses (R14)."""
        return self.db.run(lambda s: self.reply_in(s, ref, text, staff, clarify=clarify))

    def reply_in(self, s: Session, ref: str, text: str, staff: str, *, clarify: bool = False,
                 purpose: str | None = None) -> ActionResult:
        """:meth:`reply` inside the caller's transaction; ``purpose`` names the message (``quote``, ...)."""
        tickets = TicketRepository(s)
        ticket = self._ticket(tickets, ref)
        if ticket.state not in OPEN_STATES:
            raise DeskError(f"{ticket.ref} is {ticket.state}; reopen it before replying")
        now = self.now()
        purpose = purpose or ("clarify" if clarify else "reply")
        message_id = self.send(s, ticket, text, purpose, staff=staff)
        recorded = record_response(s, ticket, now)  # R8: a reply counts when it is queued; R24: a follow-up too
        first, follow_up = recorded.first, recorded.follow_up
        values: dict[str, object] = {"updated_at": now}
        if clarify and not (ticket.state == TicketState.WAITING and ticket.waiting_since is not None):
            # a second question while already waiting keeps the one open pause (R14): no overlap
            values["state"] = TicketState.WAITING.value
            values["waiting_since"] = now
            values["pauses"] = [[p.isoformat(), e.isoformat() if e else None] for p, e in ticket.pauses] + [
                [now.isoformat(), None]]
        tickets.update_ticket(ticket.id, **values)
        tickets.add_event(purpose, now, ticket_id=ticket.id, message_id=message_id, actor=staff,
                          data={"first_response": first, "follow_up": follow_up})
        return ActionResult(ticket.ref, message_id, first, TicketState.WAITING if clarify else ticket.state,
                            tickets.delivery_state(message_id), follow_up)

    def send(self, s: Session, ticket: TicketRecord, text: str, purpose: str, *, staff: str | None = None) -> int:
        """Queue ``text`` to the ticket's contact person over its own channel; the message id.

        Without ``staff`` the message is automatic (a notice from slabot): it records no first response.
        """
        inbound = [m for m in TicketRepository(s).messages(ticket.id) if m.direction == "in"]
        recipient = ticket.thread_key or (inbound[-1].sender if inbound else None)
        if recipient is None:
            raise DeskError(f"{ticket.ref} has no address to reply to")
        email = ticket.channel == ChannelName.EMAIL.value
        return OutboxRepository(s).queue(OutboundDraft(
            channel=ticket.channel, recipient=recipient, text=text, purpose=purpose, ticket_id=ticket.id,
            ticket_ref=ticket.ref, account_id=ticket.account_id, contact_id=ticket.contact_id,
            subject=reply_subject(ticket.subject, ticket.ref, "nl") if email else None, staff=staff,
            in_reply_to=inbound[-1].external_id if inbound else None,
            references=tuple(m.external_id for m in inbound if m.external_id),
        ), self.now())

    def resolve(self, ref: str, staff: str) -> ActionResult:
        def work(s: Session) -> ActionResult:
            tickets = TicketRepository(s)
            ticket = self._ticket(tickets, ref)
            now = self.now()
            tickets.update_ticket(ticket.id, state=TicketState.RESOLVED.value, resolved_at=now, updated_at=now,
                                  waiting_since=None)
            ReminderRepository(s).cancel_for(ticket.id, now)
            tickets.add_event("resolved", now, ticket_id=ticket.id, actor=staff)
            return ActionResult(ticket.ref, None, False, TicketState.RESOLVED)

        return self.db.run(work)

    def flag_release(self, ref: str, staff: str, needs_release: bool = True) -> ActionResult:
        """Mark that an IT release is needed: the ticket leaves the resolution clock (R13)."""
        def work(s: Session) -> ActionResult:
            tickets = TicketRepository(s)
            ticket = self._ticket(tickets, ref)
            now = self.now()
            values: dict[str, object] = {"needs_release": needs_release, "updated_at": now}
            if ticket.terms:
                terms = SlaTerms.from_dict(ticket.terms)
                window = resolution_window(ticket.received_at, terms,
                                           pauses=[Pause(p, e) for p, e in ticket.pauses],
                                           needs_release=needs_release, as_of=now)
                values["resolution_due_min"], values["resolution_due_max"] = window.earliest, window.latest
            tickets.update_ticket(ticket.id, **values)
            tickets.add_event("needs_release" if needs_release else "release_cleared", now, ticket_id=ticket.id,
                              actor=staff)
            return ActionResult(ticket.ref, None, False, ticket.state)

        return self.db.run(work)

    def set_priority(self, ref: str, name: str, staff: str, preset: Preset) -> PriorityChange:
        """Give the ticket another priority of the preset's matrix (R25): its deadlines are recomputed from
        receipt on the terms of the day it came in (first response, the current response deadline, the
        resolution window), its reminders planned again, and its timeline says old and new deadline."""
        return self.db.run(lambda s: self._set_priority(s, ref, name, staff, preset))

    def _set_priority(self, s: Session, ref: str, name: str, staff: str, preset: Preset) -> PriorityChange:
        tickets = TicketRepository(s)
        ticket = self._ticket(tickets, ref)
        try:
            level = preset.priority(name)
        except PolicyError as exc:
            raise DeskError(str(exc)) from None
        if ticket.state not in OPEN_STATES:
            raise DeskError(f"{ticket.ref} is {ticket.state}; reopen it before changing its priority")
        if not ticket.terms:
            raise DeskError(f"{ticket.ref} runs on no SLA terms (an unverified ticket): link it to an account first")
        now = self.now()
        old_terms = SlaTerms.from_dict(ticket.terms)
        served, note = preset.served(old_terms.plan, level.name)
        assert served is not None
        try:
            terms = preset.reprioritised(old_terms, served)
        except PolicyError as exc:
            raise DeskError(str(exc)) from None
        first_due = first_response_due(ticket.received_at, terms)
        if ticket.followup_at is not None:  # a follow-up question waits (R24): its deadline from its arrival
            response_due = first_response_due(ticket.followup_at, terms)
        elif ticket.response_due is None or ticket.response_due == ticket.first_response_due:
            response_due = first_due
        else:  # an answered follow-up question keeps the deadline it was answered against
            response_due = ticket.response_due
        window = resolution_window(ticket.received_at, terms, pauses=[Pause(p, e) for p, e in ticket.pauses],
                                   needs_release=ticket.needs_release, as_of=now)
        reasons = [f"set by {staff}"] + ([note] if note else [])
        tickets.update_ticket(
            ticket.id, terms=terms.to_dict(), sla_priority=served, priority_rule="staff", priority_reasons=reasons,
            first_response_due=first_due, response_due=response_due, resolution_due_min=window.earliest,
            resolution_due_max=window.latest, updated_at=now)
        planned = self._replan(s, ticket, terms, response_due, now)
        zone = preset.service_calendar(terms.plan).zone

        def local(*pair: datetime | None) -> tuple[datetime | None, datetime | None]:
            return pair[0].astimezone(zone) if pair[0] else None, pair[1].astimezone(zone) if pair[1] else None

        change = PriorityChange(ticket.ref, ticket.sla_priority, served, local(ticket.first_response_due, first_due),
                                local(ticket.current_due, response_due), local(ticket.resolution_due_max, window.latest),
                                planned, note)
        tickets.add_event("priority_changed", now, ticket_id=ticket.id, actor=staff, data=change.to_dict())
        return change

    @staticmethod
    def _replan(s: Session, ticket: TicketRecord, terms: SlaTerms, due: datetime | None, now: datetime) -> int:
        """The reminders of the question that waits, planned again for its new deadline; how many."""
        reminders = ReminderRepository(s)
        reminders.cancel_deadline_reminders(ticket.id, now, CALLBACK_SPEC)
        if due is None or not ticket.awaiting_response:
            return 0
        if ticket.followup_at is not None:
            asked_at = ticket.followup_at
            question = next((m.id for m in reversed(TicketRepository(s).messages(ticket.id))
                             if m.direction == "in" and m.at == asked_at), None)
            items = [(follow_up_spec(r.spec, question) if question else r.spec, r.at, r.escalate)
                     for r in reminder_schedule(asked_at, terms, due=due)]
        else:
            items = [(r.spec, r.at, r.escalate) for r in reminder_schedule(ticket.received_at, terms, due=due)]
        # what fell due already is not pinged late, but the breach still escalates
        return reminders.plan_again(ticket.id, ((spec, at, escalate) for spec, at, escalate in items
                                                if at > now or escalate))

    # -- the rest of the desk: take or assign, notes, reopen, link (one path for chat, dashboard and CLI) ---------

    def event(self, ref: str, kind: str, staff: str, data: dict[str, object] | None = None) -> str:
        """An event of ``kind`` on the ticket ``ref`` by ``staff`` (taken, acknowledged, a note); its reference."""
        def work(s: Session) -> str:
            tickets = TicketRepository(s)
            ticket = self._ticket(tickets, ref)
            tickets.add_event(kind, self.now(), ticket_id=ticket.id, actor=staff, data=dict(data or {}))
            return ticket.ref

        return self.db.run(work)

    def take(self, ref: str, staff: str, *, assignee: str | None = None) -> str:
        """``staff`` takes the ticket, or gives it to ``assignee``: the reports count it for that person."""
        if assignee is None or assignee == staff:
            return self.event(ref, TAKEN, staff)
        return self.event(ref, TAKEN, assignee, {"assigned_by": staff})

    def note(self, ref: str, staff: str, text: str) -> str:
        """An internal note: staff see it, the customer never does."""
        if not text.strip():
            raise DeskError("a note needs a text")
        return self.event(ref, NOTE, staff, {"text": text.strip()})

    def reopen(self, ref: str, staff: str) -> ActionResult:
        """A resolved ticket open again (its deadlines as they were; a new question of the customer sets its own)."""
        def work(s: Session) -> ActionResult:
            tickets = TicketRepository(s)
            ticket = self._ticket(tickets, ref)
            if ticket.state != TicketState.RESOLVED:
                raise DeskError(f"{ticket.ref} is {ticket.state}, not resolved")
            now = self.now()
            state = TicketState.OPEN if ticket.account_id is not None else TicketState.UNVERIFIED
            tickets.update_ticket(ticket.id, state=state.value, resolved_at=None, updated_at=now)
            tickets.add_event(REOPENED, now, ticket_id=ticket.id, actor=staff)
            return ActionResult(ticket.ref, None, False, state)

        return self.db.run(work)

    def link(self, ref: str, account_name: str, staff: str, preset: Preset) -> ActionResult:
        """An unverified ticket (R4) linked to an account: it gets the account's plan, its SLA terms and deadlines
        from the moment it was received, its reminders, and the account's contact with the sender's address as
        its contact person (none when the address is not on the account yet)."""
        def work(s: Session) -> ActionResult:
            tickets, accounts = TicketRepository(s), AccountRepository(s)
            ticket = self._ticket(tickets, ref)
            if ticket.state != TicketState.UNVERIFIED:
                raise DeskError(f"{ticket.ref} is {ticket.state}: only an unverified ticket is linked")
            account = accounts.by_name(account_name.strip())
            if account is None:
                raise DeskError(f"no account {account_name!r}")
            try:
                plan = preset.plan(account.plan)
            except PolicyError as exc:
                raise DeskError(str(exc)) from exc
            zone = next(iter(preset.calendars.values())).zone
            terms = preset.terms(plan, ticket.received_at.astimezone(zone).date())
            due = first_response_due(ticket.received_at, terms)
            window = resolution_window(ticket.received_at, terms)
            key = ticket.thread_key or ""
            contact = next((c for c, a in accounts.find("phone" if key.startswith("+") else "email", key)
                            if a.id == account.id), None)
            now = self.now()
            reasons = [*ticket.reasons, f"linked to {account.name} (plan {plan.name}) by {staff} (R4)"]
            tickets.update_ticket(
                ticket.id, account_id=account.id, contact_id=contact.id if contact else None, plan=plan.name,
                state=TicketState.OPEN.value, terms=tickets.terms_value(terms.to_dict()),
                queue_priority=queue_rank(plan, Priority(ticket.priority)), first_response_due=due, response_due=due,
                resolution_due_min=window.earliest, resolution_due_max=window.latest, reasons=reasons,
                updated_at=now)
            if due is not None and ticket.first_responded_at is None:
                ReminderRepository(s).plan_again(ticket.id, (
                    (r.spec, r.at, r.escalate) for r in reminder_schedule(ticket.received_at, terms, due=due)
                    if r.at > now or r.escalate))
            tickets.add_event(LINKED, now, ticket_id=ticket.id, actor=staff, data={
                "account": account.name, "plan": plan.name, "contact": contact.name if contact else None})
            return ActionResult(ticket.ref, None, False, TicketState.OPEN)

        return self.db.run(work)
