"""Outbound e-mail: the MIME message slabot sends, and an outbox sender over SMTP (aiosmtplib).

Every mail carries a Message-ID on slabot's own domain (stored as the outbound
message's id, so a customer's reply threads onto its ticket), ``In-Reply-To``
and ``References`` when it answers a mail, and the ticket reference in the
subject. An automatic reply is marked ``Auto-Submitted: auto-replied`` (RFC
3834) and asks Exchange not to answer it (``X-Auto-Response-Suppress``), so
two robots never write to each other for long.

SMTP answers map onto the outbox's outcomes: 4xx and a server that cannot be
reached are retried later, 5xx fails for good (staff are told), and a timeout
after the message was handed over is reported as uncertain: SMTP cannot be
asked afterwards, so the outbox marks it unknown instead of sending twice.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib

from channels.messages import (
    DeliveryState,
    OutboundMessage,
    PermanentSendError,
    SendReceipt,
    TemporarySendError,
    UncertainSendError,
    utc_now,
)

MAX_REFERENCES = 20


def new_message_id(domain: str) -> str:
    """A fresh Message-ID on ``domain``, without angle brackets."""
    return f"slabot.{secrets.token_hex(12)}@{domain}"


def domain_of(address: str) -> str:
    """The domain part of an address (``support@example.nl`` -> ``example.nl``)."""
    _, parsed = parseaddr(address)
    if "@" not in parsed:
        raise ValueError(f"not an e-mail address: {address!r}")
    return parsed.rsplit("@", 1)[1].lower()


def _bracketed(message_id: str) -> str:
    message_id = message_id.strip()
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def build_mail(message: OutboundMessage, from_address: str, *, from_name: str | None = None,
               now: datetime | None = None, message_id: str | None = None) -> EmailMessage:
    """The MIME message for ``message``: plain text in UTF-8 with the threading and loop-prevention headers."""
    mail = EmailMessage()
    _, sender = parseaddr(from_address)
    mail["From"] = Address(display_name=from_name or "", addr_spec=sender) if from_name else sender
    mail["To"] = message.recipient
    mail["Subject"] = message.subject or ""
    mail["Date"] = format_datetime(now or utc_now())
    mail["Message-ID"] = _bracketed(message_id or message.message_id or new_message_id(domain_of(sender)))
    if message.in_reply_to:
        mail["In-Reply-To"] = _bracketed(message.in_reply_to)
    references = [r for r in dict.fromkeys((*message.references, *(
        (message.in_reply_to,) if message.in_reply_to else ()))) if r]
    if references:
        mail["References"] = " ".join(_bracketed(r) for r in references[-MAX_REFERENCES:])
    if message.extra.get("auto", "").lower() in ("true", "1"):
        mail["Auto-Submitted"] = "auto-replied"
        mail["X-Auto-Response-Suppress"] = "All"
        mail["Precedence"] = "auto_reply"
    if message.extra.get("ticket_ref"):
        mail["X-Slabot-Ticket"] = message.extra["ticket_ref"]
    mail.set_content(message.text, charset="utf-8")
    for file in message.attachments:
        main, _, sub = file.content_type.partition("/")
        mail.add_attachment(file.data, maintype=main, subtype=sub or "octet-stream", filename=file.filename)
    return mail


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    from_address: str = ""
    from_name: str | None = None
    security: str = "starttls"  # starttls | tls | none
    timeout: float = 30.0


class SmtpSender:
    """Sends outbox messages over SMTP."""

    def __init__(self, settings: SmtpSettings, *, now: Callable[[], datetime] = utc_now,
                 tls_context: ssl.SSLContext | None = None) -> None:
        if settings.security not in ("starttls", "tls", "none"):
            raise ValueError(f"smtp security must be starttls, tls or none, not {settings.security!r}")
        self.settings = settings
        self.now = now
        self.tls_context = tls_context
        self.domain = domain_of(settings.from_address)

    async def send(self, message: OutboundMessage) -> SendReceipt:
        s = self.settings
        message_id = message.message_id or (f"slabot.{message.send_key}@{self.domain}" if message.send_key
                                             else new_message_id(self.domain))
        mail = build_mail(message, s.from_address, from_name=s.from_name, now=self.now(), message_id=message_id)
        try:
            errors, _ = await aiosmtplib.send(
                mail, hostname=s.host, port=s.port, username=s.username or None, password=s.password or None,
                use_tls=s.security == "tls", start_tls=s.security == "starttls",
                timeout=s.timeout, tls_context=self.tls_context,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise _refused(exc.recipients) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _by_code(exc.code, exc.message) from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise UncertainSendError(f"the SMTP server did not answer in time: {exc}") from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise TemporarySendError(f"cannot reach the SMTP server: {exc.__class__.__name__}: {exc}") from exc
        refused = {rcpt: answer for rcpt, answer in errors.items()}
        if refused:  # one recipient per message: refused means not sent
            code, text = next(iter(refused.values()))
            raise _by_code(code, text)
        return SendReceipt(message_id.strip("<>"), DeliveryState.SENT)


    def repeat_is_safe(self, message: OutboundMessage) -> bool:
        """A mail sent twice with one Message-ID is one mail to the receiving side: true when the Message-ID is
        fixed in advance (the draft's own, or one made from the outbox row's send key)."""
        return bool(message.message_id or message.send_key)


def _by_code(code: int, text: str) -> Exception:
    if 400 <= code < 500:
        return TemporarySendError(f"SMTP {code}: {text}")
    if 500 <= code < 600:
        return PermanentSendError(f"SMTP {code}: {text}")
    return TemporarySendError(f"SMTP answered {code}: {text}")


def _refused(recipients: list[aiosmtplib.SMTPRecipientRefused]) -> Exception:
    first = recipients[0]
    return _by_code(first.code, f"{first.recipient}: {first.message}")


__all__ = ["SmtpSender", "SmtpSettings", "build_mail", "domain_of", "new_message_id"]
