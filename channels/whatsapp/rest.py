"""Twilio's REST API for WhatsApp: the HTTP client, the REST client and :class:`WhatsAppSender`.

The sender wraps twilio's REST ``Client`` (asynchronous; its ``http_client`` is
injectable, so tests point it at a local stand-in) and translates Twilio's
errors into slabot's send errors (:mod:`channels.messages`). WhatsApp only
allows free-form messages within 24 hours of the customer's last message;
outside that window the sender uses the configured approved template
(``ContentSid`` + ``ContentVariables``) or raises :class:`NeedsStaffError`, as it
does when Twilio itself answers "outside the allowed window" (63016).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels.messages import (
    DeliveryState,
    NeedsStaffError,
    OutboundMessage,
    PermanentSendError,
    SendReceipt,
    TemporarySendError,
    UncertainSendError,
    utc_now,
)
from channels.whatsapp.webhook import OUTSIDE_WINDOW_CODES, STATUS_STATES, rebase_url

SESSION_WINDOW = timedelta(hours=24)


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
        """One request to Twilio on the pooled session, with basic auth in the header."""
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
        """Close the pooled session (a later request opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class LocalApiHttpClient(TwilioHttpClient):
    """The HTTP client with every request sent to another base URL (tests, demo)."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        """The request, sent to :attr:`base_url` instead of Twilio."""
        return await super().request(method, rebase_url(self.base_url, url), *args, **kwargs)


def rest_client(account_sid: str, auth_token: str, api_base_url: str | None = None) -> Client:
    """twilio's REST client on :class:`TwilioHttpClient`, or on a local stand-in at ``api_base_url``."""
    http_client = LocalApiHttpClient(api_base_url) if api_base_url else TwilioHttpClient()
    return Client(account_sid, auth_token, http_client=http_client)


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
        try:
            last = await self.last_inbound(message.recipient)
        except Exception as exc:  # the store failed: nothing has gone out, so it may go later
            raise TemporarySendError(f"cannot tell whether the customer wrote within the 24-hour window: {exc}") \
                from exc
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

    async def find_sent(self, message: OutboundMessage, since: datetime,
                        taken: Collection[str] = ()) -> SendReceipt | None:
        """The message Twilio accepted for ``message`` since ``since``, if any (reconciling an unknown outcome:
        a timeout, or a crash while sending).

        Twilio keeps no marker of the sender's own, so a message is known by what Twilio lists: sender,
        recipient, creation time (a minute of clock skew allowed) and, for a free-form message, the text (an
        acknowledgement's names its ticket); a sid in ``taken`` is another message's. The oldest match wins.
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
            if record.sid in taken:
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

    async def aclose(self) -> None:
        """Close the REST client's connections."""
        close = getattr(self.client.http_client, "close", None)
        if close is not None:
            await close()

    async def received_since(self, since: datetime) -> list[dict[str, Any]]:
        """Messages Twilio received on our number since ``since`` (for reconciliation), as webhook fields.

        ``received_at`` is Twilio's own time of receipt: the message resource's ``date_created`` (for an
        inbound message ``date_sent`` is when Twilio posted the webhook, later), else ``date_sent``.
        """
        try:
            records = await self.client.messages.list_async(to=self.whatsapp_from, date_sent_after=since, limit=1000)
        except TwilioRestException as exc:
            raise translate_error(exc) from exc
        return [
            {
                "MessageSid": r.sid, "From": r.from_, "To": r.to, "Body": r.body or "",
                "NumMedia": str(r.num_media or 0), "received_at": r.date_created or r.date_sent,
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


__all__ = ["LastInbound", "LocalApiHttpClient", "SESSION_WINDOW", "TemplateChoice", "TemplateFor", "TwilioHttpClient",
           "WhatsAppSender", "rest_client", "translate_error"]
