"""Outgoing webhooks: ``ticket.created``, ``message.created``, ``ticket.resolved`` and ``sla.breached`` POSTed to the
``[[webhooks]]`` endpoints, signed, at least once, each event id once per endpoint when all goes well.

How it works
------------
An event is queued in the transaction of its change (:func:`storage.webhooks.record_event`, called where a message,
a ticket opened or resolved is stored), one delivery per endpoint that takes its type. :class:`WebhookDispatcher`
claims a due delivery, makes the event's JSON body once (``id``, ``type``, ``at``, ``ticket``, and ``message`` for
``message.created``; every retry sends the same bytes), POSTs it with ``X-Slabot-Signature: sha256=HMAC`` and
records the outcome: a 2xx answer is delivered; anything else is tried again with backoff (doubling from 30
seconds to an hour, with jitter) until the delivery is a day old, then it is failed and staff are told (event
``webhook_failed``, posted to the staff chat). A delivery a crashed worker left ``sending`` is sent again after
its lease: receivers de-duplicate by ``id``. ``sla.breached`` is found by :meth:`WebhookDispatcher.scan_breaches`:
an open ticket whose response deadline passed without a staff response, queued once per deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from bot.config import WebhookConfig
from bot.lifecycle import StateLog
from bot.views import local_iso, message_json, ticket_json
from channels.messages import utc_now
from channels.webhook import WebhookAnswer, WebhookSendError, post_event
from storage.database import Database, Session
from storage.direct import Direct
from storage.records import OPEN_STATES
from storage.repositories import TicketRepository
from storage.webhooks import (
    MESSAGE_CREATED,
    SLA_BREACHED,
    Delivery,
    WebhookRepository,
    WebhookState,
    record_event,
    sync_endpoints,
)

log = logging.getLogger(__name__)

WEBHOOK_FAILED = "webhook_failed"  # the event that tells staff an endpoint did not take an event for a day
TEST_EVENT = "webhook.test"


def event_body(s: Session, delivery: Delivery) -> dict[str, Any]:
    """The JSON of an event: ``id``, ``type``, ``at``, ``ticket`` (as ``tickets show --json`` without its
    messages), and the ``message`` of a ``message.created``."""
    tickets = TicketRepository(s)
    body: dict[str, Any] = {"id": delivery.uid, "type": delivery.type, "at": local_iso(delivery.at),
                            "ticket": ticket_json(tickets.get(delivery.ticket_id)) if delivery.ticket_id else None}
    if delivery.message_id is not None:
        body["message"] = message_json(tickets.message(delivery.message_id))
    return body


def encode(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


class WebhookDispatcher:
    """Claims due deliveries and POSTs them; scans for breached deadlines when an endpoint takes them."""

    def __init__(self, db: Database, hooks: Sequence[WebhookConfig], *, now: Callable[[], datetime] = utc_now,
                 worker: str | None = None, backoff: timedelta = timedelta(seconds=30),
                 max_backoff: timedelta = timedelta(hours=1), give_up_after: timedelta = timedelta(hours=24),
                 lease: timedelta = timedelta(minutes=5), timeout: float = 10.0) -> None:
        self.db = db
        self.hooks = {hook.endpoint: hook for hook in hooks}
        self.now = now
        self.worker = worker or f"webhooks-{uuid.uuid4().hex[:8]}"
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.give_up_after = give_up_after
        self.lease = lease
        self.timeout = timeout
        self.client: httpx.AsyncClient | None = None

    def sync(self) -> None:
        """Mirror the config's endpoints in the database (on start), so every process queues their events."""
        endpoints = {name: list(hook.events) for name, hook in self.hooks.items()}
        self.db.run(lambda s: sync_endpoints(s, endpoints))

    async def start(self) -> None:
        await asyncio.to_thread(self.sync)
        self.client = httpx.AsyncClient(follow_redirects=False)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Deliver until ``stop`` is set; errors are logged once per change of state."""
        state = StateLog(log, "webhook deliveries failed (%s); retrying", "webhook deliveries work again",
                         exc_info=True)
        while not stop.is_set():
            try:
                await self.scan_breaches()
                handled = await self.run_once()
            except Exception as exc:  # noqa: BLE001 - the loop must survive a database hiccup
                state.failed(exc)
                handled = 0
            else:
                state.worked()
            if handled:
                continue
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass

    async def run_once(self, limit: int = 50) -> int:
        """Deliver what is due now, at most ``limit``; how many were tried."""
        handled = 0
        stale_before = self.now() - self.lease
        await asyncio.to_thread(self.db.run_direct, lambda d: WebhookRepository(d).release_stale(stale_before))
        while handled < limit:
            delivery = await asyncio.to_thread(self.db.run_direct,
                                               lambda d: WebhookRepository(d).claim_next(self.worker, self.now()))
            if delivery is None:
                break
            handled += 1
            await self._deliver(delivery)
        return handled

    async def _deliver(self, delivery: Delivery) -> None:
        hook = self.hooks.get(delivery.endpoint)
        if hook is None:
            await self._record(lambda d: self._failed(d, delivery, None, "the endpoint is no longer configured"))
            return
        body = delivery.body
        if body is None:
            made = encode(await asyncio.to_thread(self.db.run, lambda s: event_body(s, delivery)))
            body = await asyncio.to_thread(self.db.run_direct,
                                           lambda d: WebhookRepository(d).keep_body(delivery.event_id, made))
        answer: WebhookAnswer | None = None
        error: str | None = None
        try:
            answer = await self._post(hook, body.encode("utf-8"), delivery.uid, delivery.type)
        except WebhookSendError as exc:
            error = str(exc)
        if answer is not None and answer.ok:
            await self._record(lambda d: WebhookRepository(d).finish(delivery.id, WebhookState.DELIVERED, self.now(),
                                                                      status=answer.status))
            return
        status = answer.status if answer is not None else None
        error = error or f"answered {status}: {answer.text[:200] if answer else ''}"
        if self.now() - delivery.created_at >= self.give_up_after:
            log.warning("webhook %s: event %s failed for good after %d attempts (%s)", delivery.endpoint,
                        delivery.uid, delivery.attempts, error)
            await self._record(lambda d: self._failed(d, delivery, status, error or ""))
            return
        step = self.backoff * (2 ** max(delivery.attempts - 1, 0))
        retry_at = self.now() + min(step, self.max_backoff) * (0.5 + random.random() / 2)
        await self._record(lambda d: WebhookRepository(d).finish(delivery.id, WebhookState.PENDING, self.now(),
                                                                  status=status, error=error, retry_at=retry_at))

    async def _post(self, hook: WebhookConfig, body: bytes, uid: str, type_: str) -> WebhookAnswer:
        if self.client is None:
            self.client = httpx.AsyncClient(follow_redirects=False)
        return await post_event(self.client, hook.url, hook.secret.get_secret_value(), body, uid, type_,
                                timeout=self.timeout)

    async def _record(self, work: Callable[[Direct], None]) -> None:
        await asyncio.to_thread(self.db.run_direct, work)

    def _failed(self, d: Direct, delivery: Delivery, status: int | None, error: str) -> None:
        now = self.now()
        WebhookRepository(d).finish(delivery.id, WebhookState.FAILED, now, status=status, error=error)
        TicketRepository(d).add_event(WEBHOOK_FAILED, now, ticket_id=delivery.ticket_id, data={
            "recipient": delivery.endpoint, "event": delivery.uid, "type": delivery.type,
            "attempts": delivery.attempts, "error": error[:500], "staff_told": True})

    async def scan_breaches(self) -> int:
        """Queue ``sla.breached`` for each response deadline passed in the last day without a staff response,
        once per deadline; how many were queued."""
        if not any(SLA_BREACHED in hook.events for hook in self.hooks.values()):
            return 0

        def work(d: Direct) -> int:
            now = self.now()
            queued = 0
            for ticket_id, due in WebhookRepository(d).breached(now, now - timedelta(days=1), OPEN_STATES):
                if record_event(d, SLA_BREACHED, due, now, ticket_id=ticket_id,
                                dedupe=f"{SLA_BREACHED}:{ticket_id}:{due.isoformat()}"):
                    TicketRepository(d).add_event("sla_breached", now, ticket_id=ticket_id,
                                                  data={"due": due.isoformat()})
                    queued += 1
            return queued

        return await asyncio.to_thread(self.db.run_direct, work)


async def send_test(hook: WebhookConfig, now: datetime, *, timeout: float = 10.0) -> WebhookAnswer:
    """Send a signed ``webhook.test`` event to ``hook`` now (not queued); its answer.
    :class:`channels.webhook.WebhookSendError` when it cannot be reached."""
    uid = str(uuid.uuid4())
    body = encode({"id": uid, "type": TEST_EVENT, "at": local_iso(now), "ticket": None})
    async with httpx.AsyncClient(follow_redirects=False) as client:
        return await post_event(client, hook.url, hook.secret.get_secret_value(), body.encode("utf-8"), uid,
                                TEST_EVENT, timeout=timeout)


__all__ = ["MESSAGE_CREATED", "TEST_EVENT", "WEBHOOK_FAILED", "WebhookDispatcher", "encode", "event_body", "send_test"]
