"""Staff reminders before response deadlines lapse (R16, and R24's follow-up questions), sent exactly once and
on time.

How it works
------------
The intake plans each ticket's reminders as rows (``reminders``: 75% of the
window, 1 business hour before, the breach with an escalation), on the
ticket's own clock; again for a customer's follow-up question on an answered
ticket (R24: specs ``75%@<message id>``, the question's response deadline). The database is the truth; nothing lives only in memory,
so there is nothing to rebuild on start but one wake-up.

:class:`ReminderService` runs a round whenever it is woken. An APScheduler
``AsyncIOScheduler`` owned by the application does the waking, with two jobs:

- a one-shot ``date`` job at the instant the earliest planned reminder falls
  due (one seek in the index on ``(state, due_at)``), re-armed after every
  round: a reminder goes out within milliseconds of its instant;
- an ``interval`` job every ``poll_seconds``, the safety net: it finds what
  other processes planned (and what the intake planned without calling
  :meth:`ReminderService.wake`), re-arms the wake-up and releases stale claims.

The first round runs at once on start, so a reminder that fell due while
slabot was down goes out on start. A round takes the due rows in batches until
none is left, and for each

1. claims it: one ``UPDATE ... WHERE state = 'planned'`` that only one
   process can win (two slabot processes on one PostgreSQL database send it
   once);
2. skips it (``skipped``, with the reason) when the ticket was answered (and
   no follow-up question waits, R24), resolved, or paused meanwhile: a
   ticket answered in time is never pinged
   (a callback for a missed call, ``callback:<message id>``, is skipped once
   staff wrote to the ticket after the call, or it is resolved);
3. hands the notice to the notifier (the Telegram staff chat), naming the
   assigned staff member; Premium tickets first (R15);
4. records it ``sent``. When the notifier fails (Telegram down, rate limited)
   the row goes back to ``planned`` and waits for the next poll (no wake-up
   is armed while the chat is down, so it is not hammered); it is not lost
   and not sent twice.

A claim left behind by a process that died is released at once when that
process was of this host (each service claims under its worker's name,
``host:pid:random``: :func:`bot.leases.worker_name`), and after ``lease``
otherwise. A reminder whose post reached Telegram just before its process died
is then posted a second time: a staff ping twice beats none.
Time comes from the injected ``now``; the scheduler only turns "due in so many
seconds by ``now``" into a wake-up on the event loop's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.leases import running, worker_gone, worker_name
from bot.lifecycle import HealthReport, StateLog
from bot.staff_texts import REMINDER_SKIPPED
from channels.messages import utc_now
from storage.database import Database
from storage.direct import Direct
from storage.records import (
    CALLBACK_SPEC,
    OPEN_STATES,
    ReminderContext,
    ReminderState,
    TicketState,
    reminder_rule,
)
from storage.repositories import ReminderRepository, TicketRepository

log = logging.getLogger(__name__)

ANSWERED_STATES = tuple(state for state in TicketState if state not in OPEN_STATES)  # resolved
CALLBACK = CALLBACK_SPEC  # the spec of a reminder to call back a missed call: "callback:<message id of the call>"


def callback_spec(message_id: int) -> str:
    """The spec of the callback reminder for the missed call stored as message ``message_id``."""
    return f"{CALLBACK}{message_id}"


def assigned_staff(terms: Mapping[str, Any] | None, staff: str | None) -> str | None:
    """The account's staff member where the ticket's plan assigns one (R16: Ondersteuning's campaign specialist,
    Business's account manager, ...); None on a plan without (``terms``: the ticket's snapshot)."""
    if not terms:
        return staff
    return staff if (terms.get("plan") or {}).get("staff_role") else None


@dataclass(frozen=True)
class ReminderNotice:
    """What staff are told."""

    reminder_id: int
    ticket_id: int
    ticket_ref: str
    spec: str  # "75%", "1h before", "breach"
    escalate: bool
    due_at: datetime  # when the reminder fell due
    deadline: datetime | None  # the ticket's first-response deadline, or its follow-up question's (R24)
    account: str | None
    plan: str | None
    staff: str | None  # the assigned staff member (SPEC §2), mentioned in the ping
    subject: str | None
    queue_priority: int
    callback: str | None = None  # a missed call: the number staff should call back
    follow_up: bool = False  # the deadline is a follow-up question's (R24)


Notifier = Callable[[ReminderNotice], Awaitable[None]]


POLL_JOB, WAKE_JOB = "reminders-poll", "reminders-wake"
MIN_WAIT = 0.01  # seconds: a wake-up never spins on a clock that does not move


class ReminderService:
    """Sends due reminders through ``notify``; see the module docstring."""

    def __init__(self, db: Database, notify: Notifier, *, worker: str | None = None,
                 now: Callable[[], datetime] = utc_now, poll_seconds: float = 15.0,
                 lease: timedelta = timedelta(minutes=5), batch: int = 50, stop_grace: float = 10.0,
                 health: HealthReport | None = None) -> None:
        """``worker``: the name on the reminders it claims (:func:`bot.leases.worker_name` by default); ``lease``: how
        long a claim of a worker of another host lasts before the reminder is planned again; ``health``: told
        ("down", reason) when the staff chat fails and ("up", None) when it is back."""
        self.db = db
        self.notify = notify
        self.worker = worker or worker_name()
        self.now = now
        self.poll_seconds = poll_seconds
        self.lease = lease
        self.batch = batch
        self.stop_grace = stop_grace  # seconds a round in progress may take to finish on stop
        self.scheduler: AsyncIOScheduler | None = None
        self.ready = asyncio.Event()  # set once the first round after start() has run
        self.next_due: datetime | None = None  # the earliest planned reminder, as of the last round
        self._running = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._chat = StateLog(log, "reminders wait: the staff chat cannot be reached (%s)", "reminders flow again",
                              health=health)
        self._rounds_state = StateLog(log, "reminders wait: a round failed (%s)", "reminders: rounds work again",
                                      exc_info=True)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start in the running event loop; the first round runs at once (see :attr:`ready`)."""
        self._loop = asyncio.get_running_loop()
        running(self.worker)
        self.ready, self._wake, self._stopping = asyncio.Event(), asyncio.Event(), False
        self.scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self.scheduler.add_job(self._kick, "interval", seconds=self.poll_seconds, id=POLL_JOB, max_instances=1,
                               coalesce=True, misfire_grace_time=None)
        self.scheduler.start()
        self._wake.set()
        self._task = asyncio.create_task(self._rounds(), name="reminders")

    async def stop(self) -> None:
        """Stop waking; the reminder being sent is finished (within ``stop_grace``, else cancelled)."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(task, self.stop_grace)
            except TimeoutError:
                log.warning("a reminder round did not finish within %.0f s of the stop; cancelled", self.stop_grace)
            self._stopping = False
        async with self._running:  # and a run_due called from outside
            pass
        running(self.worker, False)

    def wake(self) -> None:
        """Look again at once, from any thread: reminders were planned or cancelled."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def _kick(self) -> None:
        """What both scheduler jobs run: the round itself runs in the service's own task."""
        self._wake.set()

    async def _rounds(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.run_due()
                await self._arm()
            except Exception as exc:  # noqa: BLE001 - e.g. the database is down: the next poll tries again
                self._rounds_state.failed(exc)
            else:
                self._rounds_state.worked()
            self.ready.set()

    async def _arm(self) -> None:
        """The one-shot wake-up at the earliest planned reminder; on the first round, a line for the log."""
        first = not self.ready.is_set()

        def read(d: Direct) -> tuple[datetime | None, int]:
            reminders = ReminderRepository(d)
            return reminders.next_due(), reminders.count_planned() if first else 0

        self.next_due, planned = await asyncio.to_thread(self.db.run_direct, read)
        if first:
            log.info("reminders: %d planned, the next due %s", planned,
                     self.next_due.isoformat() if self.next_due else "never")
        scheduler = self.scheduler
        if scheduler is None or not scheduler.running or self._stopping:
            return
        if self.next_due is None or self._chat.failing:  # nothing planned, or the chat is down: the poll tries again
            if scheduler.get_job(WAKE_JOB) is not None:
                scheduler.remove_job(WAKE_JOB)
            return
        wait = (self.next_due - self.now()).total_seconds()
        if wait <= 0:  # fell due during the round
            self._wake.set()
            return
        scheduler.add_job(self._kick, "date", id=WAKE_JOB, replace_existing=True, misfire_grace_time=None,
                          run_date=utc_now() + timedelta(seconds=max(wait, MIN_WAIT)))

    # -- one round ----------------------------------------------------------------

    async def run_due(self) -> int:
        """Send every reminder due now, a batch at a time until none is left; returns how many were sent."""
        async with self._running:
            running(self.worker)
            sent = 0
            while True:
                now = self.now()
                ids = await asyncio.to_thread(self.db.run_direct, lambda d: self._due(d, now))
                for reminder_id in ids:
                    if self._stopping:
                        return sent
                    outcome = await self._send(reminder_id)
                    if outcome is None:
                        return sent  # the chat is down: the rest waits too, in order
                    sent += outcome
                if len(ids) < self.batch:
                    return sent

    async def _send(self, reminder_id: int) -> int | None:
        """Claim and send one reminder: 1 sent, 0 taken by another process or skipped, None the chat is down."""
        notice = await asyncio.to_thread(self.db.run_direct, lambda d: self._claim(d, reminder_id))
        if notice is None:
            return 0
        try:
            await self.notify(notice)
        except asyncio.CancelledError:
            await asyncio.to_thread(self.db.run_direct, lambda d: ReminderRepository(d).release(reminder_id))
            raise
        except Exception as exc:  # noqa: BLE001 - the staff chat is down: try again next poll
            self._chat.failed(exc)
            await asyncio.to_thread(self.db.run_direct, lambda d: ReminderRepository(d).release(reminder_id))
            return None
        self._chat.worked()
        await asyncio.to_thread(self.db.run_direct, lambda d: self._done(d, reminder_id, ReminderState.SENT))
        return 1

    def _due(self, d: Direct, now: datetime) -> list[int]:
        self._release_stale(d, now)
        return ReminderRepository(d).due_ids(now, self.batch)

    def _claim(self, d: Direct, reminder_id: int) -> ReminderNotice | None:
        reminders = ReminderRepository(d)
        if not reminders.claim(reminder_id, self.worker, self.now()):
            return None
        c = reminders.context(reminder_id)
        skip = caller = None
        if c.spec.startswith(CALLBACK):
            caller, skip = self._callback(reminders, c)
        elif c.first_responded_at is not None and c.followup_at is None:  # answered, and no follow-up waits (R24)
            skip = REMINDER_SKIPPED["answered"]
        elif c.ticket_state in ANSWERED_STATES:
            skip = REMINDER_SKIPPED["state"].format(state=c.ticket_state)
        elif c.ticket_state == TicketState.WAITING:
            skip = REMINDER_SKIPPED["waiting"]
        if skip is not None:
            self._done(d, reminder_id, ReminderState.SKIPPED, reason=skip)
            return None
        follow_up = c.followup_at is not None and not c.spec.startswith(CALLBACK)
        return ReminderNotice(reminder_id, c.ticket_id, c.ref, reminder_rule(c.spec), c.escalate, c.due_at,
                              c.response_due if follow_up else c.first_response_due,
                              c.account, c.plan, assigned_staff(c.terms, c.account_staff), c.subject,
                              c.queue_priority, caller, follow_up)

    @staticmethod
    def _callback(reminders: ReminderRepository, c: ReminderContext) -> tuple[str | None, str | None]:
        """A callback reminder: the number to call, and why it is skipped (staff wrote since the call, resolved)."""
        caller, answered = reminders.missed_call(int(c.spec.removeprefix(CALLBACK)))
        if c.ticket_state in ANSWERED_STATES:
            return caller, REMINDER_SKIPPED["state"].format(state=c.ticket_state)
        if caller is None or answered:
            return caller, REMINDER_SKIPPED["called_back"]
        return caller, None

    def _done(self, d: Direct, reminder_id: int, state: ReminderState, *, reason: str | None = None) -> None:
        now = self.now()
        ticket_id = ReminderRepository(d).finish(reminder_id, state, now)
        TicketRepository(d).add_event(f"reminder_{state}", now, ticket_id=ticket_id,
                                      data={"reminder": reminder_id, "reason": reason})

    def _release_stale(self, d: Direct, now: datetime) -> None:
        """Claims of a process that died (of this host, or older than the lease): planned again (a staff ping twice
        beats none)."""
        reminders = ReminderRepository(d)
        released = reminders.release_stale(now - self.lease)
        for reminder_id, claimer in reminders.claims():
            if worker_gone(claimer, self.worker):
                released += reminders.release(reminder_id, claimer)
        if released:
            log.warning("%d reminder claims of a stopped process released", released)


__all__ = ["CALLBACK", "ReminderNotice", "ReminderService", "Notifier", "callback_spec"]
