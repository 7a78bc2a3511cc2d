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
- a staff reply that ends ``failed`` or ``needs_staff`` (here or by a status
  callback) no longer counts as the response: :func:`bot.desk.reply_failed`
  (R8);
- a timeout after the request went out (the channel may have the message):
  back to ``pending`` marked ``uncertain_since``; before the next attempt the
  channel is asked whether it has the message (:class:`Reconciling`: WhatsApp
  lists what Twilio accepted) and only if it has not is it sent again; a
  channel whose receiving side takes a second send as the same message
  (:class:`RepeatSafe`: e-mail with the row's fixed Message-ID) sends again. Any
  other channel gets ``unknown`` instead of a second send;
- a crash while sending (kill -9, a power cut) leaves the row ``sending``. Each
  worker is named by its host, process id and a random part
  (:func:`worker_name`), so a restarted slabot sees at once that the worker
  which claimed it is gone (a process of this host that no longer runs); a
  worker on another host is taken to be gone after the lease. Such a row goes
  back to ``pending`` marked ``uncertain_since`` its claim, and is reconciled
  as above: every message delivered once, across any number of crashes.

A delivery-status callback that arrives before the send's own commit stored the
channel's id is kept (``early_statuses``) and applied when the id is stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from datetime import datetime, timedelta

from bot.desk import reply_failed
from bot.leases import running, worker_gone, worker_name
from bot.lifecycle import StateLog
from channels.messages import (
    ChannelName,
    DeliveryState,
    NeedsStaffError,
    OutboundFile,
    OutboundMessage,
    PermanentSendError,
    Reconciling,
    RepeatSafe,
    Sender,
    SendReceipt,
    TemporarySendError,
    UncertainSendError,
    moves_forward,
    utc_now,
)
from storage.database import Database, DatabaseUnavailable, Session
from storage.direct import Direct
from storage.records import OutboxRecord, OutboxState, SendingRow
from storage.repositories import OutboxRepository, TicketRepository

log = logging.getLogger(__name__)



def advance_delivery(source: Session | Direct, message_id: int, state: str, external_id: str | None = None) -> bool:
    """Move a message's delivery state forward only; False when ``state`` is not later."""
    tickets = TicketRepository(source)
    current = tickets.delivery_state(message_id)
    if not moves_forward(current, state):
        if external_id is not None:
            tickets.set_delivery_state(message_id, current, external_id)
        return False
    tickets.set_delivery_state(message_id, state, external_id)
    return True


def apply_status(source: Session | Direct, message_id: int, state: str, error_code: int | None,
                 now: datetime) -> None:
    """A channel's delivery-status report for a stored message: forward only; "outside the window" tells staff;
    a staff reply failed for good is no response (R8)."""
    if state == DeliveryState.NEEDS_STAFF:
        if advance_delivery(source, message_id, DeliveryState.NEEDS_STAFF.value):
            TicketRepository(source).add_event("message_needs_staff", now, message_id=message_id,
                                               data={"error": f"{error_code}: outside the 24-hour window",
                                                     "staff_told": True})
            reply_failed(source, message_id, now)
        return
    if advance_delivery(source, message_id, state) and state == DeliveryState.FAILED:
        reply_failed(source, message_id, now)


RecordOutcome = Callable[[Direct], None]  # records how a send went, in the transaction that claims the next row


class OutboxDispatcher:
    """Claims due outbox rows and sends them, at most once each."""

    def __init__(
        self,
        db: Database,
        senders: Mapping[str, Sender],
        *,
        worker: str | None = None,
        now: Callable[[], datetime] = utc_now,
        backoff: timedelta = timedelta(seconds=30),
        max_backoff: timedelta = timedelta(hours=1),
        max_attempts: int = 12,
        lease: timedelta = timedelta(minutes=5),
        writer: Executor | None = None,
    ) -> None:
        """``writer``: where the dispatcher's transactions run (on SQLite the front lane of the thread the
        webhooks' intake writes on, see :mod:`storage.writer`); by default a thread of asyncio's. ``worker``: the
        name on the rows it claims (:func:`worker_name` by default); ``lease``: how long a row claimed by a worker
        of another host may stay ``sending`` before it is taken back."""
        self.db = db
        self.writer = writer
        self.senders = dict(senders)
        self.worker = worker or worker_name()
        self.now = now
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.lease = lease
        # the row handed to its channel whose outcome is not recorded yet: if the round fails (the database), it may
        # have arrived; any other row left ``sending`` under this name was never handed to the channel
        self._unrecorded: int | None = None

    async def run_once(self, limit: int = 50) -> int:
        """Send what is due now, at most ``limit`` rows; returns how many rows were handled.

        One transaction per row: it records the outcome of the row just sent and claims the next one
        (the first also takes back rows a stopped worker left in ``sending``). A row is claimed only when it is about
        to be sent, so another worker takes the rows after it meanwhile.
        """
        item = await self._write(self._take_back_and_claim)
        self._unrecorded = None  # taken back for good: that transaction is committed
        handled = 0
        while item is not None:
            outcome = await self._send(item)
            handled += 1
            more = handled < limit
            item = await self._write(functools.partial(self._record_and_claim, outcome=outcome, claim=more))
            self._unrecorded = None
        return handled

    async def _write(self, work: Callable[[Direct], OutboxRecord | None]) -> OutboxRecord | None:
        return await asyncio.get_running_loop().run_in_executor(self.writer, self.db.run_direct, work)

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Dispatch until ``stop`` is set; errors are logged once per change of state.

        After a round that reached its limit the next starts at once; otherwise it waits ``interval``.
        """
        state = StateLog(log, "outbox dispatcher failed (%s); retrying", "outbox dispatcher recovered", exc_info=True)
        limit = 50
        running(self.worker)
        try:
            await self._rounds(stop, interval, state, limit)
        finally:
            running(self.worker, False)

    async def _rounds(self, stop: asyncio.Event, interval: float, state: StateLog, limit: int) -> None:
        while not stop.is_set():
            handled = 0
            try:
                handled = await self.run_once(limit)
            except Exception as exc:  # noqa: BLE001 - the loop must survive a database hiccup
                state.failed(exc)
            else:
                state.worked()
            if handled >= limit:
                await asyncio.sleep(0)  # more is due: go on, after what else is waiting to run
                continue
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass

    def _take_back_and_claim(self, direct: Direct) -> OutboxRecord | None:
        self._take_back_abandoned(direct)
        return OutboxRepository(direct).claim_next(self.worker, self.now())

    def _record_and_claim(self, direct: Direct, outcome: RecordOutcome, claim: bool) -> OutboxRecord | None:
        outcome(direct)
        return OutboxRepository(direct).claim_next(self.worker, self.now()) if claim else None

    def _message(self, item: OutboxRecord) -> OutboundMessage:
        draft = item.draft
        extra = {"purpose": draft.purpose or None, "ticket_ref": draft.ticket_ref, "language": draft.language,
                 "staff": draft.staff, "auto": draft.auto}
        return OutboundMessage(
            outbox_id=item.id,
            channel=ChannelName(draft.channel),
            recipient=draft.recipient,
            text=draft.text,
            subject=draft.subject,
            in_reply_to=draft.in_reply_to,
            references=draft.references,
            message_id=draft.mail_message_id,
            extra={k: str(v) for k, v in extra.items() if v is not None},
            send_key=item.send_key,
        )

    async def _send(self, item: OutboxRecord) -> RecordOutcome:
        """Send ``item``; what to record of it (not yet recorded)."""
        sender = self.senders.get(item.channel)
        if sender is None:
            if item.channel == ChannelName.PHONE.value:
                return self._finish(item, DeliveryState.NEEDS_STAFF, "a phone channel cannot send: call back")
            # the channel is off (no credentials): keep the message until it is configured
            return self._retry(item, f"channel {item.channel} is off", None, count=False)
        message = await self._with_files(item, self._message(item))
        if item.uncertain_since is not None:
            instead = await self._reconcile(item, sender, message)
            if instead is not None:
                return instead
        started = self.now()
        self._unrecorded = item.id  # from here on it may arrive
        try:
            receipt: SendReceipt = await sender.send(message)
        except UncertainSendError as exc:
            return self._retry(item, str(exc), exc.retry_after, uncertain_since=item.uncertain_since or started)
        except TemporarySendError as exc:
            return self._retry(item, str(exc), exc.retry_after)
        except PermanentSendError as exc:
            return self._finish(item, DeliveryState.FAILED, str(exc))
        except NeedsStaffError as exc:
            return self._finish(item, DeliveryState.NEEDS_STAFF, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an unknown outcome must not be re-sent blindly
            log.exception("sending outbox row %s failed in an unexpected way", item.id)
            return self._finish(item, DeliveryState.UNKNOWN, f"{exc.__class__.__name__}: {exc}")
        return lambda d: self._sent(d, item, receipt)

    async def _with_files(self, item: OutboxRecord, message: OutboundMessage) -> OutboundMessage:
        """``message`` with the files its row carries (an invoice's PDF), read from the store."""
        if not item.payload.get("files"):
            return message
        files = await asyncio.get_running_loop().run_in_executor(
            self.writer, self.db.run_direct, lambda d: OutboxRepository(d).files(item.message_id))
        return dataclasses.replace(message, attachments=tuple(OutboundFile(*f) for f in files))

    async def _reconcile(self, item: OutboxRecord, sender: Sender, message: OutboundMessage) -> RecordOutcome | None:
        """An earlier attempt may have arrived: None to send now, else what to record instead of sending."""
        since = item.uncertain_since
        assert since is not None
        if not isinstance(sender, Reconciling):
            if isinstance(sender, RepeatSafe) and sender.repeat_is_safe(message):
                log.info("outbox row %s: an earlier attempt may have arrived; sent again as the same message",
                         item.id)
                return None
            return self._finish(item, DeliveryState.UNKNOWN, "an earlier attempt may have arrived and the channel "
                                "cannot be asked: not sent again")
        try:
            taken = await asyncio.to_thread(self.db.read_direct, lambda d: OutboxRepository(d).other_channel_ids(
                item.id, since - timedelta(days=1)))
        except DatabaseUnavailable as exc:  # the channel was not asked yet: it is, later
            return self._retry(item, f"cannot read which messages went to the recipient before: {exc}", None,
                               uncertain_since=since)
        try:
            found = await sender.find_sent(message, since, taken)
        except TemporarySendError as exc:
            return self._retry(item, f"cannot ask the channel whether an earlier attempt arrived: {exc}",
                               exc.retry_after, uncertain_since=item.uncertain_since)
        except Exception as exc:  # noqa: BLE001 - not knowing means not sending twice
            return self._finish(item, DeliveryState.UNKNOWN, f"cannot ask the channel whether an earlier attempt "
                                f"arrived ({exc.__class__.__name__}: {exc}): not sent again")
        if found is None:
            log.info("outbox row %s: the channel has no earlier attempt; sending again", item.id)
            return None
        return lambda d: self._sent(d, item, found, reconciled=True)

    def _sent(self, direct: Direct, item: OutboxRecord, receipt: SendReceipt, *, reconciled: bool = False) -> None:
        now = self.now()
        OutboxRepository(direct).finish(item.id, OutboxState.SENT, now)
        advance_delivery(direct, item.message_id, receipt.state.value, receipt.external_id)
        tickets = TicketRepository(direct)
        data: dict[str, object] = {"outbox": item.id, "external_id": receipt.external_id}
        if reconciled:
            data["reconciled"] = "an earlier attempt had arrived; not sent again"
        tickets.add_event("message_sent", now, message_id=item.message_id, data=data)
        if receipt.external_id:
            for state, code in tickets.take_early_statuses(item.channel, receipt.external_id):
                apply_status(direct, item.message_id, state, code, now)

    def _retry(self, item: OutboxRecord, error: str, retry_after: float | None, *, count: bool = True,
               uncertain_since: datetime | None = None) -> RecordOutcome:
        if count and item.attempts >= self.max_attempts:
            if uncertain_since is not None:
                return self._finish(item, DeliveryState.UNKNOWN, f"gave up after {item.attempts} attempts, the "
                                    f"last outcome unknown: {error}")
            return self._finish(item, DeliveryState.FAILED, f"gave up after {item.attempts} attempts: {error}")
        step = self.backoff * (2 ** max(item.attempts - 1, 0))
        delay = min(step, self.max_backoff) * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        retry_at = self.now() + delay
        attempts = None if count else max(item.attempts - 1, 0)  # a channel that is off costs no attempt
        return lambda d: OutboxRepository(d).finish(item.id, OutboxState.PENDING, self.now(), error=error,
                                                    retry_at=retry_at, attempts=attempts,
                                                    uncertain_since=uncertain_since)

    def _finish(self, item: OutboxRecord, state: DeliveryState, error: str) -> RecordOutcome:
        def work(direct: Direct) -> None:
            now = self.now()
            OutboxRepository(direct).finish(item.id, OutboxState(state.value), now, error=error)
            moved = advance_delivery(direct, item.message_id, state.value)
            TicketRepository(direct).add_event(f"message_{state.value}", now, message_id=item.message_id,
                                               data={"outbox": item.id, "error": error, "staff_told": True})
            if moved and state in (DeliveryState.FAILED, DeliveryState.NEEDS_STAFF):
                reply_failed(direct, item.message_id, now)

        log.warning("outbox row %s: %s (%s)", item.id, state.value, error)
        return work

    def _take_back_own(self, repo: OutboxRepository, row: SendingRow, now: datetime) -> None:
        """A row this dispatcher left ``sending`` when a transaction of its round failed (the connection ended
        before the answer to a COMMIT came back, say): one handed to its channel is reconciled before any second
        send; one only claimed goes again as it was."""
        if row.id == self._unrecorded:
            since = row.uncertain_since or row.claimed_at or now
            repo.take_back(row.id, since, now, "the outcome of the send was not recorded (the database); the channel "
                           "is asked before it is sent again")
            log.warning("outbox row %s: the outcome of its send was not recorded; reconciling it", row.id)
        else:
            repo.take_back(row.id, row.uncertain_since, now, "claimed when the database failed, before it was sent")

    def _take_back_abandoned(self, direct: Direct) -> None:
        """Rows a stopped worker left in ``sending``: pending again, to be reconciled before any second send."""
        repo = OutboxRepository(direct)
        now = self.now()
        for row in repo.sending():
            if row.claimed_by == self.worker:  # a round of this dispatcher that failed: none is in hand now
                self._take_back_own(repo, row, now)
                continue
            gone = worker_gone(row.claimed_by, self.worker)
            if not gone and row.claimed_at is not None and row.claimed_at > now - self.lease:
                continue
            since = row.uncertain_since or row.claimed_at or now
            why = "its worker is gone" if gone else f"it was claimed more than {self.lease} ago"
            if repo.take_back(row.id, since, now, f"the sender stopped while sending ({why}); the channel is "
                              "asked before it is sent again"):
                log.warning("outbox row %s was left sending by %s (%s): reconciling it", row.id, row.claimed_by, why)
