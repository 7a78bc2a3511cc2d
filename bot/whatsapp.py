"""The WhatsApp channel wired into slabot: webhooks, status callbacks, sender, background jobs.

Inbound: ``POST /webhooks/twilio/whatsapp`` checks the Twilio signature
against ``http.public_url`` (403 when it does not match, nothing stored),
parses the form into an ``InboundMessage`` and commits it through the intake
pipeline BEFORE answering 200 (Twilio does not retry a 5xx). A MessageSid
already stored answers 200 and changes nothing.

Status: ``POST /webhooks/twilio/status`` (signed too) moves the delivery state
forward only; duplicates, reordering and unknown sids answer 200. Error 63016
(outside the 24-hour window) marks the message as needing staff, once.

Background: media are fetched with the account's credentials and retried;
reconciliation lists what Twilio received in the last hours and ingests any
message whose webhook never arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import httpx
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.rest import Client

from bot.intake import IntakeResult, Outcome
from bot.lifecycle import StateLog, every
from bot.outbox import apply_status
from bot.web.limits import PayloadTooLarge, read_limited
from channels.messages import InboundMessage, OutboundMessage
from channels.whatsapp import (
    LocalApiHttpClient,
    TemplateChoice,
    TwilioHttpClient,
    WebhookError,
    WhatsAppSender,
    parse_status_callback,
    parse_whatsapp_webhook,
    rebase_url,
    signature_url,
    signature_valid,
)
from storage.database import Database
from storage.repositories import TicketRepository

if TYPE_CHECKING:
    from bot.config import HttpConfig, TwilioConfig
    from bot.intake import IntakePipeline

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 64 * 1024
MEDIA_ATTEMPTS = 6  # downloads of one media URL before staff are told it cannot be fetched
MEDIA_BACKOFF = timedelta(seconds=30)  # doubled after every failed download, at most an hour
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
WEBHOOK_PATH = "/webhooks/twilio/whatsapp"
STATUS_PATH = "/webhooks/twilio/status"


async def signed_params(request: Request, auth_token: str, public_url: str | None
                        ) -> tuple[dict[str, str], bytes] | Response:
    """A Twilio webhook's form fields and body, or the answer that refuses it.

    The ``X-Twilio-Signature`` is checked against ``public_url`` plus the request's path (403 when it is
    missing or wrong); 413 for a body over :data:`MAX_WEBHOOK_BYTES`, 400 when it is not UTF-8. Every
    Twilio webhook (WhatsApp, status callbacks, the voice line) goes through here.
    """
    try:
        body = await read_limited(request, MAX_WEBHOOK_BYTES)
    except PayloadTooLarge:
        return PlainTextResponse(f"payload larger than {MAX_WEBHOOK_BYTES} bytes", status_code=413)
    try:
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        return PlainTextResponse("body is not UTF-8 form data", status_code=400)
    url = signature_url(public_url, str(request.url))
    if not signature_valid(auth_token, url, params, request.headers.get("X-Twilio-Signature")):
        log.warning("refused a %s webhook with a missing or wrong signature (url %s)", request.url.path, url)
        return PlainTextResponse("invalid Twilio signature", status_code=403)
    return params, body


class WhatsAppChannel:
    """Twilio WhatsApp: routes for the HTTP app, the outbox sender, and its background jobs."""

    name = "whatsapp"

    def __init__(
        self,
        twilio: TwilioConfig,
        http: HttpConfig,
        db: Database,
        pipeline: IntakePipeline,
        *,
        now: Callable[[], datetime],
        reconcile_every: float = 600.0,
        reconcile_window: timedelta = timedelta(hours=6),
        media_every: float = 30.0,
        writer: Executor | None = None,
    ) -> None:
        """``writer``: the thread that runs the webhooks' intake on SQLite (the application shares it with the
        outbox dispatcher); without it the channel makes its own."""
        assert twilio.account_sid and twilio.auth_token and twilio.whatsapp_from
        self.config = twilio
        self.public_url = http.public_url
        self.auth_token = twilio.auth_token.get_secret_value()
        self.db = db
        self.pipeline = pipeline
        self.now = now
        self.reconcile_every = reconcile_every
        self.reconcile_window = reconcile_window
        self.media_every = media_every
        self.client: Client | None = None
        self.sender: WhatsAppSender | None = None
        # SQLite has one writer at a time, and a writer that finds it busy sleeps in SQLite's busy handler
        # (1, 2, 5, 10, ... ms) even when the lock is free again: several webhooks ingesting at once in
        # several threads are much slower than one after the other. PostgreSQL ingests in parallel.
        self._owns_intake = writer is None and db.is_sqlite
        self._intake = writer if writer is not None or not db.is_sqlite else ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="whatsapp-intake")

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> WhatsAppSender:
        """Build the REST client and the sender (inside the running event loop)."""
        http_client = (LocalApiHttpClient(self.config.api_base_url) if self.config.api_base_url
                       else TwilioHttpClient())
        self.client = Client(self.config.account_sid, self.auth_token, http_client=http_client)
        callback = f"{self.public_url}{STATUS_PATH}" if self.public_url else None
        self.sender = WhatsAppSender(
            self.client, self.config.whatsapp_from or "", status_callback=callback,
            last_inbound=self._last_inbound, template_for=self._template_for, now=self.now,
        )
        return self.sender

    async def _ingest(self, message: InboundMessage) -> IntakeResult:
        """Store ``message`` through the intake pipeline, off the event loop."""
        if self._intake is None:
            return await asyncio.to_thread(self.pipeline.ingest, message)
        return await asyncio.get_running_loop().run_in_executor(self._intake, self.pipeline.ingest, message)

    async def aclose(self) -> None:
        """Close the REST client's connections (after the outbox dispatcher has stopped)."""
        if self._intake is not None and self._owns_intake:
            self._intake.shutdown(wait=True)
        if self.client is not None:
            close = getattr(self.client.http_client, "close", None)
            if close is not None:
                await close()

    async def run(self, stop: asyncio.Event) -> None:
        """Reconciliation and media fetching until ``stop``."""
        await asyncio.gather(
            every(self.reconcile_every, self.reconcile, stop,
                  StateLog(log, "whatsapp reconcile failed: %s", "whatsapp reconcile recovered")),
            every(self.media_every, self.fetch_media, stop,
                  StateLog(log, "whatsapp fetch_media failed: %s", "whatsapp fetch_media recovered")))

    # -- HTTP ---------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route(WEBHOOK_PATH, self.inbound, methods=["POST"]),
                Route(STATUS_PATH, self.status, methods=["POST"])]

    async def _signed_params(self, request: Request) -> tuple[dict[str, str], bytes] | Response:
        return await signed_params(request, self.auth_token, self.public_url)

    async def inbound(self, request: Request) -> Response:
        checked = await self._signed_params(request)
        if isinstance(checked, Response):
            return checked
        params, body = checked
        try:
            message = parse_whatsapp_webhook(params, self.now(), raw=body)
        except WebhookError as exc:
            return PlainTextResponse(str(exc), status_code=exc.status)
        # committed before the answer: Twilio does not retry a 5xx, so an error here would lose it
        await self._ingest(message)
        return Response(EMPTY_TWIML, media_type="text/xml")

    async def status(self, request: Request) -> Response:
        checked = await self._signed_params(request)
        if isinstance(checked, Response):
            return checked
        params, _ = checked
        try:
            update = parse_status_callback(params)
        except WebhookError as exc:
            return PlainTextResponse(str(exc), status_code=exc.status)

        def work(s: Session) -> None:
            tickets = TicketRepository(s)
            message_id = tickets.message_id_for("whatsapp", "out", update.sid)
            if message_id is None:
                # the callback can beat the commit that stores the sid: kept, applied when it is stored
                log.info("status callback for sid %s not stored yet: kept", update.sid)
                tickets.add_early_status("whatsapp", update.sid, update.state.value, update.error_code, self.now())
                return
            apply_status(s, message_id, update.state.value, update.error_code, self.now())

        await asyncio.to_thread(self.db.run, work)
        return Response(status_code=204)

    # -- sender support -------------------------------------------------------------

    async def _last_inbound(self, number: str) -> datetime | None:
        return await asyncio.to_thread(  # a read: it does not wait for the intake's writes
            self.db.read_direct,
            lambda d: TicketRepository(d).last_whatsapp_at(number.removeprefix("whatsapp:")))

    def _template_for(self, message: OutboundMessage) -> TemplateChoice | None:
        templates = self.config.templates
        purpose = message.extra.get("purpose", "")
        sid = templates.get(purpose) or templates.get("default")
        if not sid:
            return None
        return TemplateChoice(sid, {"1": message.extra.get("ticket_ref", ""), "2": message.text[:1000]})

    # -- background jobs --------------------------------------------------------------

    async def reconcile(self) -> int:
        """Ingest messages Twilio received whose webhook never reached slabot."""
        assert self.sender is not None
        since = self.now() - self.reconcile_window
        seen = await self.sender.received_since(since)
        added = 0
        for record in seen:
            stored = await asyncio.to_thread(
                self.db.run, lambda s, sid=record["MessageSid"]: TicketRepository(s).message_id_for(
                    "whatsapp", "in", sid)
            )
            if stored is not None:
                continue
            received = record.pop("date_sent") or self.now()
            if received.tzinfo is None:
                received = received.replace(tzinfo=timezone.utc)
            try:
                message = parse_whatsapp_webhook(record, received)
            except WebhookError as exc:
                log.warning("reconciliation skipped %s: %s", record.get("MessageSid"), exc)
                continue
            result = await self._ingest(message)
            if result.outcome is Outcome.DUPLICATE:  # its webhook arrived meanwhile
                continue
            log.info("reconciliation ingested %s (%s)", message.external_id, result.outcome.value)
            added += 1
        return added

    async def fetch_media(self) -> int:
        """Download attachments that only have a URL, with the account's credentials."""
        now = self.now()
        pending = await asyncio.to_thread(
            self.db.run, lambda s: TicketRepository(s).unfetched_attachments("whatsapp", 20, now))
        if not pending:
            return 0
        fetched = 0
        auth = (self.config.account_sid or "", self.auth_token)
        base = self.config.api_base_url
        async with httpx.AsyncClient(auth=auth, follow_redirects=True, timeout=30) as client:
            for attachment_id, url in pending:
                # one failing URL waits for its own retry; the others are fetched meanwhile
                target = rebase_url(base, url) if base else url
                try:
                    response = await client.get(target)
                    response.raise_for_status()
                except httpx.HTTPError as exc:
                    await asyncio.to_thread(self.db.run, lambda s, i=attachment_id, e=exc: self._media_failed(s, i, e))
                    continue
                data = response.content
                await asyncio.to_thread(
                    self.db.run, lambda s, i=attachment_id, d=data, t=response.headers.get("content-type"):
                    TicketRepository(s).store_attachment(i, d, t))
                fetched += 1
        return fetched

    def _media_failed(self, s: Session, attachment_id: int, exc: httpx.HTTPError) -> None:
        error = f"{exc.__class__.__name__}: {exc}"
        retry_at = TicketRepository(s).attachment_fetch_failed(attachment_id, error, self.now(),
                                                               max_attempts=MEDIA_ATTEMPTS, backoff=MEDIA_BACKOFF)
        if retry_at is None:
            log.warning("media %s could not be downloaded after %d attempts: %s", attachment_id, MEDIA_ATTEMPTS, error)
        else:
            log.info("media %s: download failed (%s); next try at %s", attachment_id, error, retry_at.isoformat())
