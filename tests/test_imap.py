"""The IMAP intake against a real Dovecot on loopback and a real SQLite database.

Each test has a mailbox user of its own on the module's Dovecot
(``mailserver.py``) and a fresh database with one customer, Piet of Bakkerij
Jansen (plan licentie), behind the real intake pipeline with the
mailcampaigns preset. Mail is appended with the stdlib ``imaplib`` (or dropped
into the Maildir while the server is down). Time is fixed on Monday 23 November
2026, 10:00 in Amsterdam, the Date of every mail. Plain pytest functions run
their scenario with ``asyncio.run``; the intake runs with short IDLE windows,
timeouts and backoff so the whole module stays fast.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import MONDAY_10, add_account, contact, free_port, until
from mailserver import PASSWORD, PLAIN_HOST, MailServer, mailbox, mailserver  # noqa: F401 - fixtures
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from test_mail_intake import PIET, SUPPORT, mail

from bot.config import EmailConfig
from bot.imap import ImapIntake
from bot.intake import IntakePipeline
from bot.mail import Also, MailIntake, MailResult, mail_reply_guards
from bot.presets import load_preset
from channels.email import imap_utf7
from storage import models as m
from storage.database import Database, open_database

class Crash(BaseException):
    """The process dies here (not an error the intake may catch)."""


class SpyIntake(MailIntake):
    """The real mail intake, which also notes the mail's flags on the server while it is being committed,
    and can fail on purpose: ``fail(raw)`` returns an exception to raise inside the transaction, or None."""

    def __init__(self, *args: Any, server: MailServer, user: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server = server
        self.user = user
        self.during_commit: dict[int, set[str] | None] = {}  # uid -> flags (None: not in INBOX)
        self.fail: Callable[[bytes], BaseException | None] = lambda raw: None
        self.watch = False

    def ingest_raw(self, raw: bytes, *, source: str = "mail", acknowledge: bool | None = None,
                   also: Also | None = None, received_at: datetime | None = None) -> MailResult:
        uid = int(source.rsplit("#", 1)[1])

        def spied(direct: Any) -> None:
            if also is not None:
                also(direct)  # the checkpoint moves here
            if self.watch:
                self.during_commit[uid] = self.server.flags(self.user).get(uid)
            failure = self.fail(raw)
            if failure is not None:
                raise failure  # after the checkpoint moved: everything is rolled back

        return super().ingest_raw(raw, source=source, acknowledge=acknowledge, also=spied, received_at=received_at)


@dataclass
class World:
    server: MailServer
    user: str
    db: Database
    intake: SpyIntake
    health: list[tuple[str, str | None]] = field(default_factory=list)

    def config(self, **options: Any) -> EmailConfig:
        values: dict[str, Any] = {"imap_host": self.server.host, "imap_port": self.server.port,
                                  "imap_user": self.user, "imap_password": PASSWORD, "imap_security": "none"}
        values.update(options)
        return EmailConfig(**values)

    def imap(self, config: EmailConfig | None = None, **options: Any) -> ImapIntake:
        """A new intake (as after a restart), with short windows, timeouts and backoff."""
        settings: dict[str, Any] = {"idle_renew": 5.0, "noop_every": 0.3, "backoff_max": 0.2, "timeout": 2.0}
        settings.update(options)
        return ImapIntake(config or self.config(), self.intake, self.db, now=lambda: MONDAY_10,
                          health=lambda state, reason: self.health.append((state, reason)), **settings)

    def count(self, model: Any, *where: Any) -> int:
        return int(self.db.run(lambda s: s.scalar(select(func.count()).select_from(model).where(*where))))

    def tickets(self) -> int:
        return self.count(m.Ticket)

    def acknowledgements(self) -> int:
        return self.count(m.Outbox)

    def incoming(self) -> int:
        return self.count(m.Message, m.Message.direction == "in")

    def checkpoint(self, mailbox: str | None = None) -> tuple[int, int] | None:
        key = mailbox or f"{self.user}@{self.server.host}:{self.server.port}/INBOX"
        row = self.db.run(lambda s: s.execute(select(m.MailCheckpoint.uidvalidity, m.MailCheckpoint.last_uid)
                                              .where(m.MailCheckpoint.mailbox == key)).first())
        return None if row is None else (int(row[0]), int(row[1]))

    def append(self, raw: bytes, folder: str = "INBOX") -> int:
        return self.server.append(raw, folder, user=self.user)

    def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        return self.server.flags(self.user, folder)

    @property
    def state(self) -> str | None:
        return self.health[-1][0] if self.health else None


@pytest.fixture
def world(mailbox: tuple[MailServer, str], tmp_path: Path) -> Iterator[World]:  # noqa: F811 - the fixture
    server, user = mailbox
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet Jansen", email=PIET))
    pipeline = IntakePipeline(db, load_preset("mailcampaigns"), now=lambda: MONDAY_10,
                              reply_guards=mail_reply_guards(5, lambda: MONDAY_10))
    intake = SpyIntake(db, pipeline, own_addresses=(SUPPORT,), now=lambda: MONDAY_10, server=server, user=user)
    try:
        yield World(server, user, db, intake)
    finally:
        db.dispose()


async def stopped(task: asyncio.Task[None], stop: asyncio.Event, within: float = 2.0) -> float:
    """Set ``stop`` and wait for run() to return; how long that took."""
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, within)
    return time.monotonic() - started


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot.imap" and r.levelno >= logging.WARNING]


# -- one mail, committed before it is marked ----------------------------------------------------------


def test_new_mail_becomes_a_ticket_with_one_acknowledgement_and_is_seen_after_the_commit(world: World) -> None:
    uid = world.append(mail())
    world.intake.watch = True
    assert asyncio.run(world.imap().catch_up()) == 1

    assert world.tickets() == 1 and world.acknowledgements() == 1
    assert "\\Seen" not in (world.intake.during_commit[uid] or set())  # unseen while being committed
    assert "\\Seen" in world.flags()[uid]  # and seen afterwards
    assert world.checkpoint() == (world.server.uidvalidity(world.user), uid)


def test_first_start_reads_everything_and_a_restart_reads_nothing_twice(world: World) -> None:
    uids = [world.append(mail(subject=f"Vraag {n}", message_id=f"q{n}@bakkerij-jansen.nl")) for n in range(3)]
    assert asyncio.run(world.imap().catch_up()) == 3
    assert world.tickets() == 3 and world.acknowledgements() == 3
    assert world.checkpoint() == (world.server.uidvalidity(world.user), uids[-1])

    # a restart: a new intake on the same database finds nothing new, even with the mail unseen again
    imap = world.server.client(world.user)
    imap.select("INBOX")
    imap.uid("STORE", "1:*", "-FLAGS.SILENT", "(\\Seen)")
    imap.logout()
    assert asyncio.run(world.imap().catch_up()) == 0
    assert world.incoming() == 3 and world.acknowledgements() == 3

    world.append(mail(subject="Nog een vraag", message_id="q9@bakkerij-jansen.nl"))
    assert asyncio.run(world.imap().catch_up()) == 1
    assert world.tickets() == 4 and world.acknowledgements() == 4


# -- IDLE, polling, and the connection -----------------------------------------------------------------


def test_mail_appended_while_idling_arrives_within_seconds(world: World) -> None:
    async def body() -> None:
        imap = world.imap(idle_renew=30, noop_every=30)  # only the server's push can bring it in time
        stop = asyncio.Event()
        task = asyncio.create_task(imap.run(stop))
        await until(lambda: world.state == "up", what="the intake to connect")
        await asyncio.sleep(0.2)  # in IDLE now
        sent = time.monotonic()
        await asyncio.to_thread(world.append, mail())
        await until(lambda: world.tickets() == 1, timeout=3, what="the pushed mail to be ingested")
        assert time.monotonic() - sent < 3
        await until(lambda: "\\Seen" in world.flags().get(1, set()), what="the mail marked seen")
        assert await stopped(task, stop) < 2  # promptly, out of a 30-second IDLE

    asyncio.run(body())
    assert world.acknowledgements() == 1


def test_without_idle_it_polls(world: World) -> None:
    config = world.config(imap_host=PLAIN_HOST).model_copy(update={"imap_poll_seconds": 1})  # 5 s at least in files

    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(world.imap(config, noop_every=0.4).run(stop))
        await until(lambda: world.state == "up", what="the intake to connect")
        await asyncio.to_thread(world.append, mail())
        await until(lambda: world.tickets() == 1, timeout=4, what="the polled mail to be ingested")
        await stopped(task, stop)

    asyncio.run(body())
    assert world.checkpoint(f"{world.user}@{PLAIN_HOST}:{world.server.port}/INBOX") is not None


def test_connection_killed_during_idle_reconnects_and_catches_up(world: World,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.imap")

    async def body() -> None:
        await asyncio.to_thread(world.append, mail())
        stop = asyncio.Event()
        task = asyncio.create_task(world.imap(idle_renew=30, noop_every=30).run(stop))
        await until(lambda: world.tickets() == 1, what="the first mail")
        await asyncio.sleep(0.2)  # in IDLE now
        await asyncio.to_thread(world.server.stop)
        await until(lambda: world.state == "down", timeout=2, what="the loss to be noticed")
        await asyncio.sleep(0.5)  # several refused reconnects
        second = mail(subject="Tweede vraag", message_id="q2@bakkerij-jansen.nl")
        world.server.deliver_offline(second, user=world.user)  # while the server is down
        await asyncio.to_thread(world.server.start)
        await until(lambda: world.tickets() == 2, timeout=4, what="the catch-up after the reconnect")
        await until(lambda: world.state == "up", what="up again after that first round")
        await stopped(task, stop)

    asyncio.run(body())
    assert world.acknowledgements() == 2
    assert len(warnings_of(caplog)) == 1  # one outage, one line, however many retries
    assert "connection was lost" in warnings_of(caplog)[0]
    assert sum("connected again" in r.getMessage() for r in caplog.records) == 1


def test_a_half_open_connection_is_noticed_by_the_watchdog(world: World) -> None:
    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(world.imap(noop_every=0.3, timeout=1.0).run(stop))
        await until(lambda: world.state == "up", what="the intake to connect")
        await asyncio.sleep(0.2)
        frozen = world.server.freeze()  # the server's side stops answering; the socket stays open
        assert frozen
        try:
            await until(lambda: world.state == "down", timeout=4, what="the watchdog to give up")
            assert "no answer" in (world.health[-1][1] or "")
            await asyncio.to_thread(world.append, mail())
            await until(lambda: world.tickets() == 1, timeout=4, what="the mail on a new connection")
            await stopped(task, stop)
        finally:
            world.server.thaw(frozen)

    asyncio.run(body())


def test_a_wrong_password_is_logged_once_reported_down_and_retried(world: World,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.imap")
    world.append(mail())

    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(world.imap(world.config(imap_password="wrong"), backoff_max=0.1).run(stop))
        await until(lambda: len(world.health) >= 3, timeout=8, what="several attempts")
        assert not task.done()  # still trying
        await stopped(task, stop)

    asyncio.run(body())
    (line,) = warnings_of(caplog)
    assert "login as" in line and "AUTHENTICATIONFAILED" in line
    assert {state for state, _ in world.health} == {"down"}
    assert "AUTHENTICATIONFAILED" in (world.health[-1][1] or "")
    assert world.tickets() == 0


def test_a_server_down_at_start_is_logged_once_and_its_recovery_too(world: World,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.imap")
    world.append(mail())
    world.server.stop()

    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(world.imap(backoff_max=0.2).run(stop))
        await until(lambda: len(world.health) >= 4, what="several refused attempts")
        await asyncio.to_thread(world.server.start)
        await until(lambda: world.tickets() == 1, what="the mail once the server is back")
        await until(lambda: world.state == "up", what="up after that first round")
        await stopped(task, stop)

    asyncio.run(body())
    (line,) = warnings_of(caplog)
    assert "ConnectionRefusedError" in line
    assert sum("connected again" in r.getMessage() for r in caplog.records) == 1
    assert world.health[-1] == ("up", None)


def test_stop_is_prompt_during_a_long_backoff(world: World) -> None:
    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(world.imap(world.config(imap_password="wrong"), backoff_max=60).run(stop))
        await until(lambda: world.state == "down", what="the first failure")
        await asyncio.sleep(0.1)
        assert await stopped(task, stop) < 2

    asyncio.run(body())


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls(world: World, security: str) -> None:
    if world.server.cafile is None:
        pytest.skip("no openssl for a test certificate")
    world.append(mail())
    port = world.server.tls_port if security == "tls" else world.server.port
    imap = world.imap(world.config(imap_security=security, imap_port=port), ssl_context=world.server.ssl_context())
    assert asyncio.run(imap.catch_up()) == 1
    assert world.tickets() == 1


# -- nothing lost, nothing twice -------------------------------------------------------------------------


def test_a_crash_between_fetch_and_commit_gives_one_ticket_and_one_acknowledgement(world: World) -> None:
    uid = world.append(mail())
    crashes = [Crash()]
    world.intake.fail = lambda raw: crashes.pop() if crashes else None

    with pytest.raises(Crash):
        asyncio.run(world.imap().catch_up())
    assert world.tickets() == 0 and world.acknowledgements() == 0
    assert world.checkpoint() == (world.server.uidvalidity(world.user), 0)  # rolled back with the mail
    assert "\\Seen" not in world.flags()[uid]

    assert asyncio.run(world.imap().catch_up()) == 1  # after the restart
    assert asyncio.run(world.imap().catch_up()) == 0
    assert world.tickets() == 1 and world.acknowledgements() == 1 and world.incoming() == 1
    assert "\\Seen" in world.flags()[uid]


def test_a_crash_between_commit_and_acknowledgement_gives_one_ticket_and_one_acknowledgement(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dead after the commit: not yet marked seen, the acknowledgement not yet sent. After the restart the mail is
    not read again, it is marked, and the acknowledgement goes out once."""
    from smtpsink import smtp_sink

    from bot.outbox import OutboxDispatcher
    from channels.email.smtp import SmtpSender, SmtpSettings

    uid = world.append(mail())

    async def die(*args: Any, **kwargs: Any) -> None:
        raise Crash()

    crashing = world.imap()
    monkeypatch.setattr(crashing, "_after_commit", die)
    with pytest.raises(Crash):
        asyncio.run(crashing.catch_up())
    assert world.tickets() == 1 and world.acknowledgements() == 1  # committed, its acknowledgement queued
    assert "\\Seen" not in world.flags()[uid]
    assert world.count(m.MailUnmarked) == 1

    assert asyncio.run(world.imap().catch_up()) == 0  # the restart: nothing read twice, the mail marked
    assert "\\Seen" in world.flags()[uid] and world.count(m.MailUnmarked) == 0
    with smtp_sink() as (sink, port):
        sender = SmtpSender(SmtpSettings(host="127.0.0.1", port=port, from_address=SUPPORT, security="none",
                                         timeout=5), now=lambda: MONDAY_10)
        dispatcher = OutboxDispatcher(world.db, {"email": sender}, now=lambda: MONDAY_10)
        assert asyncio.run(dispatcher.run_once()) == 1
        assert asyncio.run(dispatcher.run_once()) == 0
        assert [mail_["To"] for mail_ in sink.mails] == [PIET]
    assert world.tickets() == 1 and world.incoming() == 1


def test_a_skipped_mail_is_not_marked_after_a_restart(world: World) -> None:
    uid = world.append(mail())
    world.intake.fail = lambda raw: RuntimeError("a parser bug")
    imap = world.imap()
    for _ in range(3):
        asyncio.run(imap.catch_up())
    world.intake.fail = lambda raw: None
    assert asyncio.run(world.imap().catch_up()) == 0
    assert world.tickets() == 0 and "\\Seen" not in world.flags()[uid] and world.count(m.MailUnmarked) == 0


def test_a_uidvalidity_reset_duplicates_nothing_and_loses_nothing(world: World) -> None:
    world.append(mail(subject="Vraag 1", message_id="q1@bakkerij-jansen.nl"))
    world.append(mail(subject="Vraag 2", message_id=None))  # no Message-ID: recognised by the parser's hash
    assert asyncio.run(world.imap().catch_up()) == 2
    old = world.server.uidvalidity(world.user)

    world.server.reset_uidvalidity(world.user)
    new = world.server.uidvalidity(world.user)
    assert new != old
    world.append(mail(subject="Vraag 3", message_id="q3@bakkerij-jansen.nl"))

    assert asyncio.run(world.imap().catch_up()) == 1  # only the new one is stored
    assert world.incoming() == 3 and world.tickets() == 3 and world.acknowledgements() == 3
    assert world.checkpoint() == (new, 3)
    assert world.count(m.Event, m.Event.kind == "mail_uidvalidity_changed") == 1
    assert asyncio.run(world.imap().catch_up()) == 0


def test_a_poison_mail_is_skipped_after_three_rounds_and_later_mail_flows(world: World,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.imap")
    world.append(mail(subject="Goed 1", message_id="g1@bakkerij-jansen.nl"))
    poison = world.append(mail(subject="Gif", message_id="gif@bakkerij-jansen.nl"))
    world.append(mail(subject="Goed 2", message_id="g2@bakkerij-jansen.nl"))
    world.append(mail(subject="Goed 3", message_id="g3@bakkerij-jansen.nl"))
    world.intake.fail = lambda raw: RuntimeError("a bug in the intake") if b"Subject: Gif" in raw else None

    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(world.imap(noop_every=0.2).run(stop))
        await until(lambda: world.tickets() == 3, what="the good mail around the poison mail")
        await stopped(task, stop)

    asyncio.run(body())
    assert world.acknowledgements() == 3
    flags = world.flags()
    assert "\\Seen" not in flags[poison]  # kept in the mailbox, unseen, for staff
    assert all("\\Seen" in f for uid, f in flags.items() if uid != poison)
    (skipped,) = world.db.run(lambda s: s.scalars(select(m.Event.data).where(m.Event.kind == "mail_skipped")).all())
    assert skipped["uid"] == poison and skipped["rounds"] == 3 and "a bug in the intake" in skipped["error"]
    assert any("skipped after 3 failed rounds" in line for line in warnings_of(caplog))
    assert world.checkpoint() == (world.server.uidvalidity(world.user), 4)


def test_an_unreachable_database_is_not_the_mails_fault(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.imap")
    uid = world.append(mail())
    outage = [OperationalError("INSERT INTO messages ...", {}, Exception("disk I/O error")) for _ in range(5)]
    world.intake.fail = lambda raw: outage.pop() if outage else None

    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(world.imap(noop_every=0.2, backoff_max=0.1).run(stop))
        await until(lambda: world.tickets() == 1, what="the mail once the database is back")
        await until(lambda: world.state == "up", what="up after that round")
        await stopped(task, stop)

    asyncio.run(body())
    assert world.count(m.Event, m.Event.kind == "mail_skipped") == 0  # five failures, never skipped
    assert ("down", "database unavailable: disk I/O error") in world.health and world.health[-1] == ("up", None)
    assert len(warnings_of(caplog)) == 1
    assert world.acknowledgements() == 1 and "\\Seen" in world.flags()[uid]


@pytest.mark.parametrize("host", ["127.0.0.1", PLAIN_HOST], ids=["move", "copy-expunge"])
def test_move_to_folder_after_the_commit(world: World, host: str) -> None:
    world.append(mail())
    world.append(mail(subject="Tweede vraag", message_id="q2@bakkerij-jansen.nl"))
    world.intake.watch = True
    imap = world.imap(world.config(imap_host=host, imap_move_to="Verwerkt"))
    assert asyncio.run(imap.catch_up()) == 2

    assert world.tickets() == 2 and world.acknowledgements() == 2
    assert world.intake.during_commit[1] is not None and world.intake.during_commit[2] is not None  # in INBOX then
    assert world.flags("INBOX") == {}
    moved = world.flags("Verwerkt")
    assert len(moved) == 2 and all("\\Deleted" not in f for f in moved.values())


@pytest.mark.parametrize("name, wire", [
    ("Verwerkt", "Verwerkt"),
    ("Afgehandeld ✓", "Afgehandeld &JxM-"),
    ("Klanten & Café", "Klanten &- Caf&AOk-"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501's example
    ("Spoed 🚨", "Spoed &2D3eqA-"),  # outside the BMP: a surrogate pair
])
def test_folder_names_travel_in_modified_utf7(name: str, wire: str) -> None:
    assert imap_utf7.encode(name) == wire
    assert imap_utf7.decode(wire) == name
    assert imap_utf7.decode("Broken &!!!- name") == "Broken &!!!- name"


def test_a_folder_name_beyond_ascii_is_read_and_moved_to(world: World) -> None:
    def wire(name: str) -> str:  # imaplib sends a mailbox name as it is given: encoded and quoted by the caller
        return f'"{imap_utf7.encode(name)}"'

    world.append(mail(), folder=wire("Klanten & Café"))
    imap = world.imap(world.config(imap_folder="Klanten & Café", imap_move_to="Afgehandeld ✓"))
    assert asyncio.run(imap.catch_up()) == 1
    assert world.tickets() == 1
    assert world.flags(wire("Klanten & Café")) == {}
    assert len(world.flags(wire("Afgehandeld ✓"))) == 1


# -- the whole application: IMAP in, SMTP out ------------------------------------------------------------


def test_slabot_run_reads_the_mailbox_and_answers_over_smtp(mailbox: tuple[MailServer, str], tmp_path: Path) -> None:
    from smtpsink import smtp_sink

    from bot.app import Application
    from bot.config import load_config
    from storage.records import AccountInput, ContactInput
    from storage.repositories import AccountRepository

    server, user = mailbox
    with smtp_sink() as (sink, port):
        config = tmp_path / "slabot.toml"
        config.write_text(
            f'[database]\nurl = "sqlite:///{tmp_path / "slabot.db"}"\n'
            f'[http]\nhost = "127.0.0.1"\nport = {free_port()}\n'
            f'[email]\nimap_host = "{server.host}"\nimap_port = {server.port}\nimap_user = "{user}"\n'
            f'imap_password = "{PASSWORD}"\nimap_security = "none"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
            f'smtp_security = "none"\nfrom_address = "{SUPPORT}"\n', encoding="utf-8")

        async def scenario() -> None:
            app = Application(load_config(str(config)), now=lambda: MONDAY_10, dispatch_interval=0.05)
            stop = asyncio.Event()
            task = asyncio.create_task(app.run(stop))
            try:
                await until(lambda: app.started.is_set() or task.done(), what="slabot to start")
                assert app.db is not None
                account = AccountInput("Bakkerij Jansen", "licentie", contacts=(ContactInput("Piet", emails=(PIET,)),))
                await asyncio.to_thread(app.db.run, lambda s: AccountRepository(s).upsert(account, MONDAY_10))
                await asyncio.to_thread(server.append, mail(), user=user)
                await until(lambda: len(sink.envelopes) == 1, timeout=15, what="the acknowledgement by SMTP")
                assert app.health.channels["email"].state == "up"
            finally:
                stop.set()
                await task

        asyncio.run(scenario())
    (ack,) = sink.mails
    assert ack["In-Reply-To"] == "<q1@bakkerij-jansen.nl>" and "[MC-10001]" in str(ack["Subject"])
    assert sink.envelopes[0].rcpt_tos == [PIET]


def test_two_workers_on_one_database_read_the_mailbox_in_turn_and_each_mail_once(
        mailbox: tuple[MailServer, str], tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Two ``Application``s (each its own engine) on one database and one mailbox: one reads it (the lease
    ``imap:...``), each mail is stored and answered once; when that one stops, the other reads on."""
    from smtpsink import smtp_sink

    from bot.app import Application
    from bot.config import load_config
    from storage.leases import lease_holder
    from storage.records import AccountInput, ContactInput
    from storage.repositories import AccountRepository

    server, user = mailbox
    caplog.set_level(logging.INFO, logger="bot.imap")

    def connected() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"IMAP {user}@")
                and ": connected (" in r.getMessage()]

    with smtp_sink() as (sink, port):
        configs = []
        for i in range(2):
            config = tmp_path / f"worker{i}.toml"
            config.write_text(
                f'[database]\nurl = "{db_url}"\nlease_seconds = 1\n'
                f'[http]\nhost = "127.0.0.1"\nport = {free_port()}\n'
                f'[email]\nimap_host = "{server.host}"\nimap_port = {server.port}\nimap_user = "{user}"\n'
                f'imap_password = "{PASSWORD}"\nimap_security = "none"\nimap_poll_seconds = 5\n'
                f'smtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_security = "none"\nfrom_address = "{SUPPORT}"\n',
                encoding="utf-8")
            configs.append(config)

        async def scenario() -> None:
            apps = [Application(load_config(str(c)), now=lambda: MONDAY_10, dispatch_interval=0.05) for c in configs]
            stops = [asyncio.Event(), asyncio.Event()]
            tasks = [asyncio.create_task(app.run(stop)) for app, stop in zip(apps, stops)]
            try:
                await until(lambda: all(a.started.is_set() for a in apps) or any(t.done() for t in tasks),
                            what="both workers to start")
                db = apps[0].db
                assert db is not None
                account = AccountInput("Bakkerij Jansen", "licentie", contacts=(ContactInput("Piet", emails=(PIET,)),))
                await asyncio.to_thread(db.run, lambda s: AccountRepository(s).upsert(account, MONDAY_10))
                name = f"imap:{user}@{server.host}:{server.port}/INBOX"
                holder = await asyncio.to_thread(db.run_direct, lambda d: lease_holder(d, name))
                (reader,) = [i for i, a in enumerate(apps) if a.worker == holder]
                await asyncio.to_thread(server.append, mail(), user=user)
                await until(lambda: len(sink.envelopes) == 1, timeout=15, what="the acknowledgement by SMTP")
                await asyncio.sleep(1.5)  # more than a lease: the other worker has kept away from the mailbox
                assert len(connected()) == 1
                stops[reader].set()  # the reader stops: gives the mailbox up, the other reads on
                await tasks[reader]
                await asyncio.to_thread(server.append, mail(message_id="q2@bakkerij-jansen.nl",
                                                            subject="Nog een vraag"), user=user)
                await until(lambda: len(sink.envelopes) == 2, timeout=15, what="the second acknowledgement")
                await asyncio.sleep(0.5)  # a mail read twice would be answered twice by now
                other = apps[1 - reader].db  # the reader's database is closed now
                assert other is not None
                rows = await asyncio.to_thread(other.run, lambda s: s.scalar(
                    select(func.count()).select_from(m.Message).where(m.Message.direction == "in")))
                assert rows == 2
            finally:
                for stop in stops:
                    stop.set()
                await asyncio.gather(*tasks)

        asyncio.run(scenario())
    assert len(sink.envelopes) == 2
    assert len(connected()) == 2  # the first reader, then the other after the handover
