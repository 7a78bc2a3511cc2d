"""Twilio's webhooks for WhatsApp: the signature, the inbound message and the status callback, parsed.

Pure functions of the request. :func:`signature_valid` checks ``X-Twilio-Signature``
(twilio's ``RequestValidator``) against the URL Twilio signed, :func:`sign_request`
signs as Twilio does (the demo and tests post signed webhooks with it).
:func:`parse_whatsapp_webhook` reads the form into an :class:`InboundMessage`,
:func:`parse_status_callback` into a :class:`StatusUpdate` whose state already says
when Twilio refused the message outside WhatsApp's 24-hour window (staff must act).
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlparse, urlsplit, urlunsplit

from twilio.request_validator import RequestValidator, remove_port

from channels.identity import IdentityError, phone_identity
from channels.messages import (
    ChannelName,
    DeliveryState,
    InboundAttachment,
    InboundMessage,
    without_nul,
)
from channels.whatsapp.errors import WebhookError

MAX_BODY_CHARS = 4096  # WhatsApp's own limit on a message body
MAX_FIELD_CHARS = 8192
MAX_MEDIA = 10
OUTSIDE_WINDOW_CODES = frozenset({63016})  # "outside the allowed window": a template is needed, or staff
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'  # the answer to a message webhook

STATUS_STATES = {
    "accepted": DeliveryState.QUEUED,
    "queued": DeliveryState.QUEUED,
    "scheduled": DeliveryState.QUEUED,
    "sending": DeliveryState.SENDING,
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.READ,
    "failed": DeliveryState.FAILED,
    "undelivered": DeliveryState.FAILED,
    "canceled": DeliveryState.FAILED,
}


def signature_url(public_url: str | None, seen_url: str) -> str:
    """The URL Twilio signed: the configured public URL with the request's path and query.

    Behind a proxy that terminates TLS the app sees ``http://10.x:8080/...``
    while Twilio signed ``https://support.example.nl/...``. Client headers such
    as ``X-Forwarded-Host`` are never trusted for this.
    """
    return rebase_url(public_url, seen_url) if public_url else seen_url


def rebase_url(base_url: str, url: str) -> str:
    """``url``'s path and query under ``base_url``'s scheme, host and path prefix."""
    base, parts = urlsplit(base_url), urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


class _FormFields(dict[str, str]):
    """Form fields that twilio's validator reads as it reads a Flask ``MultiDict`` (``getall``): for a plain dict
    it first tries ``getall`` and ``getlist`` and catches two exceptions per field."""

    def getall(self, name: str) -> list[str]:
        return [self[name]]


@functools.lru_cache(maxsize=16)
def _validator(auth_token: str) -> RequestValidator:
    return RequestValidator(auth_token)


def signature_valid(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    """True when ``X-Twilio-Signature`` matches (twilio's ``RequestValidator``).

    ``RequestValidator.validate`` always signs the URL twice, without and with the default port (Twilio uses
    either); the signature of the URL as configured, the usual one, is tried first, and only when it does not
    match does ``validate`` decide.
    """
    if not signature:
        return False
    validator = _validator(auth_token)
    fields = _FormFields(params)
    expected = validator.compute_signature(remove_port(urlparse(url)), fields)
    if hmac.compare_digest(expected.encode(), signature.encode()):
        return True
    return bool(validator.validate(url, fields, signature))


def sign_request(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio sends with a webhook of ``params`` posted to ``url``."""
    return str(_validator(auth_token).compute_signature(url, dict(params)))


# a customer writes many times from one number: its normal form is worked out once (a tenth of a webhook's CPU)
_phone_identity = functools.lru_cache(maxsize=4096)(phone_identity)


def _field(params: Mapping[str, str], name: str, *, required: bool = False, limit: int = MAX_FIELD_CHARS) -> str:
    value = params.get(name, "")
    if required and not value:
        raise WebhookError(f"missing field {name}")
    if len(value) > limit:
        raise WebhookError(f"field {name} is longer than {limit} characters", status=413)
    return value


def parse_whatsapp_webhook(params: Mapping[str, str], received_at: datetime, raw: bytes = b"") -> InboundMessage:
    """A Twilio WhatsApp webhook (form fields) to an :class:`InboundMessage`."""
    sid = _field(params, "MessageSid", limit=64) or _field(params, "SmsMessageSid", limit=64)
    if not sid:
        raise WebhookError("missing field MessageSid")
    sender = _field(params, "From", required=True, limit=64)
    try:
        identity = _phone_identity(sender)
    except IdentityError as exc:
        raise WebhookError(f"From: {exc}") from None
    body = _field(params, "Body", limit=MAX_BODY_CHARS)
    try:
        count = int(params.get("NumMedia", "0") or "0")
    except ValueError:
        raise WebhookError("NumMedia is not a number") from None
    if not 0 <= count <= MAX_MEDIA:
        raise WebhookError(f"NumMedia must be 0..{MAX_MEDIA}")
    media = tuple(
        InboundAttachment(
            content_type=_field(params, f"MediaContentType{i}", limit=200) or "application/octet-stream",
            url=_field(params, f"MediaUrl{i}", required=True, limit=2048),
        )
        for i in range(count)
    )
    recipient = _field(params, "To", limit=64).removeprefix("whatsapp:") or None
    return InboundMessage(
        channel=ChannelName.WHATSAPP,
        external_id=sid,
        sender=identity,
        received_at=received_at,
        text=body,
        sender_name=_field(params, "ProfileName", limit=200) or None,
        recipient=recipient,
        attachments=media,
        raw=raw,
    )


@dataclass(frozen=True)
class StatusUpdate:
    """A status callback: which message, its new state, and Twilio's error code if any."""

    sid: str
    state: DeliveryState
    error_code: int | None

    @property
    def outside_window(self) -> bool:
        """True when Twilio refused the message outside WhatsApp's 24-hour window."""
        return self.error_code in OUTSIDE_WINDOW_CODES


def parse_status_callback(params: Mapping[str, str]) -> StatusUpdate:
    """A Twilio status callback to a :class:`StatusUpdate`; a refusal outside the 24-hour window needs staff. The
    sid without NUL characters, as a message is stored (:func:`channels.messages.storable`)."""
    sid = without_nul(_field(params, "MessageSid", required=True, limit=64))
    status = _field(params, "MessageStatus", required=True, limit=32).lower()
    state = STATUS_STATES.get(status)
    if state is None:
        raise WebhookError(f"unknown MessageStatus {status!r}")
    code_text = params.get("ErrorCode") or ""
    try:
        code = int(code_text) if code_text else None
    except ValueError:
        code = None
    if code in OUTSIDE_WINDOW_CODES:
        state = DeliveryState.NEEDS_STAFF
    return StatusUpdate(sid, state, code)


__all__ = ["EMPTY_TWIML", "OUTSIDE_WINDOW_CODES", "STATUS_STATES", "StatusUpdate", "parse_status_callback",
           "parse_whatsapp_webhook", "rebase_url", "sign_request", "signature_url", "signature_valid"]
