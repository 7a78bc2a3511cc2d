"""SQLAlchemy 2 table models. Only ``storage`` sees these; the rest gets records.

Instants are stored as timezone-aware UTC (``UtcDateTime``) on both SQLite and
PostgreSQL; money and hours as ``Numeric``; a ticket's SLA snapshot as JSON.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy import text as sql_text  # a column of Message is called text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored")
        result = value.astimezone(UTC)
        return result.replace(tzinfo=None) if dialect.name == "sqlite" else result

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Money = Numeric(12, 2)
Hours = Numeric(10, 2)


# the conditions of the partial indexes; a query that is to use one repeats its condition word for word
# (SQLite matches a partial index's WHERE against the query's terms as written)
THREADED_BY_NUMBER = ("whatsapp", "phone")  # the channels whose tickets a sender's number threads (R6)
THREAD_KEY_CHANNELS = f"channel IN ({', '.join(repr(c) for c in THREADED_BY_NUMBER)})"
EMAIL_OUT = "direction = 'out' AND channel = 'email'"
WHATSAPP_IN = "direction = 'in' AND channel = 'whatsapp'"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, Decimal: Money}


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    plan: Mapped[str] = mapped_column(String(50))
    staff: Mapped[str | None] = mapped_column(String(100))
    templates_delivered: Mapped[date | None] = mapped_column(Date)
    language: Mapped[str] = mapped_column(String(5), default="nl")
    monthly_hours: Mapped[Decimal | None] = mapped_column(Hours)
    billing_email: Mapped[str | None] = mapped_column(String(320))  # invoices go here; else the contact person's
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="contact")  # contact | third_party
    authorised: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str | None] = mapped_column(String(5))


class Identity(Base):
    """An e-mail address (lower case) or phone number (E.164) of a contact."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("contact_id", "kind", "value"), Index("ix_identities_lookup", "kind", "value"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # email | phone
    value: Mapped[str] = mapped_column(String(320))


class Counter(Base):
    """Named counters, e.g. the next ticket number per reference prefix."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_open_queue", "state", "queue_priority", "first_response_due"),
        # threading by the sender's number (R6) is for WhatsApp and calls only: an e-mail ticket is not in it
        Index("ix_tickets_thread_key", "thread_key",
              sqlite_where=sql_text(THREAD_KEY_CHANNELS), postgresql_where=sql_text(THREAD_KEY_CHANNELS)),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(30), unique=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))  # no index: no query by contact
    channel: Mapped[str] = mapped_column(String(20))
    thread_key: Mapped[str | None] = mapped_column(String(320))  # sender identity on the channel
    subject: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(20), default="undetermined")
    kind_rule: Mapped[str | None] = mapped_column(String(100))
    kind_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    # R25: the priority of the preset's matrix (None where the preset has none), the rule that gave it (a rule
    # of the preset's table, ``default`` or ``staff``) and why
    sla_priority: Mapped[str | None] = mapped_column(String(40))
    priority_rule: Mapped[str | None] = mapped_column(String(100))
    priority_reasons: Mapped[list[str] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20))  # a TicketState; queries on it use ix_tickets_open_queue
    plan: Mapped[str | None] = mapped_column(String(50))
    queue_priority: Mapped[int] = mapped_column(Integer, default=0)
    terms: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    received_at: Mapped[datetime]
    first_response_due: Mapped[datetime | None]
    first_responded_at: Mapped[datetime | None]
    # R24: the deadline of the customer's latest question (the first-response one until a follow-up question
    # comes), when a follow-up question waiting for staff arrived (None: none waits), when staff last answered
    response_due: Mapped[datetime | None]
    followup_at: Mapped[datetime | None]
    responded_at: Mapped[datetime | None]
    resolution_due_min: Mapped[datetime | None]
    resolution_due_max: Mapped[datetime | None]
    needs_release: Mapped[bool] = mapped_column(Boolean, default=False)
    root_cause: Mapped[str | None] = mapped_column(String(20))  # platform | outside (R18), set by staff
    waiting_since: Mapped[datetime | None]
    pauses: Mapped[list[list[str]]] = mapped_column(JSON, default=list)  # [[start, end|null], ...] ISO
    resolved_at: Mapped[datetime | None]
    decision: Mapped[str] = mapped_column(String(40))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # the message's id before its direction: a lookup of both directions (the duplicate check, the thread of
        # a reply) finds its two entries side by side, whatever the planner knows of the table (migration 0020)
        UniqueConstraint("channel", "external_id", "direction", name="uq_messages_external"),
        # each of these two serves one query, which reads one direction of one channel: a stored message
        # updates one of them at most
        Index("ix_messages_recipient", "recipient", "at",  # the e-mail intake's cap on automatic replies
              sqlite_where=sql_text(EMAIL_OUT), postgresql_where=sql_text(EMAIL_OUT)),
        Index("ix_messages_sender", "sender", "at",  # WhatsApp's 24-hour window
              sqlite_where=sql_text(WHATSAPP_IN), postgresql_where=sql_text(WHATSAPP_IN)),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(400))
    sender: Mapped[str | None] = mapped_column(String(320))
    recipient: Mapped[str | None] = mapped_column(String(320))
    sender_name: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    full_text: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]
    auto: Mapped[bool] = mapped_column(Boolean, default=False)
    staff: Mapped[str | None] = mapped_column(String(100))  # who wrote an outbound reply
    purpose: Mapped[str | None] = mapped_column(String(40))  # acknowledgement kind, reply, clarify...
    decision: Mapped[str | None] = mapped_column(String(40))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    delivery_state: Mapped[str] = mapped_column(String(20))
    thread_refs: Mapped[list[str]] = mapped_column(JSON, default=list)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str | None] = mapped_column(String(400))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int | None] = mapped_column(Integer)
    url: Mapped[str | None] = mapped_column(Text)
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    fetched: Mapped[bool] = mapped_column(Boolean, default=False)
    # downloading a media URL: attempts so far, the last error, when to try next; given up when fetch_failed
    fetch_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fetch_error: Mapped[str | None] = mapped_column(Text)
    next_fetch_at: Mapped[datetime | None]
    fetch_failed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Outbox(Base):
    """An outbound message waiting to be sent, or its sending history."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(320))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20))  # an OutboxState
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # set when a send may have reached the channel (a timeout after the request went out, a crash while
    # sending): before any re-send, the channel is asked whether it has the message since then
    uncertain_since: Mapped[datetime | None]
    # a random marker fixed when the row is queued: e-mail's Message-ID when the draft names none, so a send
    # repeated after a crash is the same mail (NULL on rows queued before it existed)
    send_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class MailCheckpoint(Base):
    """How far the IMAP intake has read one mailbox: its UIDVALIDITY and the last UID committed."""

    __tablename__ = "mail_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(400), unique=True)  # user@host/folder
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime]


class MailUnmarked(Base):
    """A mail committed from an IMAP folder and not yet marked seen (or moved) there: marked after a restart too."""

    __tablename__ = "mail_unmarked"
    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_mail_unmarked"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(400))  # as mail_checkpoints.mailbox
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)


class KeptMail(Base):
    """A mail that could not be read as one: its raw bytes kept aside for staff, never lost."""

    __tablename__ = "kept_mail"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(400))  # imap:user@host/folder#uid, a file name, stdin
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime]
    reprocessed_at: Mapped[datetime | None]


class AddressFlag(Base):
    """An address slabot must not write to automatically for now (it bounced), with why."""

    __tablename__ = "address_flags"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))  # the bounced message, if known
    flagged_at: Mapped[datetime]


class EarlyStatus(Base):
    """A delivery-status callback for a channel id slabot has not stored yet (it raced the send's commit)."""

    __tablename__ = "early_statuses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(400), index=True)
    state: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime]


class Reminder(Base):
    __tablename__ = "reminders"
    __table_args__ = (UniqueConstraint("ticket_id", "spec"), Index("ix_reminders_due", "state", "due_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    spec: Mapped[str] = mapped_column(String(40))
    due_at: Mapped[datetime]
    escalate: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(20))  # a ReminderState
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]


class Quote(Base):
    """An hour estimate sent to the customer before paid work starts (R19), with the rate of its day (R22)."""

    __tablename__ = "quotes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    staff: Mapped[str] = mapped_column(String(100))
    estimated_hours: Mapped[Decimal] = mapped_column(Hours)
    billed_hours: Mapped[Decimal] = mapped_column(Hours)
    rate_kind: Mapped[str] = mapped_column(String(20))  # monthly | punch_card | ad_hoc | urgent: the main source
    rate: Mapped[Decimal] = mapped_column(Money)  # of the paid hours
    total: Mapped[Decimal] = mapped_column(Money)  # what the work costs: paid hours x rate
    # the billed hours by source, in the order the work uses them (R20): what the invoice then follows
    monthly_hours: Mapped[Decimal] = mapped_column(Hours, default=Decimal(0), server_default="0")
    card_hours: Mapped[Decimal] = mapped_column(Hours, default=Decimal(0), server_default="0")
    paid_hours: Mapped[Decimal] = mapped_column(Hours, default=Decimal(0), server_default="0")
    new_blocks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # punch-card blocks it buys
    block_price: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    rate_card: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20))  # a QuoteState
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    answer_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    made_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]


class TimeEntry(Base):
    __tablename__ = "time_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    staff: Mapped[str] = mapped_column(String(100))
    hours: Mapped[Decimal] = mapped_column(Hours)
    activity: Mapped[str] = mapped_column(String(20), default="work")  # work | diagnosis
    note: Mapped[str | None] = mapped_column(Text)
    billable: Mapped[bool] = mapped_column(Boolean, default=False)
    # free | not_agreed | awaiting_cause | billed: what became of the hours (R18, R19)
    status: Mapped[str] = mapped_column(String(20), default="free")
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id"))
    at: Mapped[datetime]


class PunchCard(Base):
    __tablename__ = "punch_cards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    block_hours: Mapped[Decimal] = mapped_column(Hours)
    remaining: Mapped[Decimal] = mapped_column(Hours)
    block_number: Mapped[int] = mapped_column(Integer, default=1)
    purchased_at: Mapped[datetime]


class Invoice(Base):
    """An issued invoice (R21): the month's (``monthly``, one per account and month, issued on the first
    working day after it), a job above the threshold (``separate``) or a punch-card block (``punch_card``),
    the last two at once. Its PDF is kept as sent; ``message_id`` is the e-mail that carried it last."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("account_id", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # monthly | punch_card | separate
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    month: Mapped[str | None] = mapped_column(String(7))  # YYYY-MM of a monthly invoice; NULL for the others
    issued_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    subtotal: Mapped[Decimal | None] = mapped_column(Money)
    vat: Mapped[Decimal | None] = mapped_column(Money)
    total: Mapped[Decimal | None] = mapped_column(Money)
    card_balance: Mapped[Decimal | None] = mapped_column(Hours)  # punch-card hours left when it was issued
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime]


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    description: Mapped[str] = mapped_column(Text)
    hours: Mapped[Decimal | None] = mapped_column(Hours)
    rate: Mapped[Decimal | None] = mapped_column(Money)
    amount: Mapped[Decimal] = mapped_column(Money)
    day: Mapped[date] = mapped_column(Date)
    # monthly | separate | punch_card: the invoice it goes on; usage: hours from the month or the card (0.00),
    # shown on the statement, never invoiced again
    invoice: Mapped[str] = mapped_column(String(20), default="monthly")
    rate_kind: Mapped[str | None] = mapped_column(String(20))  # monthly | punch_card | ad_hoc | urgent; None: a block
    block_number: Mapped[int | None] = mapped_column(Integer)
    time_entry_id: Mapped[int | None] = mapped_column(ForeignKey("time_entries.id"))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)


class Event(Base):
    """The audit trail: what happened to a ticket or message, by whom, and why."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100), default="slabot")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DashboardSession(Base):
    """A staff login of the dashboard: only a hash of the cookie's token is kept, so this table opens no session."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_name: Mapped[str] = mapped_column(String(100), index=True)  # casefolded
    password_tag: Mapped[str] = mapped_column(String(64))  # a hash of the password hash of the login: a new one ends it
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Lease(Base):
    """A job that one worker at a time does (the staff chat's poller and rounds, a mailbox's reader), held by
    ``holder`` until ``expires_at`` (seconds since the epoch by the database's clock) unless renewed."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column(Float)


# -- the platform intake API, outgoing webhooks, privacy (issue 21) ----------------------------------------------


class ApiKey(Base):
    """A bearer key of the platform intake API: only its SHA-256 is stored; the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(20))  # the key's first characters, to recognise it in a list
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ApiRequest(Base):
    """A request filed through the API by its ``external_id``: the hash of its body and the answer given, so a
    retry gets the same answer and stores nothing."""

    __tablename__ = "api_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(400), unique=True)
    body_hash: Mapped[str] = mapped_column(String(64))
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    key_name: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime]


class WebhookEndpoint(Base):
    """A ``[[webhooks]]`` endpoint of the config and the events it takes, mirrored on start so that every process
    that stores a change queues its deliveries (the URL and secret stay in the config)."""

    __tablename__ = "webhook_endpoints"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    events: Mapped[str] = mapped_column(String(400))  # " ticket.created message.created ": space around each


class WebhookEvent(Base):
    """An event for the outgoing webhooks, written in the transaction of the change; its JSON body is made once,
    at the first delivery, so that every retry sends the same bytes."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(40), unique=True)  # the body's "id": receivers de-duplicate on it
    type: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime]
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    dedupe: Mapped[str | None] = mapped_column(String(200), unique=True)  # an event that may happen once only
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event to one endpoint: claimed by one worker at a time, retried with backoff, then failed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "endpoint"), Index("ix_webhook_deliveries_due", "state",
                                                                      "next_attempt_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))  # a WebhookState
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class PrivacyLog(Base):
    """Every privacy export and erasure: when, by whom, of what (a hash of the identity, never the identity)."""

    __tablename__ = "privacy_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(20))  # export | erase | expire
    actor: Mapped[str] = mapped_column(String(100))
    subject_hash: Mapped[str | None] = mapped_column(String(64))  # SHA-256 of the identity asked for
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what was found or removed, as counts


class CannedAnswer(Base):
    """An answer staff keep to insert in a reply, in one language, with placeholders filled from the ticket."""

    __tablename__ = "canned_answers"
    __table_args__ = (UniqueConstraint("name", "language"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(2))
    text: Mapped[str] = mapped_column(Text)
    staff: Mapped[str] = mapped_column(String(100))  # who wrote it last
    updated_at: Mapped[datetime]
