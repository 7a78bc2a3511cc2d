"""Domain values the repositories hand out (never ORM rows)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class TicketState(StrEnum):
    """Where a ticket stands. Open ones are in the queue: ``open`` (staff act next), ``waiting`` (for the
    customer's answer to a clarification question, R8: the resolution clock pauses), ``unverified`` (from a
    sender no account knows, R4: staff link it or not)."""

    OPEN = "open"
    WAITING = "waiting"
    UNVERIFIED = "unverified"
    RESOLVED = "resolved"


OPEN_STATES = (TicketState.OPEN, TicketState.WAITING, TicketState.UNVERIFIED)
CALLBACK_SPEC = "callback:"  # a reminder to call back a missed call: "callback:<message id of the call>"
FOLLOW_UP_MARK = "@"  # a follow-up question's reminder (R24): "<rule>@<message id of the question>", e.g. "75%@812"


def follow_up_spec(rule: str, message_id: int) -> str:
    """The spec of the reminder ``rule`` ("75%", "breach") for the follow-up question stored as ``message_id``."""
    return f"{rule}{FOLLOW_UP_MARK}{message_id}"


def reminder_rule(spec: str) -> str:
    """The rule of a reminder's spec: "75%" of "75%" and of a follow-up question's "75%@812"."""
    return spec.partition(FOLLOW_UP_MARK)[0]


class OutboxState(StrEnum):
    """An outbox row on its way to a channel: claimed by one dispatcher while ``sending``; ``unknown`` when
    the channel may or may not have taken it (reconciled, never sent twice blindly); ``needs_staff`` when only
    a person can get it through (WhatsApp's 24-hour window closed)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NEEDS_STAFF = "needs_staff"


class ReminderState(StrEnum):
    """A planned ping to staff (R16): claimed by one process, then sent exactly once, skipped (its deadline
    was met) or cancelled (the ticket moved on)."""

    PLANNED = "planned"
    CLAIMED = "claimed"
    SENT = "sent"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class QuoteState(StrEnum):
    """A quote for paid service (R19): one proposed at a time; a newer one supersedes it."""

    PROPOSED = "proposed"
    AGREED = "agreed"
    DECLINED = "declined"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class ContactRecord:
    id: int
    account_id: int
    name: str
    role: str  # contact | third_party
    authorised: bool
    language: str | None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()

    @property
    def may_open_requests(self) -> bool:
        return self.role == "contact" or self.authorised


@dataclass(frozen=True)
class AccountRecord:
    id: int
    name: str
    plan: str
    staff: str | None
    templates_delivered: date | None
    language: str
    monthly_hours: Decimal | None
    contacts: tuple[ContactRecord, ...] = ()
    billing_email: str | None = None


@dataclass(frozen=True)
class AccountInput:
    """An account as an import file states it."""

    name: str
    plan: str
    staff: str | None = None
    templates_delivered: date | None = None
    language: str = "nl"
    monthly_hours: Decimal | None = None
    contacts: tuple[ContactInput, ...] = ()
    billing_email: str | None = None


@dataclass(frozen=True)
class ContactInput:
    name: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    role: str = "contact"
    authorised: bool = True
    language: str | None = None


@dataclass(frozen=True)
class AttachmentRecord:
    id: int
    filename: str | None
    content_type: str
    size: int | None
    url: str | None
    fetched: bool
    error: str | None = None  # why it is not fetched (yet): the last download's error


@dataclass(frozen=True)
class MessageRecord:
    id: int
    ticket_id: int | None
    direction: str
    channel: str
    external_id: str | None
    sender: str | None
    recipient: str | None
    subject: str | None
    text: str
    at: datetime
    auto: bool
    purpose: str | None
    decision: str | None
    reasons: tuple[str, ...]
    delivery_state: str
    staff: str | None = None
    attachments: tuple[AttachmentRecord, ...] = ()


@dataclass(frozen=True)
class TicketRecord:
    id: int
    ref: str
    account_id: int | None
    account: str | None
    contact_id: int | None
    contact: str | None
    channel: str
    thread_key: str | None
    subject: str | None
    kind: str
    kind_rule: str | None
    kind_reasons: tuple[str, ...]
    priority: str
    state: TicketState
    plan: str | None
    queue_priority: int
    terms: dict[str, Any] | None
    received_at: datetime
    first_response_due: datetime | None
    first_responded_at: datetime | None
    resolution_due_min: datetime | None
    resolution_due_max: datetime | None
    needs_release: bool
    waiting_since: datetime | None
    pauses: tuple[tuple[datetime, datetime | None], ...]
    resolved_at: datetime | None
    decision: str
    reasons: tuple[str, ...]
    messages: tuple[MessageRecord, ...] = field(default=())
    root_cause: str | None = None  # platform | outside (R18), recorded by staff
    # R24: the deadline of the customer's latest question (the first-response deadline until a follow-up question
    # comes); when the follow-up question that waits for staff arrived (None: none waits); when staff answered the
    # latest question
    response_due: datetime | None = None
    followup_at: datetime | None = None
    responded_at: datetime | None = None
    # R25: the priority of the preset's matrix (None where it has none), the rule that gave it, and why
    sla_priority: str | None = None
    priority_rule: str | None = None
    priority_reasons: tuple[str, ...] = ()

    @property
    def current_due(self) -> datetime | None:
        """The response deadline the queue goes by: the latest question's (R24), else the first response's."""
        return self.response_due if self.response_due is not None else self.first_response_due

    @property
    def asked_again(self) -> bool:
        """The current response deadline is a follow-up question's (R24), waiting or answered."""
        return self.followup_at is not None or (self.response_due is not None
                                                and self.response_due != self.first_response_due)

    @property
    def awaiting_response(self) -> bool:
        """A question of the customer waits for staff: the first one, or a follow-up question (R24)."""
        return self.first_responded_at is None or self.followup_at is not None

    @property
    def current_answer(self) -> datetime | None:
        """When staff answered the latest question; None while it waits."""
        if self.awaiting_response:
            return None
        return self.responded_at if self.responded_at is not None else self.first_responded_at


@dataclass(frozen=True)
class OutboundDraft:
    """One outbound message as slabot queues it: its ``messages`` row and its outbox row (the payload) are
    written from this record alone (:meth:`storage.repositories.OutboxRepository.queue`) and read back into it
    (:meth:`OutboxRecord.draft`).

    ``staff`` None: an automatic message (a notice from slabot). ``references`` are the channel ids of the
    messages it answers, oldest first (e-mail's References); ``in_reply_to`` the one it answers directly.
    """

    channel: str
    recipient: str
    text: str
    purpose: str
    ticket_id: int | None = None
    ticket_ref: str | None = None
    account_id: int | None = None
    contact_id: int | None = None
    subject: str | None = None
    language: str | None = None  # the language the text is written in, when a template chose it
    staff: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    mail_message_id: str | None = None  # e-mail's Message-ID chosen in advance (else the sender makes one)
    reply_to_message: int | None = None  # the stored inbound message this automatic reply answers
    # files sent with it (filename, content type, bytes): stored as the message's attachments, not in the payload
    files: tuple[tuple[str, str, bytes], ...] = ()

    @property
    def auto(self) -> bool:
        """Automatic (no person wrote it): it records no first response, and e-mail marks it so."""
        return self.staff is None

    def payload(self) -> dict[str, Any]:
        """The outbox row's ``payload`` (JSON): everything but the channel and the recipient, its own columns."""
        return {
            "text": self.text, "subject": self.subject, "in_reply_to": self.in_reply_to,
            "references": list(self.references), "language": self.language, "purpose": self.purpose,
            "auto": self.auto, "ticket_ref": self.ticket_ref, "staff": self.staff, "message_id": self.mail_message_id,
            "ticket_id": self.ticket_id, "account_id": self.account_id, "contact_id": self.contact_id,
            "reply_to_message": self.reply_to_message, "files": len(self.files),
        }

    @classmethod
    def from_payload(cls, channel: str, recipient: str, payload: Mapping[str, Any]) -> OutboundDraft:
        """The draft an outbox row holds; also a row queued before the payload had every key (a missing one is
        None or empty)."""
        get = payload.get
        return cls(
            channel=channel, recipient=recipient, text=str(get("text") or ""), purpose=str(get("purpose") or ""),
            ticket_id=get("ticket_id"), ticket_ref=get("ticket_ref"), account_id=get("account_id"),
            contact_id=get("contact_id"), subject=get("subject"), language=get("language"), staff=get("staff"),
            in_reply_to=get("in_reply_to"), references=tuple(get("references") or ()),
            mail_message_id=get("message_id"), reply_to_message=get("reply_to_message"),
        )


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    message_id: int
    channel: str
    recipient: str
    payload: dict[str, Any]  # the stored JSON, see OutboundDraft.payload
    state: OutboxState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    claimed_by: str | None = None
    uncertain_since: datetime | None = None
    send_key: str | None = None  # a random marker fixed when the row was queued (e-mail's Message-ID)

    @property
    def draft(self) -> OutboundDraft:
        """The message this row sends."""
        return OutboundDraft.from_payload(self.channel, self.recipient, self.payload)


@dataclass(frozen=True)
class SendingRow:
    """An outbox row in ``sending``: who claimed it and when (a worker that stopped mid-send leaves it so)."""

    id: int
    claimed_by: str | None
    claimed_at: datetime | None
    uncertain_since: datetime | None


@dataclass(frozen=True)
class ReminderRecord:
    id: int
    ticket_id: int
    spec: str
    due_at: datetime
    escalate: bool
    state: ReminderState


@dataclass(frozen=True)
class ReminderContext:
    """A claimed reminder with what a staff ping says about its ticket and account."""

    reminder_id: int
    ticket_id: int
    spec: str
    escalate: bool
    due_at: datetime
    ref: str
    ticket_state: TicketState
    first_responded_at: datetime | None
    first_response_due: datetime | None
    plan: str | None
    subject: str | None
    queue_priority: int
    terms: dict[str, Any] | None  # the ticket's SLA snapshot
    account: str | None
    account_staff: str | None
    response_due: datetime | None = None  # the follow-up question's deadline (R24)
    followup_at: datetime | None = None  # a follow-up question waits for staff since (R24)


@dataclass(frozen=True)
class QuoteRecord:
    id: int
    ticket_id: int
    staff: str
    estimated_hours: Decimal
    billed_hours: Decimal
    rate_kind: str
    rate: Decimal
    total: Decimal
    urgent: bool
    rate_card: dict[str, Any]
    state: QuoteState
    made_at: datetime
    answered_at: datetime | None
    monthly_hours: Decimal = Decimal(0)
    card_hours: Decimal = Decimal(0)
    paid_hours: Decimal = Decimal(0)
    new_blocks: int = 0
    block_price: Decimal = Decimal(0)


@dataclass(frozen=True)
class TimeEntryRecord:
    id: int
    ticket_id: int
    staff: str
    hours: Decimal
    activity: str  # work | diagnosis
    note: str | None
    status: str  # free | not_agreed | awaiting_cause | billed
    at: datetime


@dataclass(frozen=True)
class PunchCardRecord:
    id: int
    account_id: int
    block_hours: Decimal
    remaining: Decimal
    block_number: int
    purchased_at: datetime


@dataclass(frozen=True)
class InvoiceLineRecord:
    id: int
    account_id: int
    account: str
    ticket_ref: str | None
    description: str
    hours: Decimal | None
    rate: Decimal | None
    amount: Decimal
    day: date
    invoice: str  # monthly | separate | punch_card | usage (hours from the month or the card: not invoiced)
    rate_kind: str | None
    invoice_id: int | None


class InvoiceKind(StrEnum):
    """The invoice a line goes on, and an invoice's kind (R20, R21); ``usage``: hours from the month's fixed hours or
    the punch card, shown on the statement, never invoiced (no invoice has this kind)."""

    MONTHLY = "monthly"
    SEPARATE = "separate"
    PUNCH_CARD = "punch_card"
    USAGE = "usage"


@dataclass(frozen=True)
class InvoiceRecord:
    id: int
    number: str
    account_id: int
    account: str
    kind: str  # monthly | punch_card | separate
    ticket_ref: str | None
    issued_on: date
    due_on: date
    month: str | None = None
    subtotal: Decimal | None = None
    vat: Decimal | None = None
    total: Decimal | None = None
    card_balance: Decimal | None = None
    message_id: int | None = None
    recipient: str | None = None  # of the mail that carried it last
    delivery_state: str | None = None  # of that mail; None: never sent (no address)


@dataclass(frozen=True)
class ReportTicketRecord:
    """A ticket as the SLA report reads it: its times, its terms snapshot and who worked on it."""

    id: int
    ref: str
    plan: str
    priority: str
    state: TicketState
    account: str | None
    terms: dict[str, Any] | None
    received_at: datetime
    first_responded_at: datetime | None
    resolved_at: datetime | None
    needs_release: bool
    pauses: tuple[tuple[datetime, datetime | None], ...]
    assigned_staff: str | None  # the account's staff member
    taken_by: str | None  # the actor of the ticket's last 'taken' event
    first_responder: str | None  # who sent the first staff reply
    sla_priority: str | None = None  # the priority of the preset's matrix (R25), None where it has none
