"""The customer's data rights: ``slabot privacy export`` prints everything stored about a person, ``slabot privacy
erase`` leaves no trace of them in any table (every text and JSON column, every binary column searched) while the
anonymous ticket figures stay, both written to the privacy log; ``[privacy] keep_raw_days`` expires raw mail and
media in ``slabot run``. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from helpers import MONDAY_10, add_account, app_running, contact, free_port, pipeline, run_cli, ticket, until
from sqlalchemy import JSON, LargeBinary, String, Text, cast, func, select

from bot.config import load_config
from bot.desk import Desk
from bot.privacy import Privacy
from channels.identity import email_identity, phone_identity
from channels.messages import ChannelName, InboundAttachment, InboundMessage
from storage import models as m
from storage.database import Database, open_database
from storage.webhooks import WebhookRepository, sync_endpoints

PIET_MAIL, PIET_PHONE, PIET = "piet@bakkerij-jansen.nl", "+31612345678", "Piet Jansen"
TRACES = (PIET_MAIL, PIET_PHONE, "0612345678", PIET)


def traces(db: Database, needles: tuple[str, ...] = TRACES) -> list[str]:
    """Every column of every table in which a needle occurs: text and JSON columns as text, binary ones as bytes."""
    def work(s: Any) -> list[str]:
        found = []
        for table in m.Base.metadata.sorted_tables:
            for column in table.columns:
                if isinstance(column.type, (String, Text, JSON)):
                    for needle in needles:
                        hits = s.scalar(select(func.count()).select_from(table).where(
                            func.lower(cast(column, Text)).contains(needle.lower(), autoescape=True)))
                        if hits:
                            found.append(f"{table.name}.{column.name} has {needle!r}")
                elif isinstance(column.type, LargeBinary):
                    for (value,) in s.execute(select(column).where(column.is_not(None))):
                        found += [f"{table.name}.{column.name} has {n!r}" for n in needles
                                  if n.lower().encode() in bytes(value).lower()]
        return found

    return db.run(work)


def seed_person(db: Database) -> dict[str, str]:
    """Piet (e-mail, WhatsApp with a photo, a platform request, a staff reply, a mail kept aside, a webhook body)
    and his colleague Mies, whose data must stay."""
    add_account(db, "Bakkerij Jansen", "licentie", contact(PIET, email=PIET_MAIL, phone=PIET_PHONE),
                contact("Mies Bakker", email="mies@bakkerij-jansen.nl"))
    db.run(lambda s: sync_endpoints(s, {"crm": ["ticket.created", "message.created"]}))
    intake = pipeline(db, "mailcampaigns")
    raw = (f"From: {PIET} <{PIET_MAIL}>\r\nSubject: Nieuwsbrief\r\n\r\nGroet, {PIET}, {PIET_PHONE}\r\n").encode()
    mail = intake.ingest(InboundMessage(
        ChannelName.EMAIL, "<m1@bakkerij-jansen.nl>", email_identity(PIET_MAIL), MONDAY_10,
        f"Onze nieuwsbrief blijft hangen. Groet, {PIET}", subject="Nieuwsbrief", sender_name=PIET, raw=raw,
        attachments=(InboundAttachment("text/plain", "notitie.txt", f"bel {PIET_PHONE}".encode()),)))
    app = intake.ingest(InboundMessage(
        ChannelName.WHATSAPP, "SM-1", phone_identity(PIET_PHONE), MONDAY_10 + timedelta(minutes=5), "Zie foto",
        attachments=(InboundAttachment("image/jpeg", None, b"\xff\xd8 photo of " + PIET.encode()),)))
    platform = intake.ingest(InboundMessage(
        ChannelName.PLATFORM, "crm-1", email_identity(PIET_MAIL), MONDAY_10 + timedelta(minutes=10),
        "Via het platform", raw=json.dumps({"contact": {"email": PIET_MAIL}}).encode()))
    mies = intake.ingest(InboundMessage(ChannelName.EMAIL, "<m2@bakkerij-jansen.nl>", email_identity(
        "mies@bakkerij-jansen.nl"), MONDAY_10, "Vraag van Mies over de factuur", subject="Factuur"))
    assert mail.ticket_ref and app.ticket_ref and platform.ticket_ref and mies.ticket_ref
    Desk(db, now=lambda: MONDAY_10 + timedelta(hours=1)).reply(mail.ticket_ref, f"Beste {PIET}, opgelost.", "anna")

    def kept(s: Any) -> None:
        s.add(m.KeptMail(source="imap", reason="broken", raw=raw, received_at=MONDAY_10))

    db.run(kept)

    def webhook_body(d: Any) -> None:
        delivery = WebhookRepository(d).claim_next("test", MONDAY_10 + timedelta(days=1))
        assert delivery is not None
        WebhookRepository(d).keep_body(delivery.event_id, json.dumps({"ticket": {"contact": PIET}}))

    db.run_direct(webhook_body)
    return {"mail": mail.ticket_ref, "whatsapp": app.ticket_ref, "platform": platform.ticket_ref,
            "mies": mies.ticket_ref}


def figures(config: Path) -> list[tuple[Any, ...]]:
    code, out, err = run_cli("--config", str(config), "tickets", "list", "--json")
    assert code == 0, err
    return sorted((t["ref"], t["account"], t["plan"], t["channel"], t["received_at"], t["first_response_due"],
                   t["first_responded_at"], t["state"]) for t in json.loads(out))


def test_export_then_erase_leaves_no_trace_of_the_person(tmp_path: Path, db_url: str) -> None:
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    db = open_database(db_url)
    try:
        refs = seed_person(db)
        before = figures(config)
        assert traces(db)  # the search finds him before

        code, out, err = run_cli("--config", str(config), "privacy", "export", "--contact", "Piet@Bakkerij-Jansen.nl",
                                 "--staff", "anna")
        assert code == 0, err
        document = json.loads(out)
        assert document["contacts"][0]["name"] == PIET and document["contacts"][0]["phone"] == [PIET_PHONE]
        assert sorted(t["ref"] for t in document["tickets"]) == sorted([refs["mail"], refs["whatsapp"],
                                                                        refs["platform"]])
        messages = [msg for t in document["tickets"] for msg in t["messages"]]
        assert any(msg["text"] == f"Beste {PIET}, opgelost." for msg in messages)
        mail = next(msg for msg in messages if msg["channel"] == "email" and msg["direction"] == "in")
        assert PIET_MAIL.encode() in base64.b64decode(mail["raw"])
        assert base64.b64decode(mail["attachments"][0]["data"]) == f"bel {PIET_PHONE}".encode()
        assert "Mies" not in out

        code, _, err = run_cli("--config", str(config), "privacy", "erase", "--contact", PIET_MAIL)
        assert code == 2 and "--yes" in err  # not on a terminal and not confirmed: nothing erased
        assert traces(db)
        code, out, err = run_cli("--config", str(config), "privacy", "erase", "--contact", PIET_MAIL, "--yes",
                                 "--staff", "anna")
        assert code == 0 and out.startswith("erased: "), err

        assert traces(db) == []
        assert figures(config) == before  # the anonymous ticket figures stay: the SLA report adds up
        assert ticket(db, refs["mies"]).messages[0].text == "Vraag van Mies over de factuur"
        assert traces(db, ("mies@bakkerij-jansen.nl", "Mies Bakker")) != []
        assert ticket(db, refs["mail"]).contact == "[erased 1]"

        code, out, _ = run_cli("--config", str(config), "privacy", "log", "--json")
        log = json.loads(out)
        assert [(e["action"], e["actor"]) for e in log] == [("export", "anna"), ("erase", "anna")]
        assert {e["subject_hash"] for e in log} == {hashlib.sha256(PIET_MAIL.encode()).hexdigest()}
        assert PIET_MAIL not in out and log[1]["summary"]["messages"] >= 7
        code, out, _ = run_cli("--config", str(config), "privacy", "erase", "--contact", PIET_MAIL, "--yes")
        assert code == 0 and "nothing is stored" in out
    finally:
        db.dispose()


def test_a_bad_contact_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "slabot.db"}"\n', encoding="utf-8")
    code, _, err = run_cli("--config", str(config), "privacy", "export", "--contact", "not-a-phone")
    assert code == 2 and "--contact" in err


def test_slabot_run_deletes_raw_mail_and_media_after_keep_raw_days(tmp_path: Path) -> None:
    from bot.app import Application

    db_url = f"sqlite:///{tmp_path / 'slabot.db'}"
    db = open_database(db_url)
    seed_person(db)
    recent = pipeline(db, "mailcampaigns", MONDAY_10 + timedelta(days=2)).ingest(InboundMessage(
        ChannelName.EMAIL, "<m3@bakkerij-jansen.nl>", email_identity(PIET_MAIL), MONDAY_10 + timedelta(days=2),
        "Nog een", raw=b"From: piet\r\n\r\nNog een", attachments=(InboundAttachment("image/png", "a.png", b"png"),)))
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[http]\nport = {free_port()}\n'
                      '[privacy]\nkeep_raw_days = 1\n', encoding="utf-8")

    def stored(s: Any) -> tuple[int, int, int]:
        raws = s.scalar(select(func.count()).select_from(m.Message).where(m.Message.raw.is_not(None)))
        media = s.scalar(select(func.count()).select_from(m.Attachment).join(m.Message).where(
            m.Attachment.data.is_not(None), m.Message.direction == "in"))
        return int(raws), int(media), int(s.scalar(select(func.count()).select_from(m.KeptMail)))

    assert db.run(stored) == (3, 3, 1)

    async def main() -> None:
        app = Application(load_config(config), now=lambda: MONDAY_10 + timedelta(days=2, hours=1))
        async with app_running(app):
            await until(lambda: db.run(stored) == (1, 1, 0), what="old raw mail and media deleted")

    try:
        asyncio.run(main())
        assert ticket(db, recent.ticket_ref or "").messages[0].text == "Nog een"
        log = Privacy(db).log()
        assert [e.action for e in log] == ["expire"] and log[0].summary["raw"] == 2 and log[0].summary["media"] == 2
    finally:
        db.dispose()
