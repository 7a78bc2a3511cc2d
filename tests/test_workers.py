"""Several identical workers on one PostgreSQL database: every job exactly once across them.

Real processes: ``slabot run`` twice on one ``[database] url`` (a schema of its own), each on its own port,
against the Twilio and Telegram stand-ins served from a thread of this process. Signed WhatsApp webhooks come
from many numbers, two different messages per number at the same moment, one to each worker: each number gets
one ticket and one acknowledgement. The same inside one process (concurrent requests to one worker).

``SLABOT_TEST_WORKER_CONTACTS`` (default 40) sets how many numbers write; the tests print how many of them got
two tickets, so that the count can be measured on a larger run:

    SLABOT_TEST_WORKER_CONTACTS=300 pytest -s tests/test_workers.py -k two_tickets
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    end_backends,
    free_port,
    pipeline,
    served_in_thread,
    start_slabot,
    until,
    wait_for_health,
    whatsapp,
)
from twilio.request_validator import RequestValidator

from bot.demo.standins.telegram import TelegramStandIn
from bot.demo.standins.twilio import TwilioStandIn
from bot.leases import Lease
from channels.messages import utc_now
from storage import models as m
from storage.database import Database, open_database
from storage.leases import lease_holder
from storage.records import AccountInput, ContactInput
from storage.repositories import AccountRepository, counter

TOKEN = "test-auth-token"
SID = "AC0123456789abcdef0123456789abcdef"
PUBLIC = "https://support.example.nl"
WEBHOOK = "/webhooks/twilio/whatsapp"
OUR_NUMBER = "whatsapp:+31634890878"
CONTACTS = int(os.environ.get("SLABOT_TEST_WORKER_CONTACTS", "40"))
AT_ONCE = 16  # numbers whose two messages are in flight together


def number(i: int) -> str:
    return f"+316{20000000 + i:08d}"


@dataclass
class Worker:
    """One ``slabot run`` process and the port it listens on."""

    proc: subprocess.Popen[str]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> str:
        """SIGTERM, then its log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@pytest.fixture
def twilio() -> Iterator[tuple[TwilioStandIn, str]]:
    standin = TwilioStandIn()
    with served_in_thread(standin.app()) as (url, _):
        yield standin, url


def add_contacts(url: str, count: int) -> None:
    db = open_database(url)
    try:
        def work(s: Any) -> None:
            accounts = AccountRepository(s)
            for i in range(count):
                accounts.upsert(AccountInput(f"Klant {i}", "licentie",
                                             contacts=(ContactInput(f"Contact {i}", phones=(number(i),)),)), utc_now())

        db.run(work)
    finally:
        db.dispose()


def worker_config(tmp_path: Path, name: str, url: str, port: int, twilio_url: str, extra: str = "",
                  database: str = "") -> Path:
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'preset = "mailcampaigns"\n[database]\nurl = "{url}"\n{database}'
        f'[http]\nhost = "127.0.0.1"\nport = {port}\npublic_url = "{PUBLIC}"\n'
        f'[twilio]\naccount_sid = "{SID}"\nauth_token = "{TOKEN}"\nwhatsapp_from = "{OUR_NUMBER}"\n'
        f'api_base_url = "{twilio_url}"\n{extra}', encoding="utf-8")
    return config


def start_workers(tmp_path: Path, url: str, twilio_url: str, count: int, extra: str = "",
                  database: str = "") -> list[Worker]:
    workers = []
    for i in range(count):
        port = free_port()
        proc = start_slabot(worker_config(tmp_path, f"worker{i}", url, port, twilio_url, extra, database), tmp_path)
        workers.append(Worker(proc, port))
    for w in workers:
        wait_for_health(w.port, w.proc)
    return workers


def signed_webhook(sid: str, sender: str, body: str) -> tuple[dict[str, str], dict[str, str]]:
    params = {"MessageSid": sid, "SmsMessageSid": sid, "AccountSid": SID, "From": f"whatsapp:{sender}",
              "To": OUR_NUMBER, "Body": body, "ProfileName": "Klant", "NumMedia": "0"}
    return params, {"X-Twilio-Signature": str(RequestValidator(TOKEN).compute_signature(PUBLIC + WEBHOOK, params))}


async def two_at_once(bases: list[str], count: int) -> list[int]:
    """From each of ``count`` numbers two different messages at the same moment, the first to ``bases[0]``,
    the second to ``bases[-1]``; the answers' status codes."""
    limit = asyncio.Semaphore(AT_ONCE)

    async def pair(http: httpx.AsyncClient, i: int) -> list[int]:
        async with limit:
            posts = []
            for k, base in enumerate((bases[0], bases[-1])):
                params, headers = signed_webhook(f"SM{i:06d}{k}", number(i), f"vraag {k} van klant {i}")
                posts.append(http.post(base + WEBHOOK, data=params, headers=headers))
            return [r.status_code for r in await asyncio.gather(*posts)]

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=4 * AT_ONCE)) as http:
        answers = await asyncio.gather(*(pair(http, i) for i in range(count)))
    return [code for codes in answers for code in codes]


def tickets_per_number(url: str) -> Counter[str]:
    db = Database(url)
    try:
        def work(s: Any) -> Counter[str]:
            return Counter(key for (key,) in s.execute(m.Ticket.__table__.select().with_only_columns(
                m.Ticket.thread_key)).all())

        return db.run(work)
    finally:
        db.dispose()


async def wait_for_sends(standin: TwilioStandIn, expected: int, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(standin.sent) < expected and loop.time() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.5)  # two more dispatcher rounds of every worker: a second acknowledgement would show


def check_one_ticket_and_one_acknowledgement(url: str, standin: TwilioStandIn, codes: list[int], what: str) -> None:
    assert codes == [200] * (2 * CONTACTS)
    per_number = tickets_per_number(url)
    doubled = sorted(key for key, n in per_number.items() if n > 1)
    acknowledged = Counter(str(r["to"]).removeprefix("whatsapp:") for r in standin.sent)
    print(f"\n{what}: {len(doubled)} of {CONTACTS} contacts with two tickets, "
          f"{sum(1 for n in acknowledged.values() if n > 1)} acknowledged twice")
    assert doubled == []
    assert set(per_number) == {number(i) for i in range(CONTACTS)}
    missing = sorted({number(i) for i in range(CONTACTS)} - set(acknowledged))
    assert acknowledged == Counter({number(i): 1 for i in range(CONTACTS)}), outbox_rows(url, missing)


def outbox_rows(url: str, recipients: list[str]) -> list[tuple[Any, ...]]:
    """The outbox rows to ``recipients``: their state and last error (what a failed check shows)."""
    db = Database(url)
    try:
        return db.read_direct(lambda d: [tuple(row) for row in d.execute(
            "SELECT recipient, state, attempts, last_error FROM outbox ORDER BY id").fetchall()
            if row[0] in recipients])
    finally:
        db.dispose()


def test_two_messages_at_once_from_one_number_to_two_workers_open_one_ticket_not_two_tickets(
        tmp_path: Path, pg_url: str, twilio: tuple[TwilioStandIn, str]) -> None:
    standin, twilio_url = twilio
    add_contacts(pg_url, CONTACTS)
    workers = start_workers(tmp_path, pg_url, twilio_url, 2)
    try:
        codes = asyncio.run(two_at_once([w.base for w in workers], CONTACTS))
        asyncio.run(wait_for_sends(standin, CONTACTS))
    finally:
        logs = [w.stop() for w in workers]
    assert all(w.proc.returncode == 0 for w in workers), logs
    check_one_ticket_and_one_acknowledgement(pg_url, standin, codes, "two processes")


def test_two_messages_at_once_from_one_number_to_one_worker_open_one_ticket_not_two_tickets(
        tmp_path: Path, db_url: str, twilio: tuple[TwilioStandIn, str]) -> None:
    standin, twilio_url = twilio
    add_contacts(db_url, CONTACTS)
    (worker,) = start_workers(tmp_path, db_url, twilio_url, 1)
    try:
        codes = asyncio.run(two_at_once([worker.base], CONTACTS))
        asyncio.run(wait_for_sends(standin, CONTACTS))
    finally:
        log = worker.stop()
    assert worker.proc.returncode == 0, log
    check_one_ticket_and_one_acknowledgement(db_url, standin, codes, "one process")


def test_the_workers_reconnect_when_postgresql_ends_their_connections_and_nothing_is_lost(
        tmp_path: Path, pg_url: str, twilio: tuple[TwilioStandIn, str]) -> None:
    """Three times while two workers take webhooks, PostgreSQL ends every connection they have (what a restart of
    the server does to them). A webhook answered 500 meanwhile is posted again (Twilio's re-delivery, slabot's
    reconciliation); in the end every message is stored once, every number has one ticket and one
    acknowledgement, and both workers still run and answer /healthz."""
    standin, twilio_url = twilio
    add_contacts(pg_url, CONTACTS)
    application = f"slabot_test_{os.getpid()}"
    url = f"{pg_url}&application_name={application}" if "?" in pg_url else f"{pg_url}?application_name={application}"
    workers = start_workers(tmp_path, url, twilio_url, 2)
    ended: list[int] = []
    planned = [0]
    reposted = 0

    async def flood() -> list[int]:
        nonlocal reposted
        limit = asyncio.Semaphore(AT_ONCE)
        done = 0

        async def post(http: httpx.AsyncClient, base: str, i: int, k: int) -> int:
            nonlocal reposted, done
            params, headers = signed_webhook(f"SM{i:06d}{k}", number(i), f"vraag {k} van klant {i}")
            for _ in range(50):
                try:
                    if (await http.post(base + WEBHOOK, data=params, headers=headers)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                reposted += 1
                await asyncio.sleep(0.05)
            else:
                return 0
            done += 1
            if done % (2 * CONTACTS // 4) == 0 and planned[0] < 3:  # three times during the flood
                planned[0] += 1  # counted before the wait: a post finishing meanwhile does not end them a 4th time
                for _ in range(40):  # a moment with none open (each just closed on the last error): soon again
                    count = await asyncio.to_thread(end_backends, pg_url, "application_name = :app",
                                                    {"app": application})
                    if count:
                        break
                    await asyncio.sleep(0.05)
                ended.append(count)
            return 200

        async def pair(http: httpx.AsyncClient, i: int) -> list[int]:
            async with limit:
                return list(await asyncio.gather(*(post(http, w.base, i, k) for k, w in enumerate(workers))))

        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=4 * AT_ONCE)) as http:
            answers = await asyncio.gather(*(pair(http, i) for i in range(CONTACTS)))
        return [code for codes in answers for code in codes]

    try:
        codes = asyncio.run(flood())
        asyncio.run(wait_for_sends(standin, CONTACTS))
        alive = [w.proc.poll() is None and httpx.get(w.base + "/healthz").status_code == 200 for w in workers]
    finally:
        logs = [w.stop() for w in workers]
    print(f"\nconnections ended {ended}; webhooks posted again {reposted}")
    assert len(ended) == 3 and all(n > 0 for n in ended), ended
    assert alive == [True, True], logs
    check_one_ticket_and_one_acknowledgement(pg_url, standin, codes, "connections ended")


# -- leases: one worker at a time for the staff chat and a mailbox; taken over when the holder dies ---------------


def test_a_lease_has_one_holder_is_renewed_and_is_taken_over_when_it_expires_or_is_given_up(db: Database) -> None:
    async def scenario() -> None:
        a = Lease(db, "job", holder="worker-a", seconds=0.3)
        b = Lease(db, "job", holder="worker-b", seconds=0.3)
        assert await a.renew() and not await b.renew()
        await asyncio.sleep(0.2)
        assert await a.renew() and not await b.renew()  # renewed in time: still a's
        assert db.run_direct(lambda d: lease_holder(d, "job")) == "worker-a"
        await asyncio.sleep(0.4)  # a stopped renewing (died)
        assert db.run_direct(lambda d: lease_holder(d, "job")) is None
        assert await b.renew() and not await a.renew()
        await b.release()
        assert await a.renew()

    asyncio.run(scenario())


def test_a_leased_job_runs_in_one_worker_and_moves_to_the_other_when_it_stops(db: Database) -> None:
    async def scenario() -> None:
        running: list[str] = []

        def job(name: str) -> Any:
            async def work(done: asyncio.Event) -> None:
                running.append(name)
                await done.wait()
                running.remove(name)
            return work

        stops = [asyncio.Event(), asyncio.Event()]
        leases = [Lease(db, "mailbox", holder=f"w{i}", seconds=0.3) for i in range(2)]
        tasks = [asyncio.create_task(lease.run_while_held(job(f"w{i}"), stops[i])) for i, lease in enumerate(leases)]
        await until(lambda: len(running) == 1)
        first = running[0]
        await asyncio.sleep(0.5)  # renewed meanwhile: still one, the same
        assert running == [first]
        stops[int(first[1])].set()  # the holder stops: gives the lease up, the other takes over at once
        await until(lambda: running == [f"w{1 - int(first[1])}"], timeout=1)
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
        assert running == []

    asyncio.run(scenario())


STAFF_CHAT, STAFF_USER = -1001, 7


def staff_posts(standin: TelegramStandIn, prefix: str) -> Counter[str]:
    """The staff chat's posts with a button whose data starts with ``prefix`` (``take:``: announcements), by
    that button's data."""
    found: Counter[str] = Counter()
    for sent in standin.messages_to(STAFF_CHAT):
        rows = (sent.reply_markup or {}).get("inline_keyboard", [])
        found.update(b["callback_data"] for row in rows for b in row
                     if str(b.get("callback_data", "")).startswith(prefix))
    return found


def test_the_staff_chat_is_polled_by_one_worker_and_taken_over_within_the_lease_after_kill_9(
        tmp_path: Path, pg_url: str, twilio: tuple[TwilioStandIn, str]) -> None:
    standin, twilio_url = twilio
    bot = TelegramStandIn()
    add_contacts(pg_url, 4)
    with served_in_thread(bot.app()) as (bot_url, bot_loop):
        def on_bot_loop(call: Callable[[], Any]) -> Any:
            async def run() -> Any:
                return call()
            return asyncio.run_coroutine_threadsafe(run(), bot_loop).result(5)

        def wait(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
            asyncio.run(until(lambda: on_bot_loop(condition), timeout=timeout, what=what))

        def queue_answers(after: int) -> int:
            return sum(1 for s in bot.messages_to(STAFF_CHAT)[after:] if s.reply_markup is None
                       and s.text and "MC-" in s.text)

        telegram = (f'[telegram]\ntoken = "{bot.token}"\nstaff_chat_id = {STAFF_CHAT}\nstaff_user_ids = [{STAFF_USER}]\n'
                    f'api_base_url = "{bot_url}"\n')
        # a short lease, so that the test waits seconds
        survivors = start_workers(tmp_path, pg_url, twilio_url, 2, telegram, database="lease_seconds = 2\n")
        try:
            # the first round of announcements sets its checkpoint (the history before it is not posted)
            wait(lambda: db_counter(pg_url, "telegram:announced") is not None, "the first announcement round")
            # a ticket opened on the worker that does not poll is announced once, by the one that does
            codes = asyncio.run(two_at_once([survivors[0].base, survivors[1].base], 1))
            assert codes == [200, 200]
            wait(lambda: len(staff_posts(bot, "take:")) == 1, "the first ticket's announcement")
            before = on_bot_loop(lambda: len(bot.messages_to(STAFF_CHAT)))
            asked = on_bot_loop(lambda: bot.push_message(STAFF_CHAT, STAFF_USER, "/queue"))
            wait(lambda: queue_answers(before) == 1, "the answer to /queue")
            assert asked["update_id"] == 1
            assert bot.conflicts == 0  # one poller
            holder = db_lease_holder(pg_url, "telegram:staff-chat")
            leader = next(w for w in survivors if f":{w.proc.pid}:" in holder)
            leader.proc.send_signal(signal.SIGKILL)
            leader.proc.communicate(timeout=10)
            (other,) = [w for w in survivors if w is not leader]
            # the other worker takes over within the lease: a new ticket announced, a command answered, once
            params, headers = signed_webhook("SMafter", number(2), "nog een vraag")
            assert httpx.post(other.base + WEBHOOK, data=params, headers=headers, timeout=10).status_code == 200
            wait(lambda: len(staff_posts(bot, "take:")) == 2, "the second ticket's announcement after the kill")
            before = on_bot_loop(lambda: len(bot.messages_to(STAFF_CHAT)))
            on_bot_loop(lambda: bot.push_message(STAFF_CHAT, STAFF_USER, "/queue"))
            wait(lambda: queue_answers(before) == 1, "the answer to /queue after the kill")
            asyncio.run(asyncio.sleep(2.5))  # a second announcement or answer would show by now
            assert db_lease_holder(pg_url, "telegram:staff-chat").split(":")[1] == str(other.proc.pid)
            log = other.stop()
        finally:
            for w in survivors:
                if w.proc.poll() is None:
                    w.proc.kill()
                    w.proc.communicate()
    assert other.proc.returncode == 0, log
    assert set(staff_posts(bot, "take:").values()) == {1}  # every ticket announced once
    assert queue_answers(0) == 2  # every command answered once
    assert Counter(str(r["to"]) for r in standin.sent) == Counter(
        {f"whatsapp:{number(0)}": 1, f"whatsapp:{number(2)}": 1})  # every acknowledgement once


def test_reminders_go_out_once_across_workers_and_one_claimed_by_a_killed_worker_is_posted_at_once(
        tmp_path: Path, pg_url: str, twilio: tuple[TwilioStandIn, str]) -> None:
    """A worker is killed while its post of a reminder hangs on the way to Telegram: the workers after it see at
    once that the claimer's process is gone and post that reminder, not 5 minutes later; every reminder of every
    ticket is posted once between the three workers."""
    _, twilio_url = twilio
    bot = TelegramStandIn()
    add_contacts(pg_url, 4)
    db = open_database(pg_url)
    try:  # four tickets of two weeks ago: each of their reminders (75%, an hour before, the breach) is due
        received = utc_now() - timedelta(days=14)
        for i in range(4):
            assert pipeline(db, "mailcampaigns", received).ingest(
                whatsapp(f"SMold{i}", number(i), "de knop werkt niet", received_at=received)).ticket_ref
        due = db.read_direct(lambda d: int(d.execute(
            "SELECT count(*) FROM reminders WHERE state = 'planned' AND due_at < now()").fetchone()[0]))
    finally:
        db.dispose()
    assert due == 12
    with served_in_thread(bot.app()) as (bot_url, bot_loop):
        def on_bot_loop(call: Callable[[], Any]) -> Any:
            async def run() -> Any:
                return call()
            return asyncio.run_coroutine_threadsafe(run(), bot_loop).result(5)

        def reminders_posted() -> Counter[str]:
            return Counter(s.text for s in bot.messages_to(STAFF_CHAT) if is_reminder(s.text))

        telegram = (f'[telegram]\ntoken = "{bot.token}"\nstaff_chat_id = {STAFF_CHAT}\n'
                    f'staff_user_ids = [{STAFF_USER}]\napi_base_url = "{bot_url}"\n')
        on_bot_loop(lambda: bot.hold_next("sendMessage", lambda params: is_reminder(params.get("text"))))
        (tmp_path / "first").mkdir()
        (tmp_path / "after").mkdir()
        first = start_workers(tmp_path / "first", pg_url, twilio_url, 1, telegram, database="lease_seconds = 2\n")
        workers = list(first)
        try:
            asyncio.run(until(lambda: on_bot_loop(lambda: len(bot.held)) == 1, timeout=15,
                              what="the first reminder's post, held on its way"))
            first[0].proc.send_signal(signal.SIGKILL)
            first[0].proc.communicate(timeout=10)
            on_bot_loop(bot.release)  # the killed worker's post never arrives
            held = str(on_bot_loop(lambda: bot.held[0]["text"]))
            workers += start_workers(tmp_path / "after", pg_url, twilio_url, 2, telegram,
                                     database="lease_seconds = 2\n")
            asyncio.run(until(lambda: sum(on_bot_loop(reminders_posted).values()) >= 12, timeout=10,
                              what="every reminder, the killed worker's claim among them"))
            asyncio.run(asyncio.sleep(1.5))  # a second post of one would show by now
            posted = on_bot_loop(reminders_posted)
        finally:
            for w in workers:
                w.stop()
    assert held in posted
    assert len(posted) == 12 and set(posted.values()) == {1}, posted
    db = open_database(pg_url)
    try:
        states = db.read_direct(lambda d: Counter(str(state) for (state,) in d.execute(
            "SELECT state FROM reminders").fetchall()))
    finally:
        db.dispose()
    assert states == Counter({"sent": 12})


def is_reminder(text: object) -> bool:
    """A staff-chat post of a reminder: the alarm clock (75%, an hour before) or the light (the breach)."""
    return isinstance(text, str) and text[:1] in ("\u23f0", "\U0001f6a8")


def db_lease_holder(url: str, name: str) -> str:
    db = Database(url)
    try:
        found = db.run_direct(lambda d: lease_holder(d, name))
    finally:
        db.dispose()
    assert found is not None, f"nobody holds {name}"
    return found


def db_counter(url: str, name: str) -> int | None:
    db = Database(url)
    try:
        return db.run_direct(lambda d: counter(d, name))
    finally:
        db.dispose()
