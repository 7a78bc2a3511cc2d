"""The one vocabulary every channel speaks: normalised inbound and outbound messages.

A channel's parser turns what arrives (a Twilio webhook, an RFC 5322 mail, a
call-log row) into an :class:`InboundMessage`; the application answers with
:class:`OutboundMessage` values that a channel's sender delivers. No live
client ever rides on a message.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import StrEnum
from typing import Protocol, runtime_checkable

from channels.identity import Identity

NUL = "\x00"  # a character no database text column of PostgreSQL can hold: removed where text comes in


def utc_now() -> datetime:
    """The present instant, aware and in UTC: the program's one reading of the clock (everything else takes
    a ``now`` callable, and ``sla_engine`` only instants passed in)."""
    return datetime.now(timezone.utc)


class ChannelName(StrEnum):
    WHATSAPP = "whatsapp"
    EMAIL = "email"
    PHONE = "phone"
    PLATFORM = "platform"  # the host product's own intake API (POST /api/v1/requests)


@dataclass(frozen=True, slots=True)
class InboundAttachment:
    """A file that came with a message: its bytes, or a URL to fetch them from later."""

    content_type: str
    filename: str | None = None
    data: bytes | None = None
    url: str | None = None
    size: int | None = None
    in_raw: bool = False  # its bytes are inside the message's raw bytes (e-mail): stored once, with them


@dataclass(frozen=True)
class InboundMessage:
    """One message as it arrived, normalised."""

    channel: ChannelName
    external_id: str  # e-mail Message-ID, Twilio MessageSid, call id
    sender: Identity
    received_at: datetime
    text: str
    subject: str | None = None
    sender_name: str | None = None
    recipient: str | None = None
    full_text: str | None = None  # the whole body, where ``text`` had quotes and signature stripped
    thread_refs: tuple[str, ...] = ()  # In-Reply-To and References
    attachments: tuple[InboundAttachment, ...] = ()
    critical: bool = False  # the outage line, or flagged critical
    automatic: bool = False  # an auto-reply, bounce or list mail: never answered automatically
    answered: bool = False  # a phone call someone at the desk took: the caller was spoken to already
    language: str | None = None  # the language the sender asked to be answered in (the platform API), if any
    raw: bytes = b""
    notes: tuple[str, ...] = ()  # what was changed to store it (NUL characters removed): in the message's reasons
    # what the sender said of its priority (R25): a priority by name, or urgency and impact answers
    priority: str | None = None
    urgency: str | None = None
    impact: str | None = None

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        if not self.external_id:
            raise ValueError("an inbound message needs its channel's external id")


def without_nul(value: str) -> str:
    """``value`` without NUL characters (PostgreSQL's text cannot hold them)."""
    return value.replace(NUL, "") if NUL in value else value


def _has_nul(value: object) -> bool:
    return isinstance(value, str) and NUL in value


def nul_note(where: Iterable[str]) -> str:
    """The note (:attr:`InboundMessage.notes`) that NUL characters were removed from the fields ``where``."""
    return f"NUL characters removed from {', '.join(where)}: no database text can hold them"


def storable(msg: InboundMessage) -> InboundMessage:
    """``msg`` with the NUL characters removed from every text it carries (a database's text cannot hold them),
    and a note naming the fields that had one; ``msg`` itself when none had."""
    cleaned: list[str] = []
    changes: dict[str, object] = {}
    for name in ("external_id", "text", "subject", "sender_name", "recipient", "full_text"):
        value = getattr(msg, name)
        if _has_nul(value):
            cleaned.append(name)
            changes[name] = without_nul(value)
    if _has_nul(msg.sender.value):
        cleaned.append("sender")
        changes["sender"] = replace(msg.sender, value=without_nul(msg.sender.value))
    if any(_has_nul(ref) for ref in msg.thread_refs):
        cleaned.append("thread_refs")
        changes["thread_refs"] = tuple(without_nul(ref) for ref in msg.thread_refs)
    if any(_has_nul(a.content_type) or _has_nul(a.filename) or _has_nul(a.url) for a in msg.attachments):
        cleaned.append("attachments")
        changes["attachments"] = tuple(
            replace(a, content_type=without_nul(a.content_type),
                    filename=None if a.filename is None else without_nul(a.filename),
                    url=None if a.url is None else without_nul(a.url)) for a in msg.attachments)
    if not cleaned:
        return msg
    return replace(msg, **changes, notes=(*msg.notes, nul_note(cleaned)))  # type: ignore[arg-type]


class DeliveryState(StrEnum):
    """Where an outbound message stands; states only move forward (see ORDER)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNKNOWN = "unknown"  # a send whose outcome is unknown (crash or timeout): never re-sent blindly
    NEEDS_STAFF = "needs_staff"  # cannot be sent automatically (e.g. outside WhatsApp's 24-hour window)
    RECEIVED = "received"  # inbound messages


ORDER = {
    DeliveryState.QUEUED: 0,
    DeliveryState.SENDING: 1,
    DeliveryState.UNKNOWN: 2,
    DeliveryState.SENT: 3,
    DeliveryState.DELIVERED: 4,
    DeliveryState.READ: 5,
    DeliveryState.FAILED: 6,
    DeliveryState.NEEDS_STAFF: 6,
    DeliveryState.RECEIVED: 0,
}


def moves_forward(current: str, new: str) -> bool:
    """True when ``new`` is a later delivery state than ``current``."""
    return ORDER[DeliveryState(new)] > ORDER[DeliveryState(current)]


@dataclass(frozen=True)
class OutboundMessage:
    """A message to send, as the outbox hands it to a channel's sender."""

    outbox_id: int
    channel: ChannelName
    recipient: str
    text: str
    subject: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    message_id: str | None = None  # set in advance for e-mail, so a resend can be recognised
    send_key: str | None = None  # the outbox row's marker, fixed when it was queued: the same on every attempt
    extra: dict[str, str] = field(default_factory=dict)
    attachments: tuple[OutboundFile, ...] = ()  # e-mail only (an invoice's PDF)


@dataclass(frozen=True)
class OutboundFile:
    """A file sent with an outbound message."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class SendReceipt:
    """What a channel reports after a send."""

    external_id: str | None
    state: DeliveryState = DeliveryState.SENT


class SendError(Exception):
    """A send failed."""


class TemporarySendError(SendError):
    """Try again later (rate limit, 4xx SMTP, server down, timeout before sending)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UncertainSendError(TemporarySendError):
    """The request may have reached the channel (a timeout after it went out): ask before sending again."""


class PermanentSendError(SendError):
    """Will never succeed as it is (550 no such user, invalid number)."""


class NeedsStaffError(SendError):
    """Cannot be sent automatically; staff must act (e.g. WhatsApp's 24-hour window closed)."""


class Sender(Protocol):
    """An outbound channel: one method."""

    async def send(self, message: OutboundMessage) -> SendReceipt: ...


@runtime_checkable
class Reconciling(Protocol):
    """A sender that can tell whether a message it may have sent arrived (after :class:`UncertainSendError`)."""

    async def find_sent(self, message: OutboundMessage, since: datetime,
                        taken: Collection[str] = ()) -> SendReceipt | None:
        """The channel's record of ``message`` sent since ``since``, if any; ``taken``: channel ids that belong
        to other messages already (never this one's)."""
        ...


@runtime_checkable
class RepeatSafe(Protocol):
    """A sender whose second send of one message the receiving side takes as the same message (e-mail: the
    same Message-ID, which mail clients and slabot's own intake de-duplicate): a send whose outcome is unknown
    is simply made again."""

    def repeat_is_safe(self, message: OutboundMessage) -> bool: ...
