"""E-mail through the intake: threading (R6, R3), loop prevention, bounces, mail kept aside, the pipe mode.

Mail goes in as raw RFC 5322 bytes (MailIntake, the pipe mode's command) and
acknowledgements go out through the outbox to a real SMTP server (aiosmtpd), so
a customer's reply can thread on the Message-ID slabot really sent.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import MONDAY_10, add_account, contact, email, free_port, preset
from smtpsink import Sink, smtp_sink
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot.intake import IntakePipeline, IntakeResult
from bot.mail import MailIntake, MailResult, ingest_files, mail_reply_guards
from bot.outbox import OutboxDispatcher
from channels.email.smtp import SmtpSender, SmtpSettings
from channels.messages import InboundMessage
from storage import models as m
from storage.database import Database, open_database
from storage.direct import Direct

SUPPORT = "support@mailcampaigns.example"
PIET = "piet@bakkerij-jansen.nl"
KEES = "kees@bakkerij-jansen.nl"  # a colleague of Piet's, not a contact person


class World:
    """A database with one account, the mail intake, and an outbox that sends to an SMTP sink."""

    def __init__(self, db: Database, sink: Sink, port: int) -> None:
        self.db = db
        self.sink = sink
        self.now = MONDAY_10
        self.pipeline = IntakePipeline(db, preset("mailcampaigns"), now=lambda: self.now,
                                       reply_guards=mail_reply_guards(5, lambda: self.now))
        self.intake = MailIntake(db, self.pipeline, own_addresses=(SUPPORT,), now=lambda: self.now)
        sender = SmtpSender(SmtpSettings(host="127.0.0.1", port=port, from_address=SUPPORT, security="none",
                                         timeout=5), now=lambda: self.now)
        self.dispatcher = OutboxDispatcher(db, {"email": sender}, now=lambda: self.now)

    def deliver(self, raw: bytes) -> str:
        """Ingest ``raw``, send what it queued; the outcome."""
        result = self.intake.ingest_raw(raw, source="test")
        asyncio.run(self.dispatcher.run_once())
        return result.outcome

    def count(self, model: object, *where: object) -> int:
        return int(self.db.run(lambda s: s.scalar(select(func.count()).select_from(model).where(*where))))  # type: ignore[arg-type]

    def tickets(self) -> list[m.Ticket]:
        return list(self.db.run(lambda s: s.scalars(select(m.Ticket).order_by(m.Ticket.id)).all()))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet Jansen", email=PIET))
    with smtp_sink() as (sink, port):
        yield World(db, sink, port)
    db.dispose()


def mail(sender: str = PIET, subject: str = "De verzendknop werkt niet", body: str = "Hij doet niets.",
         *, message_id: str | None = "q1@bakkerij-jansen.nl", date: datetime = MONDAY_10,
         to: str = SUPPORT, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date.astimezone(timezone.utc))
    if message_id:
        msg["Message-ID"] = f"<{message_id}>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return bytes(msg)


def sent_ids(world: World) -> list[str]:
    return [str(m_["Message-ID"]).strip("<>") for m_ in world.sink.mails]


# -- a request and its acknowledgement -------------------------------------------------------------------


def test_new_request_is_acknowledged_by_mail_with_threading_headers(world: World) -> None:
    assert world.deliver(mail()) == "new_ticket"
    (ticket,) = world.tickets()
    (ack,) = world.sink.mails
    assert ack["In-Reply-To"] == "<q1@bakkerij-jansen.nl>"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert f"[{ticket.ref}]" in str(ack["Subject"]) and str(ack["Subject"]).startswith("Re: De verzendknop")
    assert world.sink.envelopes[0].rcpt_tos == [PIET]
    assert "donderdag 26 november 2026 om 10:00" in ack.get_content()  # 24 business hours after Monday 10:00


def test_the_same_mail_twice_is_one_ticket_and_one_acknowledgement(world: World) -> None:
    assert world.deliver(mail()) == "new_ticket"
    assert world.deliver(mail()) == "duplicate"
    assert len(world.tickets()) == 1 and len(world.sink.mails) == 1


# -- threading (R6) ---------------------------------------------------------------------------------------


def test_reply_threads_by_in_reply_to_by_references_and_by_subject_reference(world: World) -> None:
    world.deliver(mail())
    (ticket,) = world.tickets()
    (ack_id,) = sent_ids(world)
    assert world.deliver(mail(subject="Re: iets anders", message_id="r1@bakkerij-jansen.nl",
                              In_Reply_To=f"<{ack_id}>")) == "reply"
    assert world.deliver(mail(subject="nog een vraag", message_id="r2@bakkerij-jansen.nl",
                              References=f"<q1@bakkerij-jansen.nl> <{ack_id}>")) == "reply"
    assert world.deliver(mail(subject=f"Over {ticket.ref}", message_id="r3@bakkerij-jansen.nl")) == "reply"
    assert len(world.tickets()) == 1
    assert len(world.sink.mails) == 1  # a reply on an open ticket gets no new acknowledgement
    assert world.count(m.Message, m.Message.ticket_id == ticket.id, m.Message.direction == "in") == 4


def test_a_colleague_replying_in_cc_is_not_the_contact_person(world: World) -> None:
    world.deliver(mail())
    (ack_id,) = sent_ids(world)
    outcome = world.deliver(mail(sender=KEES, subject="Re: De verzendknop werkt niet",
                                 message_id="k1@bakkerij-jansen.nl", In_Reply_To=f"<{ack_id}>", Cc=PIET))
    assert outcome == "not_contact_person"
    assert len(world.tickets()) == 1
    assert world.sink.envelopes[-1].rcpt_tos == [KEES]  # told politely, the ticket's contact is Piet


def test_subject_reference_from_someone_else_does_not_join_the_ticket_as_its_contact(world: World) -> None:
    world.deliver(mail())
    (ticket,) = world.tickets()
    outcome = world.deliver(mail(sender="iemand@elders.example", subject=f"Re: [{ticket.ref}]",
                                 message_id="x1@elders.example"))
    assert outcome == "not_contact_person"


# -- loop prevention --------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {"Auto_Submitted": "auto-replied"},
    {"Precedence": "bulk"},
    {"X_Autoreply": "yes"},
    {"List_Id": "<nieuws.lists.example>"},
    {"X_Auto_Response_Suppress": "All"},
])
def test_automatic_mail_is_stored_without_an_answer(world: World, headers: dict[str, str]) -> None:
    assert world.deliver(mail(**headers)) == "new_ticket"
    assert world.count(m.Message, m.Message.direction == "in") == 1
    assert world.sink.mails == [] and world.count(m.Outbox) == 0


def test_mailer_daemon_gets_no_answer(world: World) -> None:
    world.deliver(mail(sender="MAILER-DAEMON@mx.example", subject="Undelivered Mail Returned to Sender",
                       message_id="bounce-x@mx.example"))
    assert world.sink.mails == []


def test_an_autoresponder_ping_pong_is_capped_per_hour(world: World) -> None:
    # a robot that marks nothing as automatic and writes a new mail to every mail it receives
    robot = "robot@ergens.example"
    add_account(world.db, "Robot BV", "licentie", contact("Robot", email=robot))
    for i in range(12):
        world.deliver(mail(sender=robot, subject=f"Re: uw bericht {i}", message_id=f"robot{i}@ergens.example"))
    to_robot = [e for e in world.sink.envelopes if e.rcpt_tos == [robot]]
    assert len(to_robot) == 5
    world.now += timedelta(hours=2)
    world.deliver(mail(sender=robot, subject="Re: later", message_id="robot-later@ergens.example"))
    assert len([e for e in world.sink.envelopes if e.rcpt_tos == [robot]]) == 6


def test_own_mail_coming_back_is_dropped(world: World) -> None:
    world.deliver(mail())
    (ack_raw,) = [e.content for e in world.sink.envelopes]
    assert world.intake.ingest_raw(ack_raw, source="loop").outcome == "own_mail"
    assert world.intake.ingest_raw(mail(sender=SUPPORT, message_id="own2@mailcampaigns.example"),
                                   source="loop").outcome == "own_mail"
    assert world.count(m.Message, m.Message.direction == "in") == 1


def test_bounce_is_linked_to_the_message_it_bounces_and_the_address_is_flagged(world: World) -> None:
    world.deliver(mail())
    (ticket,) = world.tickets()
    (ack_id,) = sent_ids(world)
    bounce = _dsn(ack_id, PIET)
    assert world.intake.ingest_raw(bounce, source="bounce").outcome == "bounce"
    ack = world.db.run(lambda s: s.scalar(select(m.Message).where(m.Message.direction == "out")))
    assert ack.delivery_state == "failed"
    assert world.count(m.AddressFlag, m.AddressFlag.address == PIET) == 1
    assert world.count(m.Event, m.Event.kind == "message_bounced") == 1
    assert world.count(m.Message, m.Message.ticket_id == ticket.id, m.Message.decision == "bounce") == 1
    # no automatic reply to a flagged address, though the mail is stored
    world.deliver(mail(subject="Nieuwe vraag", message_id="q9@bakkerij-jansen.nl"))
    assert len(world.sink.mails) == 1 and len(world.tickets()) == 2


def _dsn(original_id: str, recipient: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.bakkerij-jansen.nl\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn1@mx.bakkerij-jansen.nl>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.bakkerij-jansen.nl\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {SUPPORT}\r\nTo: {recipient}\r\nMessage-ID: <{original_id}>\r\nSubject: Re: x\r\n"
        "--B--\r\n"
    ).encode()


def test_old_mail_is_stored_without_an_answer(world: World) -> None:
    received = f"Received: by mx.mailcampaigns.example; {format_datetime(MONDAY_10 - timedelta(days=3))}\r\n"
    old = received.encode() + mail(date=MONDAY_10, message_id="old@bakkerij-jansen.nl")
    assert world.deliver(old) == "new_ticket"
    assert world.sink.mails == [] and len(world.tickets()) == 1


def test_mail_written_long_ago_but_received_now_is_answered(world: World) -> None:
    assert world.deliver(mail(date=MONDAY_10 - timedelta(days=3), message_id="outbox@bakkerij-jansen.nl")) == (
        "new_ticket")
    (ticket,) = world.tickets()
    assert ticket.received_at == MONDAY_10 and len(world.sink.mails) == 1


def test_unreadable_mail_is_kept_aside_and_the_next_one_flows(world: World) -> None:
    assert world.intake.ingest_raw(b"", source="empty").outcome == "kept_aside"
    assert world.intake.ingest_raw(b"\x00\x01 not a mail at all", source="garbage").outcome == "kept_aside"
    kept = world.db.run(lambda s: s.scalars(select(m.KeptMail).order_by(m.KeptMail.id)).all())
    assert [k.raw for k in kept] == [b"", b"\x00\x01 not a mail at all"]
    assert world.count(m.Event, m.Event.kind == "mail_kept_aside") == 2
    assert world.intake.ingest_raw(b"", source="empty again").outcome == "kept_aside"  # a rescan, a retried pipe
    assert world.count(m.KeptMail) == 2 and world.count(m.Event, m.Event.kind == "mail_kept_aside") == 2
    assert world.deliver(mail()) == "new_ticket"


# -- a folder of .eml files ---------------------------------------------------------------------------------


def _folder(tmp_path: Path) -> tuple[list[Path], dict[str, str]]:
    """40 files (three chunks): requests, replies and a duplicate of a mail in the same chunk, slabot's own
    mail, an unreadable file and one that is gone; and the outcome each must get."""
    folder = tmp_path / "mails"
    folder.mkdir()
    files: list[Path] = []
    expected: dict[str, str] = {}

    def add(raw: bytes | None, outcome: str) -> None:
        path = folder / f"{len(files):03d}.eml"
        if raw is not None:
            path.write_bytes(raw)
        files.append(path)
        expected[str(path)] = outcome

    for i in range(40):
        if i == 5:
            add(mail(subject="Re: vraag 3", message_id="r5@bakkerij-jansen.nl",
                     In_Reply_To="<f3@bakkerij-jansen.nl>"), "reply")  # its original is in the same chunk
        elif i == 6:
            add(mail(subject="vraag 3", message_id="f3@bakkerij-jansen.nl"), "duplicate")
        elif i == 9:
            add(b"\x00\x01 not a mail at all", "kept_aside")
        elif i == 20:
            add(None, "OSError")  # listed, then gone before it was read
        elif i == 21:
            add(mail(sender=SUPPORT, message_id="own@mailcampaigns.example"), "own_mail")
        elif i == 33:
            add(mail(subject="Re: vraag 18", message_id="r33@bakkerij-jansen.nl",
                     References="<f18@bakkerij-jansen.nl>"), "reply")  # its original is in another chunk
        else:
            add(mail(subject=f"vraag {i}", message_id=f"f{i}@bakkerij-jansen.nl",
                     body=f"Vraag nummer {i}."), "new_ticket")
    return files, expected


def _outcome(result: MailResult | OSError) -> str:
    return "OSError" if isinstance(result, OSError) else result.outcome


@pytest.mark.parametrize(("readers", "thread"), [
    pytest.param(2, False, id="forked readers"),
    pytest.param(2, True, id="another thread runs: no readers forked"),
    pytest.param(0, False, id="no readers"),
])
def test_a_folder_is_stored_in_file_order_as_one_by_one(tmp_path: Path, readers: int, thread: bool) -> None:
    if thread:
        done = threading.Event()
        running = threading.Thread(target=done.wait, daemon=True)
        running.start()
    files, expected = _folder(tmp_path)
    together = open_database(f"sqlite:///{tmp_path / 'together.db'}")
    alone = open_database(f"sqlite:///{tmp_path / 'alone.db'}")
    intakes = []
    for db in (together, alone):
        add_account(db, "Bakkerij Jansen", "licentie", contact("Piet Jansen", email=PIET))
        pipeline = IntakePipeline(db, preset("mailcampaigns"), now=lambda: MONDAY_10,
                                  reply_guards=mail_reply_guards(5, lambda: MONDAY_10))
        intakes.append(MailIntake(db, pipeline, own_addresses=(SUPPORT,), now=lambda: MONDAY_10))
    results = list(ingest_files(intakes[0], files, readers=readers))
    assert [str(path) for path, _ in results] == [str(f) for f in files]
    assert {str(path): _outcome(result) for path, result in results} == expected
    one_by_one = [intakes[1].ingest_raw(f.read_bytes(), source=str(f)) for f in files if f.exists()]
    stored = [r for _, r in results if isinstance(r, MailResult)]
    assert [(r.outcome, r.ticket_ref, r.message_id) for r in stored] == [
        (r.outcome, r.ticket_ref, r.message_id) for r in one_by_one]

    def rows(db: Database) -> list[tuple[object, ...]]:
        return db.run(lambda s: [tuple(row) for row in s.execute(
            select(m.Message.direction, m.Message.external_id, m.Ticket.ref, m.Message.recipient)
            .outerjoin(m.Ticket, m.Ticket.id == m.Message.ticket_id).order_by(m.Message.id)).all()])

    acknowledgements = rows(together)
    assert [row for row in acknowledgements if row[0] == "in"] == [row for row in rows(alone) if row[0] == "in"]
    assert len(acknowledgements) == len(rows(alone))
    assert together.run(lambda s: s.scalar(select(func.count()).select_from(m.KeptMail))) == 1
    # the same folder again: every mail is already stored
    again = {_outcome(result) for _, result in ingest_files(intakes[0], files, readers=readers)}
    assert again == {"duplicate", "own_mail", "kept_aside", "OSError"}
    together.dispose()
    alone.dispose()
    if thread:
        done.set()


class _FailingPipeline(IntakePipeline):
    """Fails to store the mail with the Message-ID ``fail_on``, as a database that went away would."""

    fail_on: str | None = None

    def _check(self, msg: InboundMessage) -> None:
        if msg.external_id == self.fail_on:
            raise OperationalError("INSERT INTO messages ...", {}, Exception("disk I/O error"))

    def ingest_in(self, direct: Direct, msg: InboundMessage, *, acknowledge: bool = True) -> IntakeResult:
        self._check(msg)
        return super().ingest_in(direct, msg, acknowledge=acknowledge)

    def ingest(self, msg: InboundMessage, **options: Any) -> IntakeResult:
        self._check(msg)
        return super().ingest(msg, **options)


def test_a_database_failure_in_a_folder_stops_at_that_file_and_loses_nothing(tmp_path: Path) -> None:
    files, expected = _folder(tmp_path)
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet Jansen", email=PIET))
    pipeline = _FailingPipeline(db, preset("mailcampaigns"), now=lambda: MONDAY_10)
    pipeline.fail_on = "f27@bakkerij-jansen.nl"  # in the middle of the second chunk
    intake = MailIntake(db, pipeline, own_addresses=(SUPPORT,), now=lambda: MONDAY_10)
    reported: list[str] = []
    with pytest.raises(OperationalError):
        for path, result in ingest_files(intake, files):
            reported.append(_outcome(result))
    assert reported == [expected[str(f)] for f in files[:27]]  # the file it stopped at is the first not reported
    stored = db.run(lambda s: set(s.scalars(select(m.Message.external_id).where(m.Message.direction == "in"))))
    assert "f26@bakkerij-jansen.nl" in stored and "f27@bakkerij-jansen.nl" not in stored
    assert not {f"f{i}@bakkerij-jansen.nl" for i in range(27, 40)} & stored
    # tried again once the database is back: the rest goes in, nothing twice
    pipeline.fail_on = None
    again = [_outcome(result) for _, result in ingest_files(intake, files)]
    assert again[:27] == [o if o in ("kept_aside", "OSError", "own_mail") else "duplicate"
                          for o in reported]
    assert again[27:] == [expected[str(f)] for f in files[27:]]
    assert db.run(lambda s: s.scalar(select(func.count()).select_from(m.Message).where(
        m.Message.direction == "in"))) == 36  # 40 files: a duplicate, own mail, one unreadable, one gone
    db.dispose()


# -- the pipe mode ------------------------------------------------------------------------------------------


def _slabot(tmp_path: Path, *args: str, stdin: bytes | None = None, db_url: str | None = None
            ) -> subprocess.CompletedProcess[bytes]:
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url or "sqlite:///" + str(tmp_path / "pipe.db")}"\n'
                      f'[email]\nfrom_address = "{SUPPORT}"\nacknowledge_max_age_hours = 0\n', encoding="utf-8")
    env = {**os.environ, "SLABOT_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "bot.cli", "ingest", "email", *args], input=stdin,
                          capture_output=True, env=env, timeout=60, check=False)


def test_pipe_mode_exit_codes(tmp_path: Path) -> None:
    good = _slabot(tmp_path, "-", stdin=mail())
    assert good.returncode == 0, good.stderr
    assert b"new_ticket" in good.stdout or b"unknown_sender" in good.stdout
    again = _slabot(tmp_path, "-", stdin=mail())
    assert again.returncode == 0 and b"duplicate" in again.stdout
    unreadable = _slabot(tmp_path, "-", stdin=b"")
    assert unreadable.returncode == 65
    folder = tmp_path / "mails"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.eml").write_bytes(mail(message_id=f"dir{i}@bakkerij-jansen.nl", subject=f"Vraag {i}"))
    (folder / "notes.txt").write_text("not a mail", encoding="utf-8")
    batch = _slabot(tmp_path, str(folder), "--json")
    assert batch.returncode == 0, batch.stderr
    assert batch.stdout.count(b'"outcome"') == 3
    down = _slabot(tmp_path, "-", stdin=mail(),
                   db_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2")
    assert down.returncode == 75, down.stderr
    assert b"try again" in down.stderr or b"unreachable" in down.stderr


def test_pipe_mode_folder_reports_every_file_in_order(tmp_path: Path) -> None:
    files, expected = _folder(tmp_path)
    files[20].write_bytes(mail(subject="toch gevonden", message_id="f20@bakkerij-jansen.nl"))
    expected[str(files[20])] = "new_ticket"
    done = _slabot(tmp_path, str(tmp_path / "mails"))
    assert done.returncode == 65, done.stderr  # the unreadable one is kept aside
    lines = done.stdout.decode().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(f) for f in files]
    no_accounts = {"new_ticket": "unknown_sender"}  # this database has no accounts
    assert [line.split(": ")[1].split()[0] for line in lines] == [
        no_accounts.get(expected[str(f)], expected[str(f)]) for f in files]
    again = _slabot(tmp_path, str(tmp_path / "mails"))
    assert again.returncode == 65 and again.stdout.count(b": duplicate") == 38  # all but own mail and kept aside


@pytest.mark.parametrize("per_hour", [5, 0])
def test_a_flagged_address_gets_no_automatic_reply_with_or_without_a_cap(tmp_path: Path, per_hour: int) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    (guard,) = mail_reply_guards(per_hour, lambda: MONDAY_10)
    msg = email("g1@bakkerij-jansen.nl", PIET, "Vraag")
    assert db.run_direct(lambda d: guard(d, msg)) is None
    db.run_direct(lambda d: d.insert(m.AddressFlag.__table__, {
        "channel": "email", "address": PIET, "reason": "bounced", "flagged_at": MONDAY_10}))
    assert db.run_direct(lambda d: guard(d, msg)) == f"{PIET} is flagged (bounced)"
    db.dispose()


def test_a_staff_reply_that_bounces_leaves_the_ticket_unanswered_again(world: World) -> None:
    """R8: a reply counts when queued; a permanent bounce of it undoes the response and plans the reminders again."""
    from bot.desk import Desk

    world.deliver(mail())
    (ticket,) = world.tickets()
    Desk(world.db, lambda: world.now).reply(ticket.ref, "We kijken ernaar.", "anna")
    asyncio.run(world.dispatcher.run_once())
    answered = world.db.run(lambda s: s.scalar(select(m.Ticket.first_responded_at)))
    assert answered is not None
    reply_id = sent_ids(world)[-1]
    assert world.intake.ingest_raw(_dsn(reply_id, PIET), source="bounce").outcome == "bounce"
    assert world.db.run(lambda s: s.scalar(select(m.Ticket.first_responded_at))) is None
    assert world.count(m.Reminder, m.Reminder.state == "planned") >= 1
    assert world.count(m.Event, m.Event.kind == "response_undone") == 1
