"""Staff reminders (R16): due ones sent once, answered tickets skipped, nothing lost when the chat is down,
two processes on one database sending each reminder once; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from helpers import MONDAY_10, add_account, contact, email, pipeline, reminders, until
from sqlalchemy import select, update

from bot.reminders import ReminderNotice, ReminderService
from storage import models as m
from storage.database import Database, open_database

PIET = "piet@bakkerij-jansen.nl"


class Chat:
    """A notifier that records notices (and the service's time of each) and can be made to fail or slow."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self.notices: list[ReminderNotice] = []
        self.sent_at: list[datetime] = []
        self.now = now
        self.down = False
        self.attempts = 0
        self.delay = 0.0

    async def __call__(self, notice: ReminderNotice) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("staff chat unreachable")
        if self.delay:
            await asyncio.sleep(self.delay)
        self.notices.append(notice)
        if self.now is not None:
            self.sent_at.append(self.now())


def running_clock(at: datetime) -> Callable[[], datetime]:
    """A clock that reads ``at`` now and runs at the speed of the real one."""
    offset = at - datetime.now(timezone.utc)
    return lambda: datetime.now(timezone.utc) + offset


def new_ticket(db: Database, preset_name: str = "mailcampaigns", plan: str = "licentie", sender: str = PIET,
               external_id: str = "q1", received_at: datetime = MONDAY_10) -> str:
    if not db.run(lambda s: s.scalar(select(m.Identity.id).where(m.Identity.value == sender))):
        add_account(db, f"Klant {sender}", plan, contact("Klant", email=sender), staff="anna")
    result = pipeline(db, preset_name, received_at).ingest(email(external_id, sender, "Het werkt niet",
                                                                  received_at=received_at))
    assert result.ticket_ref is not None
    return result.ticket_ref


def service(db: Database, chat: Chat, at: list[datetime], worker: str = "slabot") -> ReminderService:
    return ReminderService(db, chat, worker=worker, now=lambda: at[0])


def ticket_id(db: Database, ref: str) -> int:
    return int(db.run(lambda s: s.scalar(select(m.Ticket.id).where(m.Ticket.ref == ref))))


def test_reminders_are_sent_when_due_and_only_once(db: Database) -> None:
    ref = new_ticket(db, plan="ondersteuning")  # a plan with a campaign specialist: anna is named (R16)
    planned = reminders(db, ticket_id(db, ref))
    assert [r.spec for r in planned] == ["75%", "1h before", "breach"]
    chat, at = Chat(), [MONDAY_10]
    runner = service(db, chat, at)
    assert asyncio.run(runner.run_due()) == 0
    at[0] = planned[0].due_at
    assert asyncio.run(runner.run_due()) == 1
    assert asyncio.run(runner.run_due()) == 0
    (notice,) = chat.notices
    assert (notice.ticket_ref, notice.spec, notice.staff, notice.escalate) == (ref, "75%", "anna", False)
    assert notice.deadline is not None and notice.deadline > notice.due_at
    at[0] = planned[-1].due_at + timedelta(minutes=1)
    assert asyncio.run(runner.run_due()) == 2
    assert [n.spec for n in chat.notices] == ["75%", "1h before", "breach"]
    assert chat.notices[-1].escalate
    assert [r.state for r in reminders(db, ticket_id(db, ref))] == ["sent", "sent", "sent"]


def test_the_staff_member_is_named_only_where_the_plan_assigns_one(db: Database) -> None:
    licentie = new_ticket(db)  # the account has staff "anna", but Licentie assigns nobody
    project = new_ticket(db, plan="project", sender="info@drukkerij.example", external_id="q2")
    chat, at = Chat(), [MONDAY_10 + timedelta(days=10)]
    assert asyncio.run(service(db, chat, at).run_due()) == 6
    named = {(n.ticket_ref, n.staff) for n in chat.notices}
    assert named == {(licentie, None), (project, "anna")}


def test_an_answered_ticket_is_never_pinged(db: Database) -> None:
    ref = new_ticket(db)
    tid = ticket_id(db, ref)
    db.run(lambda s: s.execute(update(m.Ticket).where(m.Ticket.id == tid).values(first_responded_at=MONDAY_10)))
    chat, at = Chat(), [MONDAY_10 + timedelta(days=10)]
    assert asyncio.run(service(db, chat, at).run_due()) == 0
    assert chat.notices == []
    assert [r.state for r in reminders(db, tid)] == ["skipped"] * 3
    kinds = db.run(lambda s: s.scalars(select(m.Event.kind).where(m.Event.ticket_id == tid)).all())
    assert kinds.count("reminder_skipped") == 3


def test_reminders_wait_while_the_chat_is_down_and_go_out_once_after(db: Database) -> None:
    ref = new_ticket(db)
    planned = reminders(db, ticket_id(db, ref))
    chat, at = Chat(), [planned[0].due_at]
    runner = service(db, chat, at)
    chat.down = True
    assert asyncio.run(runner.run_due()) == 0
    assert asyncio.run(runner.run_due()) == 0
    assert [r.state for r in reminders(db, ticket_id(db, ref))][0] == "planned"
    chat.down = False
    assert asyncio.run(runner.run_due()) == 1
    assert len(chat.notices) == 1


def test_a_reminder_due_while_slabot_was_down_is_sent_on_start(db: Database) -> None:
    ref = new_ticket(db)
    planned = reminders(db, ticket_id(db, ref))
    chat, at = Chat(), [planned[1].due_at + timedelta(minutes=5)]  # two fell due during the downtime

    async def start_and_stop() -> None:
        runner = service(db, chat, at)
        runner.poll_seconds = 3600
        runner.start()  # the first round runs at once
        for _ in range(200):
            if len(chat.notices) == 2:
                break
            await asyncio.sleep(0.02)
        await runner.stop()

    asyncio.run(start_and_stop())
    assert [n.spec for n in chat.notices] == ["75%", "1h before"]


def test_premium_first(db: Database) -> None:
    other = new_ticket(db, "paynl", "business", "b@example.nl", "b1")
    premium = new_ticket(db, "paynl", "premium", "p@example.nl", "p1")
    chat, at = Chat(), [MONDAY_10 + timedelta(days=30)]
    asyncio.run(service(db, chat, at).run_due())
    refs = [n.ticket_ref for n in chat.notices]
    assert refs.index(premium) < refs.index(other)
    assert refs[: refs.count(premium)] == [premium] * refs.count(premium)


def test_a_claim_left_by_a_dead_process_is_released_after_the_lease(db: Database) -> None:
    ref = new_ticket(db)
    tid = ticket_id(db, ref)
    first = reminders(db, tid)[0]
    db.run(lambda s: s.execute(update(m.Reminder).where(m.Reminder.id == first.id).values(
        state="claimed", claimed_by="dead", claimed_at=first.due_at)))
    chat, at = Chat(), [first.due_at + timedelta(minutes=1)]
    assert asyncio.run(service(db, chat, at).run_due()) == 0  # still within the lease
    at[0] = first.due_at + timedelta(minutes=6)
    assert asyncio.run(service(db, chat, at).run_due()) == 1  # released and sent
    assert [n.spec for n in chat.notices] == ["75%"]


def test_a_claim_of_a_stopped_process_of_this_host_is_released_at_once_one_of_a_running_process_is_kept(
        db: Database) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    host = socket.gethostname()[:60]
    ref = new_ticket(db)
    tid = ticket_id(db, ref)
    first, second, _ = reminders(db, tid)
    for reminder, claimer in ((first, f"{host}:{ended.stdout.strip()}:0a0b0c0d"),
                              (second, f"{host}:{os.getppid()}:0a0b0c0d")):
        db.run(lambda s, r=reminder, c=claimer: s.execute(update(m.Reminder).where(m.Reminder.id == r.id).values(
            state="claimed", claimed_by=c, claimed_at=second.due_at)))
    chat, at = Chat(), [second.due_at + timedelta(minutes=1)]  # both due, both claimed a minute ago
    assert asyncio.run(service(db, chat, at).run_due()) == 1  # the stopped process's, not waiting for the lease
    assert [n.spec for n in chat.notices] == ["75%"]
    assert [r.state for r in reminders(db, tid)[:2]] == ["sent", "claimed"]


def test_two_processes_send_each_reminder_once(db_url: str) -> None:
    first, second = open_database(db_url), open_database(db_url)
    try:
        refs = [new_ticket(first, sender=f"klant{i}@example.nl", external_id=f"q{i}") for i in range(12)]
        chat_a, chat_b = Chat(), Chat()
        at = [MONDAY_10 + timedelta(days=30)]

        async def both() -> list[Any]:
            return list(await asyncio.gather(service(first, chat_a, at, "a").run_due(),
                                             service(second, chat_b, at, "b").run_due()))

        counts = asyncio.run(both())
        sent = [(n.ticket_ref, n.spec) for n in chat_a.notices + chat_b.notices]
        assert len(sent) == len(set(sent)) == 36 == sum(counts)
        assert {ref for ref, _ in sent} == set(refs)
    finally:
        first.dispose()
        second.dispose()


# -- on time: the wake-up at the next due instant, the poll only as the safety net ------------------------


def test_a_reminder_goes_out_at_its_instant_not_at_the_next_poll(db: Database) -> None:
    ref = new_ticket(db)
    first = reminders(db, ticket_id(db, ref))[0]
    now = running_clock(first.due_at - timedelta(seconds=0.3))  # the 75% reminder falls due in 0.3 s
    chat = Chat(now)

    async def body() -> None:
        runner = ReminderService(db, chat, now=now, poll_seconds=60)
        runner.start()
        try:
            await until(lambda: len(chat.notices) == 1, timeout=5, what="the reminder, long before the poll")
        finally:
            await runner.stop()

    asyncio.run(body())
    assert [n.spec for n in chat.notices] == ["75%"]
    assert chat.sent_at[0] >= first.due_at  # not early either


def test_a_reminder_planned_while_running_goes_out_when_the_service_is_woken(db: Database) -> None:
    now = running_clock(MONDAY_10)
    chat = Chat(now)

    def plan_one_due_soon() -> None:
        tid = ticket_id(db, new_ticket(db))
        first = reminders(db, tid)[0]
        db.run(lambda s: s.execute(update(m.Reminder).where(m.Reminder.id == first.id).values(
            due_at=now() + timedelta(seconds=0.3))))

    async def body() -> None:
        runner = ReminderService(db, chat, now=now, poll_seconds=60)
        runner.start()
        try:
            await asyncio.wait_for(runner.ready.wait(), 5)
            await asyncio.to_thread(plan_one_due_soon)
            runner.wake()  # as the intake would after planning
            await until(lambda: len(chat.notices) == 1, timeout=5, what="the reminder, long before the poll")
        finally:
            await runner.stop()

    asyncio.run(body())
    assert [n.spec for n in chat.notices] == ["75%"]


def test_one_round_sends_every_due_reminder_batch_after_batch(db: Database) -> None:
    for i in range(4):
        new_ticket(db, sender=f"klant{i}@example.nl", external_id=f"q{i}")
    chat, at = Chat(), [MONDAY_10 + timedelta(days=30)]
    runner = service(db, chat, at)
    runner.batch = 5
    assert asyncio.run(runner.run_due()) == 12
    assert len(chat.notices) == 12


def test_while_the_chat_is_down_it_is_tried_again_at_the_poll_not_at_once(db: Database) -> None:
    ref = new_ticket(db)
    first = reminders(db, ticket_id(db, ref))[0]
    chat = Chat()
    chat.down = True

    async def body() -> None:
        runner = ReminderService(db, chat, now=running_clock(first.due_at + timedelta(minutes=1)), poll_seconds=60)
        runner.start()
        try:
            await asyncio.wait_for(runner.ready.wait(), 5)
            await asyncio.sleep(0.3)
        finally:
            await runner.stop()

    asyncio.run(body())
    assert chat.attempts == 1
    assert reminders(db, ticket_id(db, ref))[0].state == "planned"


def test_stopping_finishes_the_reminder_being_sent(db: Database) -> None:
    ref = new_ticket(db)
    first = reminders(db, ticket_id(db, ref))[0]
    chat = Chat()
    chat.delay = 0.3

    async def body() -> None:
        runner = ReminderService(db, chat, now=running_clock(first.due_at), poll_seconds=60)
        runner.start()
        await until(lambda: chat.attempts == 1, timeout=5, what="the reminder being sent")
        await runner.stop()

    asyncio.run(body())
    assert [n.spec for n in chat.notices] == ["75%"]
    assert reminders(db, ticket_id(db, ref))[0].state == "sent"  # not left claimed, not sent again later
