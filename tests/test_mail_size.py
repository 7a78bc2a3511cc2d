"""Large mail (issue 18, point 8): a cap on the size of a mail, and a large attachment stored once.

Mail goes in through ``slabot ingest email`` (a pipe, a file, a folder) and through IMAP (Dovecot). A mail over
``[email] max_message_bytes`` is kept aside for staff with its headers only, and its sender gets one polite note
in Dutch and English naming the limit; a mail under it is taken whole, its attachment's bytes stored once (in
the raw mail). The memory a large mail takes is measured by ``benchmarks/bench_mail_size.py``, not here.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import MONDAY_10, add_account, contact, outbox_rows, run_cli
from mailserver import PASSWORD, MailServer, mailbox, mailserver  # noqa: F401 - fixtures
from sqlalchemy import func, select

from bot.config import EmailConfig
from bot.imap import ImapIntake
from bot.intake import IntakePipeline
from bot.mail import MailIntake, mail_reply_guards
from bot.presets import load_preset
from storage import models as m
from storage.database import open_database

PIET = "piet@bakkerij-jansen.nl"
LIMIT = 64 * 1024  # max_message_bytes in these tests: 64 KB


def big_mail(payload: bytes, message_id: str = "groot1@bakkerij-jansen.nl", sender: str = PIET,
             extra: str = "") -> bytes:
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (f"From: Piet Jansen <{sender}>\r\nTo: support@mailcampaigns.example\r\nSubject: Logbestand\r\n"
            f"Message-ID: <{message_id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n{extra}MIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHierbij het logbestand van de kassa.\r\n\r\n"
            "--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"kassa.log\"\r\n\r\n").encode() + encoded + b"\r\n--b1--\r\n"


class Desk:
    """A database with Piet's account, and ``slabot`` on a config with a 64 KB cap."""

    def __init__(self, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.db = open_database(db_url)
        add_account(self.db, "Bakkerij Jansen", "licentie", contact("Piet Jansen", email=PIET))
        self.config = tmp_path / "slabot.toml"
        self.config.write_text(f'[database]\nurl = "{db_url}"\n[email]\nfrom_address = "support@mailcampaigns.example"\n'
                               f"max_message_bytes = {LIMIT}\n", encoding="utf-8")
        self.monkeypatch = monkeypatch

    def cli(self, *argv: str, stdin: bytes = b"") -> tuple[int, Any]:
        self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code, out, err = run_cli("--config", str(self.config), *argv, "--json")
        return code, json.loads(out) if out.strip() else err

    def count(self, model: Any) -> int:
        return int(self.db.run(lambda s: s.scalar(select(func.count()).select_from(model))))


@pytest.fixture
def desk(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    made = Desk(tmp_path, db_url, monkeypatch)
    yield made
    made.db.dispose()


def test_a_mail_over_the_cap_is_kept_aside_and_its_sender_told_the_limit_once(desk: Desk) -> None:
    raw = big_mail(os.urandom(100_000))
    assert len(raw) > LIMIT
    code, (result,) = desk.cli("ingest", "email", "-", stdin=raw)
    assert code == 0 and result["outcome"] == "too_large" and result["ticket"] is None, result
    assert desk.cli("tickets", "list")[1] == []
    (kept,) = desk.cli("mail", "kept")[1]
    assert "max_message_bytes" in kept["reason"] and kept["bytes"] < 1024  # the headers only
    (note,) = outbox_rows(desk.db)
    assert note.recipient == PIET
    text = note.payload["text"]
    assert "64 KB" in text and "we nemen e-mail aan tot 64 KB" in text and "we accept e-mail up to 64 KB" in text
    assert "Logbestand" in text

    code, (again,) = desk.cli("ingest", "email", "-", stdin=raw)  # the MTA delivers it again: told once
    assert code == 0 and again["outcome"] == "too_large"
    assert len(outbox_rows(desk.db)) == 1 and len(desk.cli("mail", "kept")[1]) == 1


def test_automatic_mail_over_the_cap_gets_no_note(desk: Desk) -> None:
    raw = big_mail(os.urandom(100_000), extra="Auto-Submitted: auto-generated\r\n")
    code, (result,) = desk.cli("ingest", "email", "-", stdin=raw)
    assert code == 0 and result["outcome"] == "too_large"
    assert outbox_rows(desk.db) == [] and len(desk.cli("mail", "kept")[1]) == 1


def test_a_folder_import_reads_only_the_headers_of_a_mail_over_the_cap(desk: Desk, tmp_path: Path) -> None:
    folder = tmp_path / "mails"
    folder.mkdir()
    (folder / "1.eml").write_bytes(big_mail(b"kort logbestand", message_id="klein@bakkerij-jansen.nl"))
    (folder / "2.eml").write_bytes(big_mail(os.urandom(100_000), message_id="groot@bakkerij-jansen.nl"))
    code, results = desk.cli("ingest", "email", str(folder))
    assert code == 0, results
    assert [r["outcome"] for r in results] == ["new_ticket", "too_large"]
    assert len(outbox_rows(desk.db)) == 2  # the acknowledgement and the note


def test_an_attachment_under_the_cap_is_stored_once_in_the_raw_mail(desk: Desk) -> None:
    payload = os.urandom(45_000)  # 45 KB: about 61 KB as base64, under the cap
    raw = big_mail(payload)
    code, (result,) = desk.cli("ingest", "email", "-", stdin=raw)
    assert code == 0 and result["outcome"] == "new_ticket", result
    shown = desk.cli("tickets", "show", result["ticket"])[1]
    (message,) = [msg for msg in shown["messages"] if msg["direction"] == "in"]
    assert message["attachments"] == [{"filename": "kassa.log", "content_type": "application/octet-stream",
                                       "size": len(payload), "fetched": True, "error": None}]

    def stored(s: Any) -> tuple[list[int], list[Any]]:
        return (list(s.scalars(select(func.length(m.Message.raw)).where(m.Message.direction == "in"))),
                list(s.scalars(select(m.Attachment.data))))

    assert desk.db.run(stored) == ([len(raw)], [None])  # the raw mail once; the attachment's bytes are in it


def test_over_imap_only_the_headers_of_a_mail_over_the_cap_are_fetched(
        mailbox: tuple[MailServer, str], tmp_path: Path) -> None:  # noqa: F811 - the fixture
    server, user = mailbox
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    try:
        add_account(db, "Bakkerij Jansen", "licentie", contact("Piet Jansen", email=PIET))
        pipeline = IntakePipeline(db, load_preset("mailcampaigns"), now=lambda: MONDAY_10,
                                  reply_guards=mail_reply_guards(5, lambda: MONDAY_10))
        intake = MailIntake(db, pipeline, now=lambda: MONDAY_10, max_message_bytes=LIMIT, acknowledge_max_age=None)
        big = server.append(big_mail(os.urandom(100_000)), user=user)
        small = server.append(big_mail(b"kort", message_id="klein@bakkerij-jansen.nl"), user=user)
        config = EmailConfig(imap_host=server.host, imap_port=server.port, imap_user=user,  # type: ignore[arg-type]
                             imap_password=PASSWORD, imap_security="none")
        imap = ImapIntake(config, intake, db, now=lambda: MONDAY_10, timeout=5.0)
        assert asyncio.run(imap.catch_up()) == 2
        kept = db.run(lambda s: list(s.execute(select(m.KeptMail.reason, func.length(m.KeptMail.raw))).all()))
        assert len(kept) == 1 and "max_message_bytes" in kept[0][0] and kept[0][1] < 1024
        assert db.run(lambda s: s.scalar(select(func.count()).select_from(m.Ticket))) == 1  # the small one
        notes = [row for row in outbox_rows(db) if row.payload.get("purpose") == "mail_too_large"]
        assert len(notes) == 1 and notes[0].recipient == PIET
        assert {big, small} <= set(server.flags(user))  # both still in the mailbox
    finally:
        db.dispose()
