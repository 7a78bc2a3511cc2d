"""Staff reminders before first-response deadlines lapse (R16), sent exactly once.

How it works
------------
The intake plans each ticket's reminders as rows (``reminders``: 75% of the
window, 1 business hour before, the breach with an escalation), on the
ticket's own clock. The database is the truth; nothing lives only in memory.

:class:`ReminderService` runs on an APScheduler ``AsyncIOScheduler`` owned by
the application: an interval job looks for due rows every ``poll_seconds``
and runs once at start, so a reminder that fell due while slabot was down
goes out on start. For each due row it

1. claims it: one ``UPDATE ... WHERE state = 'planned'`` that only one
   process can win (two slabot processes on one PostgreSQL database send it
   once);
2. skips it (``skipped``, with the reason) when the ticket was answered,
   resolved, or paused meanwhile: a ticket answered in time is never pinged;
3. hands the notice to the notifier (the Telegram staff chat), naming the
   assigned staff member; Premium tickets first (R15);
4. records it ``sent``. When the notifier fails (Telegram down, rate limited)
   the row goes back to ``planned`` and waits for the next round; it is not
   lost and not sent twice.

A claim left behind by a process that died is released after ``lease``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from storage.database import Database
from storage.direct import Direct
from storage.repositories import ReminderRepository, TicketRepository

log = logging.getLogger(__name__)

ANSWERED_STATES = ("resolved", "closed")


@dataclass(frozen=True)
class ReminderNotice:
    """What staff are told."""

    reminder_id: int
    ticket_id: int
    ticket_ref: str
    spec: str  # "75%", "1h before", "breach"
    escalate: bool
    due_at: datetime  # when the reminder fell due
    deadline: datetime | None  # the ticket's first-response deadline
    account: str | None
    plan: str | None
    staff: str | None  # the assigned staff member (SPEC §2), mentioned in the ping
    subject: str | None
    queue_priority: int


Notifier = Callable[[ReminderNotice], Awaitable[None]]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class ReminderService:
    """Sends due reminders through ``notify``; see the module docstring."""

    def __init__(self, db: Database, notify: Notifier, *, worker: str = "slabot",
                 now: Callable[[], datetime] = _utc_now, poll_seconds: float = 15.0,
                 lease: timedelta = timedelta(minutes=5), batch: int = 50) -> None:
        self.db = db
        self.notify = notify
        self.worker = worker
        self.now = now
        self.poll_seconds = poll_seconds
        self.lease = lease
        self.batch = batch
        self.scheduler: AsyncIOScheduler | None = None
        self._running = asyncio.Lock()
        self._failing = False

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler in the running event loop; the first round runs at once."""
        self.scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self.scheduler.add_job(self.run_due, "interval", seconds=self.poll_seconds, id="reminders",
                               next_run_time=datetime.now(timezone.utc), max_instances=1, coalesce=True,
                               misfire_grace_time=None)
        self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        async with self._running:  # let a round in progress finish
            pass

    # -- one round ----------------------------------------------------------------

    async def run_due(self) -> int:
        """Send every reminder due now; returns how many were sent."""
        async with self._running:
            now = self.now()
            await asyncio.to_thread(self.db.run_direct, lambda d: self._release_stale(d, now))
            ids = await asyncio.to_thread(self.db.run_direct, lambda d: ReminderRepository(d).due_ids(now, self.batch))
            sent = 0
            for reminder_id in ids:
                notice = await asyncio.to_thread(self.db.run_direct, lambda d, i=reminder_id: self._claim(d, i))
                if notice is None:
                    continue  # another process has it, or it was skipped
                try:
                    await self.notify(notice)
                except asyncio.CancelledError:
                    await asyncio.to_thread(self.db.run_direct, lambda d, i=reminder_id: ReminderRepository(d).release(i))
                    raise
                except Exception as exc:  # noqa: BLE001 - the staff chat is down: try again next round
                    if not self._failing:
                        log.warning("reminders wait: the staff chat cannot be reached (%s: %s)",
                                    exc.__class__.__name__, exc)
                        self._failing = True
                    await asyncio.to_thread(self.db.run_direct, lambda d, i=reminder_id: ReminderRepository(d).release(i))
                    break  # the rest waits too, in order
                if self._failing:
                    log.info("reminders flow again")
                    self._failing = False
                await asyncio.to_thread(self.db.run_direct, lambda d, i=reminder_id: self._done(d, i, "sent"))
                sent += 1
            return sent

    def _claim(self, d: Direct, reminder_id: int) -> ReminderNotice | None:
        reminders = ReminderRepository(d)
        if not reminders.claim(reminder_id, self.worker, self.now()):
            return None
        c = reminders.context(reminder_id)
        skip = None
        if c["first_responded_at"] is not None:
            skip = "the ticket was answered"
        elif c["state"] in ANSWERED_STATES:
            skip = f"the ticket is {c['state']}"
        elif c["state"] == "waiting":
            skip = "the ticket waits on the customer"
        if skip is not None:
            self._done(d, reminder_id, "skipped", reason=skip)
            return None
        return ReminderNotice(reminder_id, int(c["ticket_id"]), str(c["ref"]), str(c["spec"]), bool(c["escalate"]),
                              c["due_at"], c["first_response_due"], c["account"], c["plan"], c["staff"],
                              c["subject"], int(c["queue_priority"] or 0))

    def _done(self, d: Direct, reminder_id: int, state: str, *, reason: str | None = None) -> None:
        now = self.now()
        ticket_id = ReminderRepository(d).finish(reminder_id, state, now)
        TicketRepository(d).add_event(f"reminder_{state}", now, ticket_id=ticket_id, actor=self.worker,
                                      data={"reminder": reminder_id, "reason": reason})

    def _release_stale(self, d: Direct, now: datetime) -> None:
        """Claims of a process that died: planned again (a staff ping twice beats none)."""
        released = ReminderRepository(d).release_stale(now - self.lease)
        if released:
            log.warning("%d reminder claims of a stopped process released", released)


__all__ = ["ReminderNotice", "ReminderService", "Notifier"]
