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

from storage import models as m
from storage.database import Database
from storage.direct import Direct

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
            ids = await asyncio.to_thread(self.db.run_direct, lambda d: self._due_ids(d, now))
            sent = 0
            for reminder_id in ids:
                notice = await asyncio.to_thread(self.db.run_direct, lambda d, i=reminder_id: self._claim(d, i))
                if notice is None:
                    continue  # another process has it, or it was skipped
                try:
                    await self.notify(notice)
                except asyncio.CancelledError:
                    await asyncio.to_thread(self.db.run_direct, lambda d, i=reminder_id: self._release(d, i))
                    raise
                except Exception as exc:  # noqa: BLE001 - the staff chat is down: try again next round
                    if not self._failing:
                        log.warning("reminders wait: the staff chat cannot be reached (%s: %s)",
                                    exc.__class__.__name__, exc)
                        self._failing = True
                    await asyncio.to_thread(self.db.run_direct, lambda d, i=reminder_id: self._release(d, i))
                    break  # the rest waits too, in order
                if self._failing:
                    log.info("reminders flow again")
                    self._failing = False
                await asyncio.to_thread(self.db.run_direct, lambda d, i=reminder_id: self._done(d, i, "sent"))
                sent += 1
            return sent

    def _due_ids(self, d: Direct, now: datetime) -> list[int]:
        """Due planned reminders, Premium first (R15), then by when they fell due."""
        rows = d.execute(
            "SELECT r.id FROM reminders r JOIN tickets t ON t.id = r.ticket_id "
            "WHERE r.state = 'planned' AND r.due_at <= :now "
            "ORDER BY t.queue_priority DESC, r.due_at, r.id LIMIT :limit",
            {"now": d.value(m.Reminder.__table__, "due_at", now), "limit": self.batch},
        ).fetchall()
        return [int(r[0]) for r in rows]

    def _claim(self, d: Direct, reminder_id: int) -> ReminderNotice | None:
        now = self.now()
        table = m.Reminder.__table__
        claimed = d.execute(
            "UPDATE reminders SET state = 'claimed', claimed_by = :worker, claimed_at = :now "
            "WHERE id = :id AND state = 'planned'",
            {"worker": self.worker, "now": d.value(table, "claimed_at", now), "id": reminder_id},
        ).rowcount
        if claimed != 1:
            return None
        row = d.one(
            "SELECT r.ticket_id, r.spec, r.escalate, r.due_at, t.ref, t.state, t.first_responded_at, "
            "t.first_response_due, t.plan, t.subject, t.queue_priority, a.name, a.staff "
            "FROM reminders r JOIN tickets t ON t.id = r.ticket_id LEFT JOIN accounts a ON a.id = t.account_id "
            "WHERE r.id = :id", {"id": reminder_id})
        assert row is not None
        ticket_id, spec, escalate, due_at, ref, state, responded, deadline, plan, subject, priority, account, staff = row
        reminders = d.decode(table, ("escalate", "due_at"), (escalate, due_at))
        tickets = d.decode(m.Ticket.__table__, ("first_responded_at", "first_response_due"), (responded, deadline))
        skip = None
        if tickets["first_responded_at"] is not None:
            skip = "the ticket was answered"
        elif state in ANSWERED_STATES:
            skip = f"the ticket is {state}"
        elif state == "waiting":
            skip = "the ticket waits on the customer"
        if skip is not None:
            self._done(d, reminder_id, "skipped", reason=skip)
            return None
        return ReminderNotice(reminder_id, int(ticket_id), str(ref), str(spec), bool(reminders["escalate"]),
                              reminders["due_at"], tickets["first_response_due"], account, plan, staff, subject,
                              int(priority or 0))

    def _release(self, d: Direct, reminder_id: int) -> None:
        d.execute("UPDATE reminders SET state = 'planned', claimed_by = NULL, claimed_at = NULL "
                  "WHERE id = :id AND state = 'claimed'", {"id": reminder_id})

    def _done(self, d: Direct, reminder_id: int, state: str, *, reason: str | None = None) -> None:
        now = self.now()
        d.execute("UPDATE reminders SET state = :state, done_at = :now WHERE id = :id",
                  {"state": state, "now": d.value(m.Reminder.__table__, "done_at", now), "id": reminder_id})
        ticket_id = d.scalar("SELECT ticket_id FROM reminders WHERE id = :id", {"id": reminder_id})
        d.insert(m.Event.__table__, {"kind": f"reminder_{state}", "at": now, "ticket_id": ticket_id,
                                     "actor": self.worker, "data": {"reminder": reminder_id, "reason": reason}})

    def _release_stale(self, d: Direct, now: datetime) -> None:
        """Claims of a process that died: planned again (a staff ping twice beats none)."""
        released = d.execute(
            "UPDATE reminders SET state = 'planned', claimed_by = NULL, claimed_at = NULL "
            "WHERE state = 'claimed' AND claimed_at < :before",
            {"before": d.value(m.Reminder.__table__, "claimed_at", now - self.lease)},
        ).rowcount
        if released:
            log.warning("%d reminder claims of a stopped process released", released)


__all__ = ["ReminderNotice", "ReminderService", "Notifier"]
