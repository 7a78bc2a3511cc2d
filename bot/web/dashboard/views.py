"""What the dashboard's pages show, built from the repositories' records (pure: time and texts are passed in).

- :func:`due_state`: where a ticket stands against its current response
  deadline, the first response's or a follow-up question's (R24): ``soon``
  within the configured window, ``breached`` past it, ``met``/``late`` once a
  staff member answered.
- :func:`queue_rows`: the open queue, in the order the repository gives it
  (critical Premium, critical Business, other critical, Premium, then by deadline: R15).
- :func:`timeline`: one ticket's messages, audit-trail events, reminders,
  hours and quotes in time order.

The report page renders :func:`bot.reports.report_data` as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal

from bot.i18n import Language
from bot.staff_texts import EVENT_SENTENCES
from storage.records import (
    InvoiceLineRecord,
    MessageRecord,
    QuoteRecord,
    ReminderRecord,
    TicketRecord,
    TicketState,
    TimeEntryRecord,
    reminder_rule,
)

HIDDEN_EVENTS = frozenset({"dashboard_action"})  # bookkeeping for the staff chat: the action's own event shows
DueState = Literal["none", "ok", "soon", "breached", "met", "late"]
ItemKind = Literal["in", "out", "event", "reminder", "hours", "quote"]


def due_state(ticket: TicketRecord, now: datetime, soon: timedelta) -> DueState:
    """Where ``ticket`` stands against its current response deadline at ``now``: the first response's, or a
    follow-up question's (R24)."""
    due = ticket.current_due
    if due is None:
        return "none"
    answered = ticket.current_answer
    if answered is not None:
        return "met" if answered <= due else "late"
    if now >= due:
        return "breached"
    return "soon" if due - now <= soon else "ok"


def short_when(instant: datetime, language: Language, zone: ZoneInfo) -> str:
    """``ma 23 nov 10:00`` / ``Mon 23 Nov 10:00`` in ``zone``."""
    return format_datetime(instant, "EEE d MMM HH:mm", tzinfo=zone, locale=language)


def money(amount: Decimal, language: Language) -> str:
    return format_currency(amount, "EUR", locale=language)


def hours_text(value: Decimal, language: Language) -> str:
    return format_decimal(value.normalize(), locale=language)


@dataclass(frozen=True)
class QueueRow:
    """One open ticket in the queue."""

    ref: str
    account: str | None
    contact: str | None
    plan: str | None
    premium: bool
    priority: str
    kind: str
    state: TicketState
    channel: str
    subject: str | None
    received_at: datetime
    due: datetime | None  # the current response deadline (R24)
    answered_at: datetime | None  # when staff answered the latest question; None while it waits
    due_state: DueState
    first_response_due: datetime | None = None
    first_responded_at: datetime | None = None
    follow_up: bool = False  # the deadline is a follow-up question's (R24)

    def as_json(self) -> dict[str, Any]:
        def iso(instant: datetime | None) -> str | None:
            return None if instant is None else instant.isoformat()

        return {"ref": self.ref, "account": self.account, "contact": self.contact, "plan": self.plan,
                "premium": self.premium, "priority": self.priority, "kind": self.kind, "state": self.state,
                "channel": self.channel, "subject": self.subject, "received_at": iso(self.received_at),
                "first_response_due": iso(self.first_response_due),
                "first_responded_at": iso(self.first_responded_at), "response_due": iso(self.due),
                "responded_at": iso(self.answered_at), "follow_up": self.follow_up, "due_state": self.due_state}


def _premium(ticket: TicketRecord) -> bool:
    """Whether the ticket's plan itself goes first (Premium's ``queue_priority``), whatever the outage's place."""
    plan = (ticket.terms or {}).get("plan") or {}
    return int(plan.get("queue_priority") or 0) > 0


def queue_rows(tickets: Iterable[TicketRecord], now: datetime, soon: timedelta,
               plan_title: Callable[[str | None], str | None]) -> list[QueueRow]:
    """The queue's rows, in the order given (``TicketRepository.queue(TicketState.OPEN)``)."""
    return [QueueRow(t.ref, t.account, t.contact, plan_title(t.plan), _premium(t), t.priority, t.kind,
                     t.state, t.channel, t.subject, t.received_at, t.current_due, t.current_answer,
                     due_state(t, now, soon), t.first_response_due, t.first_responded_at, t.asked_again)
            for t in tickets]


def answered_apart(rows: list[QueueRow]) -> list[QueueRow]:
    """The rows in the order given (R15), those whose latest question staff answered moved below the others (they
    wait for nobody at the desk)."""
    return [r for r in rows if r.answered_at is None] + [r for r in rows if r.answered_at is not None]


@dataclass(frozen=True)
class TimelineItem:
    """One line of a ticket's timeline."""

    at: datetime
    kind: ItemKind
    title: str
    state: str | None = None  # a message's delivery state, a reminder's state, an entry's billing status
    text: str | None = None  # a message's text, an entry's note
    details: tuple[str, ...] = ()  # small facts (channel, staff, automatic, data of an event)
    reasons: tuple[str, ...] = ()  # why slabot decided what it did
    order: int = field(default=0, compare=False)  # keeps items of one instant in the order they were added


def _message_item(msg: MessageRecord, words: Mapping[str, str], shown: tuple[str, ...]) -> TimelineItem:
    incoming = msg.direction == "in"
    who = (msg.sender if incoming else msg.recipient) or "?"
    details = [msg.channel]
    if msg.subject:
        details.append(msg.subject)
    if msg.auto:
        details.append(words["automatic"])
    if msg.staff:
        details.append(words["by_staff"].format(staff=msg.staff))
    if msg.purpose:
        details.append(msg.purpose)
    if msg.decision:
        details.append(msg.decision)
    details.extend(a.filename or a.content_type for a in msg.attachments)
    return TimelineItem(msg.at, "in" if incoming else "out",
                        words["message_in" if incoming else "message_out"].format(who=who),
                        state=msg.delivery_state, text=msg.text, details=tuple(details),
                        reasons=() if msg.reasons == shown else msg.reasons)


class _Blank(dict[str, Any]):
    """Event data for a sentence: a key the event lacks reads as "?"."""

    def __missing__(self, key: str) -> str:
        return "?"


def _event_item(event: Mapping[str, Any], language: Language) -> TimelineItem:
    """An event of the audit trail as a sentence (:data:`bot.staff_texts.EVENT_SENTENCES`), with the note's text,
    a classification's reason or a decision's reasons under it; internal fields stay out."""
    data: Mapping[str, Any] = event.get("data") or {}
    kind = str(event["kind"])
    reasons = data.get("reasons")
    sentence = EVENT_SENTENCES[language].get(kind)
    title = (sentence.format_map(_Blank({**data, "actor": event["actor"]})) if sentence
             else f"{kind.replace('_', ' ')} ({event['actor']})")
    text = data.get("text") if kind == "note" else None
    extra = (str(data["reason"]),) if data.get("reason") else ()
    return TimelineItem(event["at"], "event", title, text=str(text) if text else None,
                        reasons=(*(str(r) for r in reasons), *extra) if isinstance(reasons, list) and reasons
                        else extra)


def timeline(ticket: TicketRecord, events: Sequence[Mapping[str, Any]], reminders: Sequence[ReminderRecord],
             entries: Sequence[TimeEntryRecord], quote: QuoteRecord | None, words: Mapping[str, str],
             language: Language) -> list[TimelineItem]:
    """Everything that happened on ``ticket`` (and the reminders still planned), oldest first."""
    items: list[TimelineItem] = [_message_item(msg, words, ticket.reasons) for msg in ticket.messages]
    items.extend(_event_item(event, language) for event in events if event["kind"] not in HIDDEN_EVENTS)
    for reminder in reminders:
        rule = reminder_rule(reminder.spec)
        items.append(TimelineItem(reminder.due_at, "reminder", words["reminder"].format(spec=rule),
                                  state=reminder.state,
                                  details=(words["reminder_escalate"],) if reminder.escalate else ()))
    for entry in entries:
        items.append(TimelineItem(entry.at, "hours", words["hours"].format(
            hours=hours_text(entry.hours, language), activity=words.get(f"activity_{entry.activity}", entry.activity),
            staff=entry.staff), state=entry.status, text=entry.note))
    if quote is not None:
        items.append(TimelineItem(quote.made_at, "quote", words["quote"].format(
            hours=hours_text(quote.estimated_hours, language), billed=hours_text(quote.billed_hours, language),
            rate=money(quote.rate, language), rate_kind=quote.rate_kind, total=money(quote.total, language)),
            state=quote.state, details=(words["by_staff"].format(staff=quote.staff),)))
    numbered = [replace(item, order=i) for i, item in enumerate(items)]
    return sorted(numbered, key=lambda item: (item.at, item.order))


@dataclass(frozen=True)
class InvoiceLineRow:
    day: date
    description: str
    hours: str | None
    amount: str
    invoice: str


def invoice_rows(lines: Iterable[InvoiceLineRecord], language: Language) -> list[InvoiceLineRow]:
    return [InvoiceLineRow(line.day, line.description, None if line.hours is None else hours_text(line.hours, language),
                           money(line.amount, language), line.invoice) for line in lines]
