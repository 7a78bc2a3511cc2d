"""WhatsApp through Twilio: webhook parsing and signatures, the outbound sender, reconciliation.

The parser and the signature check are pure functions of the request. The
sender wraps twilio's REST ``Client`` (asynchronous; its ``http_client`` is
injectable, so tests point it at a local stand-in) and translates Twilio's
errors into slabot's send errors. WhatsApp only allows free-form messages
within 24 hours of the customer's last message; outside that window the sender
uses the configured approved template (``ContentSid`` + ``ContentVariables``)
or reports that staff must act.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse, urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator, remove_port
from twilio.rest import Client

from channels.identity import IdentityError, phone_identity
from channels.messages import (
    ChannelName,
    DeliveryState,
    InboundAttachment,
    InboundMessage,
    NeedsStaffError,
    OutboundMessage,
    PermanentSendError,
    SendReceipt,
    TemporarySendError,
    UncertainSendError,
    utc_now,
)

MAX_BODY_CHARS = 4096  # WhatsApp's own limit on a message body
MAX_FIELD_CHARS = 8192
MAX_MEDIA = 10
SESSION_WINDOW = timedelta(hours=24)
OUTSIDE_WINDOW_CODES = {63016}  # "outside the allowed window": a template is needed

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


class WebhookError(ValueError):
    """A webhook that cannot be accepted; ``status`` is the HTTP answer (400, 413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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
        return self.error_code in OUTSIDE_WINDOW_CODES


def parse_status_callback(params: Mapping[str, str]) -> StatusUpdate:
    """A Twilio status callback to a :class:`StatusUpdate`."""
    sid = _field(params, "MessageSid", required=True, limit=64)
    status = _field(params, "MessageStatus", required=True, limit=32).lower()
    state = STATUS_STATES.get(status)
    if state is None:
        raise WebhookError(f"unknown MessageStatus {status!r}")
    code_text = params.get("ErrorCode") or ""
    try:
        code = int(code_text) if code_text else None
    except ValueError:
        code = None
    return StatusUpdate(sid, state, code)


class TwilioHttpClient(AsyncHttpClient):  # type: ignore[misc]
    """twilio's asynchronous HTTP client contract on one pooled aiohttp session, closed by :meth:`close`.

    Used instead of twilio's ``AsyncTwilioHttpClient``, which passes ``aiohttp.BasicAuth`` (deprecated since
    aiohttp 3.14: a DeprecationWarning on every request) and, without pooling, leaves its per-request session
    unclosed whenever the request raises (connection refused, timeout).
    """

    def __init__(self, timeout: float | None = None) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), True, timeout)
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        sent_headers = dict(headers or {})
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            sent_headers["Authorization"] = f"Basic {token}"
        if self._session is None or self._session.closed:
            # no keep-alive: a pooled connection the server has already closed would fail a POST whose outcome
            # then looks unknown (and an unknown send is never retried)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        limit = timeout if timeout is not None else self.timeout
        options: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(total=limit)} if limit else {}
        async with self._session.request(method.upper(), url, params=params, data=data, headers=sent_headers,
                                         allow_redirects=allow_redirects, **options) as answer:
            return Response(answer.status, await answer.text(), answer.headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class LocalApiHttpClient(TwilioHttpClient):
    """The HTTP client with every request sent to another base URL (tests, demo)."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return await super().request(method, rebase_url(self.base_url, url), *args, **kwargs)


@dataclass(frozen=True)
class TemplateChoice:
    """An approved WhatsApp template to use outside the 24-hour window."""

    content_sid: str
    variables: Mapping[str, str]


LastInbound = Callable[[str], Awaitable[datetime | None]]
TemplateFor = Callable[[OutboundMessage], TemplateChoice | None]


class WhatsAppSender:
    """Sends outbox messages over WhatsApp with twilio's REST client."""

    def __init__(
        self,
        client: Client,
        whatsapp_from: str,
        *,
        status_callback: str | None,
        last_inbound: LastInbound,
        template_for: TemplateFor,
        now: Callable[[], datetime] = utc_now,
        timeout: float = 15.0,
    ) -> None:
        self.client = client
        self.whatsapp_from = whatsapp_from if whatsapp_from.startswith("whatsapp:") else f"whatsapp:{whatsapp_from}"
        self.status_callback = status_callback
        self.last_inbound = last_inbound
        self.template_for = template_for
        self.now = now
        self.timeout = timeout

    async def send(self, message: OutboundMessage) -> SendReceipt:
        """Send free-form inside the 24-hour window, a template outside it, or ask staff."""
        to = message.recipient if message.recipient.startswith("whatsapp:") else f"whatsapp:{message.recipient}"
        last = await self.last_inbound(message.recipient)
        inside = last is not None and self.now() - last < SESSION_WINDOW
        kwargs: dict[str, Any] = {"from_": self.whatsapp_from, "to": to}
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        if inside:
            kwargs["body"] = message.text
        else:
            template = self.template_for(message)
            if template is None:
                raise NeedsStaffError(
                    "outside WhatsApp's 24-hour window and no approved template is configured: staff must reply "
                    "another way"
                )
            kwargs["content_sid"] = template.content_sid
            kwargs["content_variables"] = json.dumps(dict(template.variables))
        try:
            created = await asyncio.wait_for(self.client.messages.create_async(**kwargs), self.timeout)
        except asyncio.TimeoutError as exc:
            # the request went out: Twilio may have the message; the outbox asks (find_sent) before a re-send
            raise UncertainSendError(f"Twilio did not answer within {self.timeout:.0f} s") from exc
        except TwilioRestException as exc:
            raise translate_error(exc) from exc
        except OSError as exc:  # connection refused, reset: nothing was accepted
            raise TemporarySendError(f"cannot reach Twilio: {exc}") from exc
        state = STATUS_STATES.get(str(created.status or "queued"), DeliveryState.SENT)
        return SendReceipt(created.sid, DeliveryState.SENT if state is DeliveryState.QUEUED else state)

    async def find_sent(self, message: OutboundMessage, since: datetime) -> SendReceipt | None:
        """The message Twilio accepted for ``message`` since ``since``, if any (reconciling an unknown outcome).

        Matched on sender, recipient, creation time (a minute of clock skew allowed) and, for a free-form
        message, the text; the oldest match wins.
        """
        to = message.recipient if message.recipient.startswith("whatsapp:") else f"whatsapp:{message.recipient}"
        try:
            records = await self.client.messages.list_async(to=to, from_=self.whatsapp_from,
                                                            date_sent_after=since - timedelta(days=1), limit=200)
        except TwilioRestException as exc:
            raise translate_error(exc) from exc
        except OSError as exc:
            raise TemporarySendError(f"cannot reach Twilio: {exc}") from exc
        earliest = since - timedelta(minutes=1)
        found = []
        for record in records:
            created = record.date_created or record.date_sent
            if not str(record.direction or "").startswith("outbound") or created is None or created < earliest:
                continue
            if record.body and message.text and record.body.strip() != message.text.strip():
                continue
            found.append((created, record))
        if not found:
            return None
        created, record = min(found, key=lambda pair: pair[0])
        state = STATUS_STATES.get(str(record.status or "queued"), DeliveryState.SENT)
        return SendReceipt(record.sid, DeliveryState.SENT if state is DeliveryState.QUEUED else state)

    async def fetch_state(self, sid: str) -> DeliveryState | None:
        """The state Twilio has for ``sid`` (reconciling an unknown outcome)."""
        try:
            found = await self.client.messages(sid).fetch_async()
        except TwilioRestException as exc:
            if exc.status == 404:
                return None
            raise translate_error(exc) from exc
        return STATUS_STATES.get(str(found.status))

    async def received_since(self, since: datetime) -> list[dict[str, Any]]:
        """Messages Twilio received on our number since ``since`` (for reconciliation)."""
        records = await self.client.messages.list_async(to=self.whatsapp_from, date_sent_after=since, limit=1000)
        return [
            {
                "MessageSid": r.sid, "From": r.from_, "To": r.to, "Body": r.body or "",
                "NumMedia": str(r.num_media or 0), "date_sent": r.date_sent or r.date_created,
            }
            for r in records
            if str(r.direction or "").startswith("inbound")
        ]


def translate_error(exc: TwilioRestException) -> Exception:
    """Twilio's errors as slabot's: retry later, give up, or staff must act."""
    code = exc.code if isinstance(exc.code, int) else None
    if code in OUTSIDE_WINDOW_CODES:
        return NeedsStaffError(f"Twilio {code}: outside WhatsApp's 24-hour window")
    if exc.status == 429 or exc.status >= 500:
        retry = None
        return TemporarySendError(f"Twilio answered {exc.status}: {exc.msg}", retry_after=retry)
    return PermanentSendError(f"Twilio answered {exc.status} (code {code}): {exc.msg}")
