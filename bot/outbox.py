"""The outbox dispatcher: sends queued messages through per-channel senders.

How it works
------------
Every outbound message is first a row in ``outbox``, written in the same
transaction as what caused it. The dispatcher claims a due row (``pending`` ->
``sending``, one UPDATE that only one worker can win), hands it to the
channel's :class:`~channels.messages.Sender`, and records the outcome:

- sent: ``sent``, with the channel's id; delivery states only move forward;
- temporary failure (rate limit, server down): back to ``pending`` with
  exponential backoff and jitter (or the server's ``retry_after``);
- permanent failure: ``failed``, and staff are told (an event);
- cannot be sent automatically: ``needs_staff``;
- crash while sending: the row stays ``sending``; after the lease it becomes
  ``unknown`` and is never re-sent blindly (at most once), staff are told;
- a timeout after the request went out (the channel may have the message):
  back to ``pending`` marked ``uncertain_since``; before the next attempt the
  channel is asked whether it has the message (:class:`Reconciling`) and only
  if it has not is it sent again. A channel that cannot be asked gets
  ``unknown`` instead of a second send.

A delivery-status callback that arrives before the send's own commit stored the
channel's id is kept (``early_statuses``) and applied when the id is stored.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session

from channels.messages import (
    ChannelName,
    DeliveryState,
    NeedsStaffError,
    OutboundMessage,
    PermanentSendError,
    Reconciling,
    SendReceipt,
    Sender,
    TemporarySendError,
    UncertainSendError,
    moves_forward,
)
from channels.whatsapp import OUTSIDE_WINDOW_CODES
from storage.database import Database
from storage.records import OutboxRecord
from storage.repositories import OutboxRepository, TicketRepository

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def advance_delivery(s: Session, message_id: int, state: str, external_id: str | None = None) -> bool:
    """Move a message's delivery state forward only; False when ``state`` is not later."""
    tickets = TicketRepository(s)
    current = tickets.message(message_id).delivery_state
    if not moves_forward(current, state):
        if external_id is not None:
            tickets.set_delivery_state(message_id, current, external_id)
        return False
    tickets.set_delivery_state(message_id, state, external_id)
    return True


def apply_status(s: Session, message_id: int, state: str, error_code: int | None, now: datetime) -> None:
    """A channel's delivery-status report for a stored message: forward only; "outside the window" tells staff."""
    if error_code in OUTSIDE_WINDOW_CODES:
        if advance_delivery(s, message_id, DeliveryState.NEEDS_STAFF.value):
            TicketRepository(s).add_event("message_needs_staff", now, message_id=message_id,
                                          data={"error": f"{error_code}: outside the 24-hour window",
                                                "staff_told": True})
        return
    advance_delivery(s, message_id, state)


class OutboxDispatcher:
    """Claims due outbox rows and sends them, at most once each."""

    def __init__(
        self,
        db: Database,
        senders: Mapping[str, Sender],
        *,
        worker: str = "slabot",
        now: Callable[[], datetime] = _utc_now,
        backoff: timedelta = timedelta(seconds=30),
        max_backoff: timedelta = timedelta(hours=1),
        max_attempts: int = 12,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        self.db = db
        self.senders = dict(senders)
        self.worker = worker
        self.now = now
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.lease = lease

    async def run_once(self, limit: int = 50) -> int:
        """Send what is due now; returns how many rows were handled."""
        await asyncio.to_thread(self.db.run, self._expire_stale)
        now = self.now()
        ids = await asyncio.to_thread(self.db.run, lambda s: OutboxRepository(s).due_ids(now, limit))
        handled = 0
        for outbox_id in ids:
            item = await asyncio.to_thread(
                self.db.run, lambda s, i=outbox_id: OutboxRepository(s).claim(i, self.worker, self.now())
            )
            if item is None:
                continue  # another worker took it
            await self._send(item)
            handled += 1
        return handled

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Dispatch until ``stop`` is set; errors are logged once per change of state."""
        failing = False
        while not stop.is_set():
            try:
                await self.run_once()
                if failing:
                    log.info("outbox dispatcher recovered")
                    failing = False
            except Exception:  # noqa: BLE001 - the loop must survive a database hiccup
                if not failing:
                    log.exception("outbox dispatcher failed; retrying")
                    failing = True
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass

    def _message(self, item: OutboxRecord) -> OutboundMessage:
        payload = item.payload
        return OutboundMessage(
            outbox_id=item.id,
            channel=ChannelName(item.channel),
            recipient=item.recipient,
            text=str(payload.get("text", "")),
            subject=payload.get("subject"),
            in_reply_to=payload.get("in_reply_to"),
            references=tuple(payload.get("references") or ()),
            message_id=payload.get("message_id"),
            extra={k: str(v) for k, v in payload.items()
                   if k in ("purpose", "ticket_ref", "language", "staff", "auto") and v is not None},
        )

    async def _send(self, item: OutboxRecord) -> None:
        sender = self.senders.get(item.channel)
        if sender is None:
            if item.channel == ChannelName.PHONE.value:
                await self._finish(item, DeliveryState.NEEDS_STAFF, "a phone channel cannot send: call back")
            else:
                # the channel is off (no credentials): keep the message until it is configured
                await self._retry(item, f"channel {item.channel} is off", None, count=False)
            return
        message = self._message(item)
        if item.uncertain_since is not None and not await self._reconcile(item, sender, message):
            return
        started = self.now()
        try:
            receipt: SendReceipt = await sender.send(message)
        except UncertainSendError as exc:
            await self._retry(item, str(exc), exc.retry_after, uncertain_since=item.uncertain_since or started)
        except TemporarySendError as exc:
            await self._retry(item, str(exc), exc.retry_after)
        except PermanentSendError as exc:
            await self._finish(item, DeliveryState.FAILED, str(exc))
        except NeedsStaffError as exc:
            await self._finish(item, DeliveryState.NEEDS_STAFF, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an unknown outcome must not be re-sent blindly
            log.exception("sending outbox row %s failed in an unexpected way", item.id)
            await self._finish(item, DeliveryState.UNKNOWN, f"{exc.__class__.__name__}: {exc}")
        else:
            await asyncio.to_thread(self.db.run, lambda s: self._sent(s, item, receipt))

    async def _reconcile(self, item: OutboxRecord, sender: Sender, message: OutboundMessage) -> bool:
        """An earlier attempt may have arrived: True to send now, False when handled here."""
        assert item.uncertain_since is not None
        if not isinstance(sender, Reconciling):
            await self._finish(item, DeliveryState.UNKNOWN, "an earlier attempt may have arrived and the channel "
                               "cannot be asked: not sent again")
            return False
        try:
            found = await sender.find_sent(message, item.uncertain_since)
        except TemporarySendError as exc:
            await self._retry(item, f"cannot ask the channel whether an earlier attempt arrived: {exc}",
                              exc.retry_after, uncertain_since=item.uncertain_since)
            return False
        except Exception as exc:  # noqa: BLE001 - not knowing means not sending twice
            await self._finish(item, DeliveryState.UNKNOWN, f"cannot ask the channel whether an earlier attempt "
                               f"arrived ({exc.__class__.__name__}: {exc}): not sent again")
            return False
        if found is None:
            log.info("outbox row %s: the channel has no earlier attempt; sending again", item.id)
            return True
        await asyncio.to_thread(self.db.run, lambda s: self._sent(s, item, found, reconciled=True))
        return False

    def _sent(self, s: Session, item: OutboxRecord, receipt: SendReceipt, *, reconciled: bool = False) -> None:
        now = self.now()
        OutboxRepository(s).finish(item.id, "sent", now)
        advance_delivery(s, item.message_id, receipt.state.value, receipt.external_id)
        tickets = TicketRepository(s)
        data: dict[str, object] = {"outbox": item.id, "external_id": receipt.external_id}
        if reconciled:
            data["reconciled"] = "an earlier attempt had arrived; not sent again"
        tickets.add_event("message_sent", now, message_id=item.message_id, data=data)
        if receipt.external_id:
            for state, code in tickets.take_early_statuses(item.channel, receipt.external_id):
                apply_status(s, item.message_id, state, code, now)

    async def _retry(self, item: OutboxRecord, error: str, retry_after: float | None, *, count: bool = True,
                     uncertain_since: datetime | None = None) -> None:
        if count and item.attempts >= self.max_attempts:
            if uncertain_since is not None:
                await self._finish(item, DeliveryState.UNKNOWN, f"gave up after {item.attempts} attempts, the "
                                   f"last outcome unknown: {error}")
            else:
                await self._finish(item, DeliveryState.FAILED, f"gave up after {item.attempts} attempts: {error}")
            return
        step = self.backoff * (2 ** max(item.attempts - 1, 0))
        delay = min(step, self.max_backoff) * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        retry_at = self.now() + delay

        attempts = None if count else max(item.attempts - 1, 0)  # a channel that is off costs no attempt
        await asyncio.to_thread(self.db.run, lambda s: OutboxRepository(s).finish(
            item.id, "pending", self.now(), error=error, retry_at=retry_at, attempts=attempts,
            uncertain_since=uncertain_since))

    async def _finish(self, item: OutboxRecord, state: DeliveryState, error: str) -> None:
        def work(s: Session) -> None:
            now = self.now()
            OutboxRepository(s).finish(item.id, state.value, now, error=error)
            advance_delivery(s, item.message_id, state.value)
            TicketRepository(s).add_event(f"message_{state.value}", now, message_id=item.message_id,
                                          data={"outbox": item.id, "error": error, "staff_told": True})

        log.warning("outbox row %s: %s (%s)", item.id, state.value, error)
        await asyncio.to_thread(self.db.run, work)

    def _expire_stale(self, s: Session) -> None:
        """Rows a dead worker left in ``sending``: outcome unknown, never re-sent blindly."""
        repo = OutboxRepository(s)
        now = self.now()
        for outbox_id in repo.stale_sending(now - self.lease):
            item = repo.get(outbox_id)
            repo.finish(outbox_id, DeliveryState.UNKNOWN.value, now,
                        error="the sender stopped while sending; outcome unknown, not re-sent")
            advance_delivery(s, item.message_id, DeliveryState.UNKNOWN.value)
            TicketRepository(s).add_event("message_unknown", now, message_id=item.message_id,
                                          data={"outbox": outbox_id, "staff_told": True})
