"""Phone calls into the intake: ``slabot calls import FILE``, ``slabot calls log`` and the outage line's webhook.

The log is read by :mod:`channels.calls` (CSV or JSON, columns documented
there and in docs/calls.md). Each call goes through the intake pipeline like any
message: a new request for a known contact (or joining the caller's open phone
ticket), an unverified ticket for an unknown number; importing the same file
again adds nothing. A bad row is reported with its line and skipped; the good
rows still import.

A missed call that came in during the opening hours of the caller's plan (the
preset's office hours for an unknown number) gets a callback reminder for
staff, due at once, in the same transaction as the call (:func:`log_call`): it
goes out through the reminder service like any reminder, worded "call back
NUMBER", and is skipped when staff wrote to the ticket after the call. An
answered call from the same number on the same ticket cancels the callbacks
still planned for earlier missed calls. A call to the outage line (critical)
gets none: on-call is paged instead (R17).

An answered call is a response (R8, "telefonisch"): the staff member who took
it is recorded on the call's message, and the ticket's first response is the
call's time, through the same :func:`bot.desk.record_response` as a staff
reply (its reminders cancelled). The caller's acknowledgement then promises no
response deadline (template ``call_answered``). A call to the outage line
stays on on-call's pages until someone acknowledges it (R17), and a missed
call is no response. When the outage line puts the caller through and on-call
answers (:func:`answered_by_oncall`, from the ``<Dial>``'s action webhook),
that call is the ticket's response and on-call's acknowledgement: the pages stop.

A call staff made to a contact (``calls log --outbound --ticket REF``, or a
log row whose ``direction`` is outbound: it joins the open ticket of the
contact with the number called, and opens none) is stored as an outbound phone
message on the ticket (:func:`log_outbound`); answered, it is a response
through the same :func:`bot.desk.record_response`; missed, it is logged and is
no response.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from bot.accounts import Problem
from bot.desk import record_response
from bot.intake import IntakePipeline, IntakeResult, Outcome
from bot.reminders import CALLBACK, callback_spec
from channels.calls import Call, call_external_id, call_message, parse_call, read_rows
from channels.messages import ChannelName, DeliveryState
from sla_engine.calendar import BusinessCalendar
from sla_engine.policy import Preset, Priority
from storage.database import Session
from storage.direct import Direct
from storage.staffchat import ACKNOWLEDGED
from storage.records import OPEN_STATES
from storage.repositories import AccountRepository, ReminderRepository, TicketRepository

ON_A_TICKET = (Outcome.NEW_TICKET, Outcome.REPLY, Outcome.UNKNOWN_SENDER)
ANSWERED_BY_SOMEONE = "phone"  # who took an answered call whose log names no agent
OUTBOUND_CALL = "call_outbound"  # the purpose of an outbound call's message, and the event that logs it
ONCALL = "on-call"  # who took a call the outage line put through


@dataclass(frozen=True)
class LoggedCall:
    """What the intake decided about a call, and whether staff are reminded to call back."""

    result: IntakeResult
    callback: bool = False


@dataclass
class CallImport:
    """What an import did."""

    outcomes: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    callbacks: int = 0

    @property
    def ok(self) -> bool:
        """True when every row imported."""
        return not self.problems

    def summary(self) -> str:
        """One line: calls by outcome, rows rejected, callback reminders planned."""
        counted = ", ".join(f"{n} {o}" for o, n in sorted(self.outcomes.items())) or "no calls"
        callbacks = f"; {self.callbacks} callback reminders" if self.callbacks else ""
        return f"{sum(self.outcomes.values())} calls: {counted}; {len(self.problems)} rejected{callbacks}"


def opening_calendar(preset: Preset, plan: str | None) -> BusinessCalendar:
    """The opening hours that apply to a plan: its first-response calendar, else the preset's office hours."""
    chosen = preset.plan(plan) if plan is not None and plan in preset.plan_names else None
    target = chosen.first_response if chosen is not None else None
    name = target.calendar if target is not None else "office"
    return preset.calendars.get(name) or next(iter(preset.calendars.values()))


def log_call(pipeline: IntakePipeline, call: Call, raw: bytes = b"") -> LoggedCall:
    """One call through the intake, with its callback reminder in the same transaction (see the module docstring)."""
    planned: list[bool] = []

    def callbacks(d: Direct, result: IntakeResult) -> None:
        if result.outcome not in ON_A_TICKET or result.ticket_ref is None or result.message_id is None:
            return
        tickets, reminders = TicketRepository(d), ReminderRepository(d)
        ticket_id = tickets.id_for_ref(result.ticket_ref)
        assert ticket_id is not None
        if not call.missed:  # the caller was spoken to: earlier missed calls need no callback
            reminders.cancel_specs(ticket_id, CALLBACK, call.at, pipeline.now())
            if not call.critical:
                tickets.set_staff(result.message_id, call.agent or ANSWERED_BY_SOMEONE)
                record_response(d, tickets.get(ticket_id), pipeline.now(), at=call.at)
        elif not call.critical and opening_calendar(pipeline.preset, tickets.get(ticket_id).plan).is_open(call.at):
            reminders.plan(ticket_id, [(callback_spec(result.message_id), call.at, False)])
            planned.append(True)

    result = pipeline.ingest(call_message(call, raw), also=callbacks)
    return LoggedCall(result, bool(planned))


def answered_by_oncall(pipeline: IntakePipeline, call_id: str, answered_at: datetime) -> str | None:
    """On-call answered the outage-line call ``call_id`` (a CallSid) at ``answered_at``: the call's ticket gets its
    response (:func:`bot.desk.record_response`), and a critical one on-call's acknowledgement, so the pages stop
    (R8, R17). The ticket's reference; None when the call was not logged (a withheld number)."""
    def work(s: Session) -> str | None:
        tickets = TicketRepository(s)
        message_id = tickets.message_id_for(ChannelName.PHONE.value, "in", call_external_id(call_id))
        ticket_id = None if message_id is None else tickets.message(message_id).ticket_id
        if message_id is None or ticket_id is None:
            return None
        tickets.set_staff(message_id, ONCALL)
        ticket = tickets.get(ticket_id)
        now = pipeline.now()
        first = record_response(s, ticket, now, at=answered_at).first
        if first and ticket.priority == Priority.CRITICAL.value:
            tickets.add_event(ACKNOWLEDGED, now, ticket_id=ticket_id, message_id=message_id, actor=ONCALL,
                              data={"by": "phone"})
        return ticket.ref

    return pipeline.db.run(work)


@dataclass(frozen=True)
class OutboundLogged:
    """What logging an outbound call did: its ticket (None: no open ticket of a contact with that number),
    whether it was logged already, and whether it was the ticket's first response."""

    ref: str | None
    duplicate: bool = False
    first_response: bool = False


def log_outbound(pipeline: IntakePipeline, call: Call, ref: str | None = None) -> OutboundLogged:
    """A call staff made to a contact (``call.outbound``), on the ticket ``ref`` or else the open ticket of the
    contact whose number was called: an outbound phone message on the ticket (never sent: it is a record), and,
    answered, a response (:func:`bot.desk.record_response`, R8) that also ends the callbacks still planned. A
    missed one is logged and is no response. :class:`KeyError` for an unknown ``ref``."""
    def work(s: Session) -> OutboundLogged:
        tickets, accounts = TicketRepository(s), AccountRepository(s)
        external_id = call_external_id(call.call_id)
        if ref is not None:
            ticket_id = tickets.id_for_ref(ref)
            if ticket_id is None:
                raise KeyError(ref)
        else:
            assert call.called is not None
            ticket_id = next((found for contact, _ in accounts.find("phone", call.called)
                              if (found := tickets.open_ticket_of_contact(contact.id)) is not None), None)
            if ticket_id is None:
                return OutboundLogged(None)
        ticket = tickets.get(ticket_id)
        if tickets.message_id_for(ChannelName.PHONE.value, "out", external_id) is not None:
            return OutboundLogged(ticket.ref, duplicate=True)
        now = pipeline.now()
        recipient = call.called or (accounts.identity(ticket.contact_id, "phone") if ticket.contact_id else None)
        answered = not call.missed
        staff = call.agent or ANSWERED_BY_SOMEONE
        message_id = tickets.add_message(
            ticket_id=ticket.id, account_id=ticket.account_id, contact_id=ticket.contact_id, direction="out",
            channel=ChannelName.PHONE.value, external_id=external_id, sender=call.caller or None,
            recipient=recipient, subject="Telefoongesprek", text=replace(call, called=recipient).text(), at=call.at,
            auto=False, staff=staff if answered else None, purpose=OUTBOUND_CALL,
            delivery_state=(DeliveryState.DELIVERED if answered else DeliveryState.SENT).value, reasons=[],
            thread_refs=[], created_at=now)
        first = False
        if answered and ticket.state in OPEN_STATES:
            ReminderRepository(s).cancel_specs(ticket.id, CALLBACK, call.at, now)
            first = record_response(s, ticket, now, at=call.at).first
        tickets.add_event(OUTBOUND_CALL, now, ticket_id=ticket.id, message_id=message_id, actor=staff,
                          data={"answered": answered, "duration": call.duration, "first_response": first})
        return OutboundLogged(ticket.ref, first_response=first)

    return pipeline.db.run(work)


def import_calls(pipeline: IntakePipeline, path: Path) -> CallImport:
    """Every call of the log through the intake; bad rows reported, the rest imported."""
    report = CallImport()
    for line, row in read_rows(path):
        try:
            call = parse_call(row)
        except ValueError as exc:
            report.problems.append(Problem(line, str(exc), path.name))
            continue
        if call.outbound:  # staff called a contact: joins their open ticket, opens none
            out = log_outbound(pipeline, call)
            outcome = ("outbound_duplicate" if out.duplicate else "outbound" if out.ref else "outbound_no_ticket")
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
            continue
        logged = log_call(pipeline, call)
        outcome = logged.result.outcome.value
        report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
        report.callbacks += logged.callback
    return report


__all__ = ["CallImport", "LoggedCall", "OutboundLogged", "answered_by_oncall", "import_calls", "log_call",
           "log_outbound", "opening_calendar"]
