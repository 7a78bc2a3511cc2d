"""The WhatsApp channel's use cases: messages ingested, status callbacks applied, media fetched, reconciliation.

Inbound: the webhook ``POST /webhooks/twilio/whatsapp`` (:mod:`bot.web.twilio`:
the Twilio signature against ``http.public_url``, 403 when it does not match,
nothing stored) parses the form and hands the message to
:meth:`WhatsAppChannel.ingest`, which commits it through the intake pipeline
BEFORE the webhook answers 200 (Twilio does not retry a 5xx). A MessageSid
already stored answers 200 and changes nothing.

Status: ``POST /webhooks/twilio/status`` (signed too) hands the parsed callback
to :meth:`WhatsAppChannel.apply_status_callback`, which moves the delivery
state forward only; duplicates, reordering and unknown sids answer 200. A
message Twilio refused outside the 24-hour window (error 63016) is marked as
needing staff, once.

Background: media are fetched with the account's credentials, from Twilio's API
host only (:mod:`channels.whatsapp.media`), and retried;
reconciliation lists what Twilio received in the last hours and ingests any
message whose webhook never arrived.

When a message was received (R23, the start of its SLA clock): for a webhook,
the moment it arrived; for a message found by reconciliation, Twilio's own time
of receipt (the message's ``date_created``), never later than now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import httpx

from bot.intake import IntakeResult, Outcome
from bot.lifecycle import StateLog, every
from bot.outbox import apply_status
from channels.messages import ChannelName, InboundMessage, OutboundMessage
from channels.whatsapp import (
    StatusUpdate,
    TemplateChoice,
    WebhookError,
    WhatsAppSender,
    parse_whatsapp_webhook,
    MediaError,
    MediaFetcher,
    MediaRefused,
    rest_client,
)
from storage.database import Database, DatabaseUnavailable, Session
from storage.repositories import TicketRepository

if TYPE_CHECKING:
    from bot.config import HttpConfig, TwilioConfig
    from bot.intake import IntakePipeline

log = logging.getLogger(__name__)

MEDIA_ATTEMPTS = 6  # downloads of one media URL before staff are told it cannot be fetched
MEDIA_BACKOFF = timedelta(seconds=30)  # doubled after every failed download, at most an hour
WHATSAPP = ChannelName.WHATSAPP.value


def _received_at(twilio_date: datetime | None, now: datetime) -> datetime:
    """Twilio's time of receipt of a reconciled message (UTC when naive), not after ``now``; ``now`` without one."""
    if twilio_date is None:
        return now
    if twilio_date.tzinfo is None:
        twilio_date = twilio_date.replace(tzinfo=timezone.utc)
    return min(twilio_date, now)


class WhatsAppChannel:
    """Twilio WhatsApp: intake and status callbacks for the webhooks, the outbox sender, and background jobs."""

    name = WHATSAPP

    def __init__(
        self,
        twilio: TwilioConfig,
        http: HttpConfig,
        db: Database,
        pipeline: IntakePipeline,
        *,
        now: Callable[[], datetime],
        status_path: str | None,
        reconcile_every: float = 600.0,
        reconcile_window: timedelta = timedelta(hours=6),
        media_every: float = 30.0,
        writer: Executor | None = None,
    ) -> None:
        """``status_path``: where the HTTP app takes status callbacks (asked for when ``http.public_url`` is set);
        ``writer``: the thread that runs the webhooks' intake in groups (the application shares it with the
        outbox dispatcher, see :mod:`storage.writer`); without it the channel makes its own on SQLite."""
        assert twilio.account_sid and twilio.auth_token and twilio.whatsapp_from
        self.config = twilio
        self.public_url = http.public_url
        self.status_path = status_path
        self.auth_token = twilio.auth_token.get_secret_value()
        self.db = db
        self.pipeline = pipeline
        self.now = now
        self.reconcile_every = reconcile_every
        self.reconcile_window = reconcile_window
        self.media_every = media_every
        self.media = MediaFetcher(twilio.account_sid, self.auth_token, api_base_url=twilio.api_base_url,
                                  max_bytes=twilio.max_media_bytes)
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
        client = rest_client(self.config.account_sid or "", self.auth_token, self.config.api_base_url)
        callback = f"{self.public_url}{self.status_path}" if self.public_url and self.status_path else None
        self.sender = WhatsAppSender(
            client, self.config.whatsapp_from or "", status_callback=callback,
            last_inbound=self._last_inbound, template_for=self._template_for, now=self.now,
        )
        return self.sender

    async def ingest(self, message: InboundMessage) -> IntakeResult:
        """Store ``message`` through the intake pipeline, off the event loop (committed when this returns)."""
        if self._intake is None:
            return await asyncio.to_thread(self.pipeline.ingest, message)
        return await asyncio.get_running_loop().run_in_executor(self._intake, self.pipeline.ingest, message)

    async def aclose(self) -> None:
        """Close the REST client's connections (after the outbox dispatcher has stopped)."""
        if self._intake is not None and self._owns_intake:
            self._intake.shutdown(wait=True)
        if self.sender is not None:
            await self.sender.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        """Reconciliation and media fetching until ``stop``."""
        await asyncio.gather(
            every(self.reconcile_every, self.reconcile, stop,
                  StateLog(log, "whatsapp reconcile failed: %s", "whatsapp reconcile recovered")),
            every(self.media_every, self.fetch_media, stop,
                  StateLog(log, "whatsapp fetch_media failed: %s", "whatsapp fetch_media recovered")))

    # -- status callbacks ----------------------------------------------------------------

    async def apply_status_callback(self, update: StatusUpdate) -> None:
        """A delivery status Twilio reported: applied forward only, or kept until the message's sid is stored."""

        def work(s: Session) -> None:
            tickets = TicketRepository(s)
            message_id = tickets.message_id_for(WHATSAPP, "out", update.sid)
            if message_id is None:
                # the callback can beat the commit that stores the sid: kept, applied when it is stored
                log.info("status callback for sid %s not stored yet: kept", update.sid)
                tickets.add_early_status(WHATSAPP, update.sid, update.state.value, update.error_code, self.now())
                return
            apply_status(s, message_id, update.state.value, update.error_code, self.now())

        await asyncio.to_thread(self.db.run, work)

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
                    WHATSAPP, "in", sid)
            )
            if stored is not None:
                continue
            received = _received_at(record.pop("received_at"), self.now())
            try:
                message = parse_whatsapp_webhook(record, received)
            except WebhookError as exc:
                log.warning("reconciliation skipped %s: %s", record.get("MessageSid"), exc)
                continue
            try:
                result = await self.ingest(message)
            except DatabaseUnavailable:
                raise  # the database is down: the next round tries them all again
            except Exception:  # noqa: BLE001 - one message that cannot be stored does not hold up the others
                log.exception("reconciliation could not store %s; the messages after it go on", message.external_id)
                continue
            if result.outcome is Outcome.DUPLICATE:  # its webhook arrived meanwhile
                continue
            log.info("reconciliation ingested %s (%s)", message.external_id, result.outcome.value)
            added += 1
        return added

    async def fetch_media(self) -> int:
        """Download attachments that only have a URL: from Twilio's API host only, with the account's
        credentials (:class:`channels.whatsapp.media.MediaFetcher`). One that fails is tried again later; one
        that is refused (another host, too large) is given up at once, and noted on its attachment."""
        now = self.now()
        pending = await asyncio.to_thread(
            self.db.run, lambda s: TicketRepository(s).unfetched_attachments(WHATSAPP, 20, now))
        if not pending:
            return 0
        fetched = 0
        async with httpx.AsyncClient(timeout=self.media.timeout, follow_redirects=False) as client:
            for attachment_id, url in pending:
                # one failing URL waits for its own retry; the others are fetched meanwhile
                try:
                    media = await self.media.fetch(url, client)
                except MediaError as exc:
                    await asyncio.to_thread(self.db.run, lambda s, i=attachment_id, e=exc: self._media_failed(s, i, e))
                    continue
                await asyncio.to_thread(
                    self.db.run, lambda s, i=attachment_id, m=media:
                    TicketRepository(s).store_attachment(i, m.data, m.content_type))
                fetched += 1
        return fetched

    def _media_failed(self, s: Session, attachment_id: int, exc: MediaError) -> None:
        error = str(exc)
        retry_at = TicketRepository(s).attachment_fetch_failed(
            attachment_id, error, self.now(), max_attempts=1 if isinstance(exc, MediaRefused) else MEDIA_ATTEMPTS,
            backoff=MEDIA_BACKOFF)
        if isinstance(exc, MediaRefused):
            log.warning("media %s not downloaded: %s", attachment_id, error)
        elif retry_at is None:
            log.warning("media %s could not be downloaded after %d attempts: %s", attachment_id, MEDIA_ATTEMPTS, error)
        else:
            log.info("media %s: download failed (%s); next try at %s", attachment_id, error, retry_at.isoformat())
