"""The one vocabulary every channel speaks: normalised inbound and outbound messages.

A channel's parser turns what arrives (a Twilio webhook, an RFC 5322 mail, a
call-log row) into an :class:`InboundMessage`; the application answers with
:class:`OutboundMessage` values that a channel's sender delivers. No live
client ever rides on a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Protocol, runtime_checkable

from channels.identity import Identity


def utc_now() -> datetime:
    """The present instant, aware and in UTC: the program's one reading of the clock (everything else takes
    a ``now`` callable, and ``sla_engine`` only instants passed in)."""
    return datetime.now(timezone.utc)


class ChannelName(StrEnum):
    WHATSAPP = "whatsapp"
    EMAIL = "email"
    PHONE = "phone"


@dataclass(frozen=True, slots=True)
class InboundAttachment:
    """A file that came with a message: its bytes, or a URL to fetch them from later."""

    content_type: str
    filename: str | None = None
    data: bytes | None = None
    url: str | None = None
    size: int | None = None


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
    raw: bytes = b""
    # what the sender said of its priority (R25): a priority by name, or urgency and impact answers
    priority: str | None = None
    urgency: str | None = None
    impact: str | None = None

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        if not self.external_id:
            raise ValueError("an inbound message needs its channel's external id")


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

    async def find_sent(self, message: OutboundMessage, since: datetime) -> SendReceipt | None: ...
