"""R23: the SLA clock starts when a request reached the desk, never at a time the sender wrote.

E-mail through ``slabot ingest email`` (piped in, and a folder), and through the
IMAP intake against a real Dovecot (mail appended with a chosen INTERNALDATE);
phone calls through ``slabot calls import``. Each ticket is looked at with
``slabot tickets show --json``: its ``received_at``, its ``first_response_due``
(the same as ``slabot sla deadline`` computes from that moment) and its
acknowledgement. On SQLite and PostgreSQL. WhatsApp is in test_whatsapp.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import MONDAY_10, add_account, contact, run_cli
from mailserver import PASSWORD, MailServer, mailbox, mailserver  # noqa: F401 - fixtures

from bot.config import EmailConfig
from bot.imap import ImapIntake
from bot.intake import IntakePipeline
from bot.mail import MailIntake, mail_reply_guards
from bot.presets import load_preset
from storage.database import open_database

SUPPORT = "support@mailcampaigns.example"
PIET = "piet@bakkerij-jansen.nl"  # Dutch, plan licentie
JANE = "jane@harbour-tools.example"  # English, plan licentie
ACK_TEXT = {"nl": "Een medewerker reageert uiterlijk", "en": "A member of staff will respond by"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _config(tmp_path: Path, db_url: str) -> Path:
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[email]\nfrom_address = "{SUPPORT}"\n', encoding="utf-8")
    return config


@pytest.fixture
def desk(tmp_path: Path, db_url: str) -> Iterator[Path]:
    """A database with a Dutch and an English customer on plan licentie; the config that points at it."""
    db = open_database(db_url)
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet Jansen", email=PIET))
    add_account(db, "Harbour Tools", "licentie", contact("Jane Smith", email=JANE), language="en")
    db.dispose()
    return _config(tmp_path, db_url)


def mail(sender: str = PIET, *, date: datetime, received: tuple[str, ...] = (), message_id: str = "q1@x.example",
         subject: str = "De verzendknop werkt niet") -> bytes:
    """A mail written at ``date``; ``received``: its Received header values, topmost first."""
    msg = EmailMessage()
    for value in received:
        msg["Received"] = value
    msg["From"] = sender
    msg["To"] = SUPPORT
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date.astimezone(timezone.utc))
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content("Hij doet niets.")
    return bytes(msg)


def by_desk(at: datetime) -> str:
    """The Received header the desk's own server adds."""
    return f"from mx.example.net (mx.example.net [192.0.2.7]) by mx.mailcampaigns.example (Postfix) " \
           f"with ESMTPS id 4Qx; {format_datetime(at)}"


def _ingest(config: Path, *args: str, stdin: bytes | None = None) -> list[dict[str, Any]]:
    """``slabot ingest email ARGS --json`` as an MTA runs it: its results."""
    env = {**os.environ, "SLABOT_CONFIG": str(config)}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "ingest", "email", *args, "--json"], input=stdin,
                          capture_output=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def show(config: Path, ref: str) -> dict[str, Any]:
    code, out, err = run_cli("--config", str(config), "tickets", "show", ref, "--json")
    assert code == 0, err
    shown: dict[str, Any] = json.loads(out)
    return shown


def deadline(config: Path, received_at: str) -> str:
    """``slabot sla deadline``'s first-response deadline for a licentie request received at ``received_at``."""
    code, out, err = run_cli("--config", str(config), "sla", "deadline", "--plan", "licentie", "--at", received_at,
                             "--json")
    assert code == 0, err
    return str(json.loads(out)["first_response_due"])


def acknowledgements(shown: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in shown["messages"] if m["direction"] == "out" and m["auto"]]


def received(shown: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(shown["received_at"])


# -- piped in --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sender", "language"), [(PIET, "nl"), (JANE, "en")])
def test_a_mail_written_two_days_ago_and_piped_in_now_runs_from_now_and_is_acknowledged(
        desk: Path, sender: str, language: str) -> None:
    before = _now()
    (result,) = _ingest(desk, "-", stdin=mail(sender, date=before - timedelta(days=2)))
    after = _now()
    assert result["outcome"] == "new_ticket"
    shown = show(desk, result["ticket"])
    assert before <= received(shown) <= after  # the moment it was piped in, not its Date
    assert shown["first_response_due"] == deadline(desk, shown["received_at"])
    (ack,) = acknowledgements(shown)
    assert ACK_TEXT[language] in ack["text"]


def test_the_desk_servers_received_header_starts_the_clock_and_a_date_ahead_does_not_push_it(desk: Path) -> None:
    arrived = (_now() - timedelta(minutes=30)).replace(microsecond=0)
    ahead = _now() + timedelta(hours=20)  # the sender's clock runs ahead
    raw = mail(date=ahead, received=(by_desk(arrived), f"from pc.bakkerij-jansen.nl by mx.example.net; "
                                                       f"{format_datetime(ahead)}"))
    (result,) = _ingest(desk, "-", stdin=raw)
    shown = show(desk, result["ticket"])
    assert received(shown) == arrived
    assert shown["first_response_due"] == deadline(desk, shown["received_at"])
    assert len(acknowledgements(shown)) == 1


# -- a folder of .eml files --------------------------------------------------------------------------------


def test_a_folder_import_uses_each_mails_received_header_else_the_moment_it_is_read(desk: Path,
                                                                                   tmp_path: Path) -> None:
    folder = tmp_path / "mails"
    folder.mkdir()
    now = _now()
    archived = (now - timedelta(days=3)).replace(microsecond=0)
    (folder / "1.eml").write_bytes(mail(date=now, received=(by_desk(archived),), message_id="old@x.example",
                                        subject="Oude vraag"))  # written "now", received three days ago
    (folder / "2.eml").write_bytes(mail(JANE, date=now - timedelta(days=2), message_id="late@x.example",
                                        received=(by_desk(now + timedelta(days=2)),)))  # implausible: ignored
    (folder / "3.eml").write_bytes(mail(date=now - timedelta(days=2), message_id="odd@x.example",
                                        subject="Nog een vraag", received=("by mx; not a date",)))
    before = _now()
    old, late, odd = _ingest(desk, str(folder))
    after = _now()
    shown_old = show(desk, old["ticket"])
    assert received(shown_old) == archived
    assert shown_old["first_response_due"] == deadline(desk, shown_old["received_at"])
    assert acknowledgements(shown_old) == []  # older than acknowledge_max_age_hours: stored without a reply
    for result in (late, odd):
        shown = show(desk, result["ticket"])
        assert before - timedelta(seconds=1) <= received(shown) <= after
        assert shown["first_response_due"] == deadline(desk, shown["received_at"])
        assert len(acknowledgements(shown)) == 1


# -- read from IMAP ------------------------------------------------------------------------------------------


def test_imap_mail_is_received_at_its_internaldate(mailbox: tuple[MailServer, str], db_url: str,  # noqa: F811
                                                   tmp_path: Path) -> None:
    server, user = mailbox
    config = _config(tmp_path, db_url)
    db = open_database(db_url)
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet Jansen", email=PIET))
    add_account(db, "Harbour Tools", "licentie", contact("Jane Smith", email=JANE), language="en")
    fresh = MONDAY_10 - timedelta(minutes=5)
    old = MONDAY_10 - timedelta(days=3)
    server.append(mail(date=MONDAY_10 - timedelta(days=2), message_id="fresh@x.example",
                       received=(by_desk(MONDAY_10 - timedelta(days=1)),)), user=user, internaldate=fresh)
    server.append(mail(JANE, date=MONDAY_10, message_id="old@x.example"), user=user, internaldate=old)
    server.append(mail(date=MONDAY_10 - timedelta(days=2), message_id="ahead@x.example", subject="Derde vraag"),
                  user=user, internaldate=MONDAY_10 + timedelta(days=1))  # implausible: now instead
    pipeline = IntakePipeline(db, load_preset("mailcampaigns"), now=lambda: MONDAY_10,
                              reply_guards=mail_reply_guards(5, lambda: MONDAY_10))
    intake = MailIntake(db, pipeline, own_addresses=(SUPPORT,), now=lambda: MONDAY_10)
    settings = EmailConfig(imap_host=server.host, imap_port=server.port, imap_user=user,
                           imap_password=PASSWORD, imap_security="none")  # type: ignore[arg-type]
    try:
        assert asyncio.run(ImapIntake(settings, intake, db, now=lambda: MONDAY_10, timeout=5).catch_up()) == 3
    finally:
        db.dispose()
    shown = show(config, _ref_of(config, "fresh@x.example"))
    assert received(shown) == fresh
    assert shown["first_response_due"] == deadline(config, shown["received_at"])
    assert len(acknowledgements(shown)) == 1
    shown = show(config, _ref_of(config, "old@x.example"))
    assert received(shown) == old
    assert shown["first_response_due"] == deadline(config, shown["received_at"])
    assert acknowledgements(shown) == []  # found three days late (a first start): no reply
    shown = show(config, _ref_of(config, "ahead@x.example"))
    assert received(shown) == MONDAY_10
    assert len(acknowledgements(shown)) == 1


def _ref_of(config: Path, message_id: str) -> str:
    """The ticket holding the inbound mail ``message_id`` (from ``tickets list`` and ``tickets show``)."""
    code, out, err = run_cli("--config", str(config), "tickets", "list", "--json")
    assert code == 0, err
    for ticket in json.loads(out):
        if any(m["external_id"] == message_id for m in show(config, ticket["ref"])["messages"]):
            return str(ticket["ref"])
    raise AssertionError(f"no ticket holds {message_id}")


# -- phone calls ----------------------------------------------------------------------------------------------


TWILIO_CALLS = {"calls": [{  # Twilio's Call resource: RFC 2822 times, the start before the end and the update
    "sid": "CA9", "date_created": "Mon, 23 Nov 2026 09:14:58 +0000", "date_updated": "Mon, 23 Nov 2026 09:30:00 +0000",
    "start_time": "Mon, 23 Nov 2026 09:15:00 +0000", "end_time": "Mon, 23 Nov 2026 09:20:00 +0000",
    "duration": "300", "from": "+31634890878", "to": "+31201234567", "status": "completed",
}]}
PBX_CSV = ("call_id,date,start,end,caller,called,duration,status\n"
           "P1,2026-11-24,2026-11-24T11:30:00,2026-11-24T11:34:00,+31611112222,+31201234567,240,answered\n"
           "P2,2026-11-24,,,+31611112222,+31201234567,60,answered\n")


def test_calls_import_starts_the_clock_at_the_calls_start(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url)
    db = open_database(db_url)
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet Jansen", email=PIET, phone="+31634890878"))
    add_account(db, "Harbour Tools", "licentie", contact("Jane Smith", email=JANE, phone="+31611112222"),
                language="en")
    db.dispose()
    (tmp_path / "twilio.json").write_text(json.dumps(TWILIO_CALLS), encoding="utf-8")
    (tmp_path / "pbx.csv").write_text(PBX_CSV, encoding="utf-8")
    code, out, err = run_cli("--config", str(config), "calls", "import", str(tmp_path / "twilio.json"))
    assert code == 0, out + err
    code, out, err = run_cli("--config", str(config), "calls", "import", str(tmp_path / "pbx.csv"))
    assert code == 1 and "pbx.csv:3: time '2026-11-24' has no time of day" in out, out + err
    for call, start in (("call:CA9", "2026-11-23T10:15:00+01:00"), ("call:P1", "2026-11-24T11:30:00+01:00")):
        shown = show(config, _ref_of(config, call))
        assert shown["received_at"] == start
        assert shown["first_response_due"] == deadline(config, start)
