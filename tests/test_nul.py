"""Text PostgreSQL cannot store: a NUL character in what a customer, Twilio or a PBX sends is removed at the
boundary, the message is stored and its reasons say so; one such message never holds up the ones behind it.

Through the public ways in: a signed WhatsApp webhook and a signed voice webhook over HTTP, WhatsApp
reconciliation, ``slabot ingest email`` (a file and a folder), ``slabot calls import``. On SQLite and on
PostgreSQL (``SLABOT_TEST_PG_URL``), where a NUL in a text column is refused.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import add_account, contact, run_cli
from sqlalchemy import select
from test_voice import call_form, outage_line
from test_whatsapp import ANNE, PIET, Harness, scenario, webhook

from storage import models as m
from storage.database import Database, open_database

NUL = "\x00"
WHATSAPP_FIELDS = ("Body", "ProfileName", "MessageSid", "MediaUrl0", "MediaContentType0", "To")


def inbound(db: Database) -> list[m.Message]:
    def work(s: Any) -> list[m.Message]:
        rows = list(s.scalars(select(m.Message).where(m.Message.direction == "in").order_by(m.Message.id)))
        for row in rows:
            s.expunge(row)
        return rows

    return db.run(work)


def assert_cleaned(row: m.Message) -> None:
    for value in (row.external_id, row.sender, row.sender_name, row.recipient, row.subject, row.text,
                  row.full_text):
        assert NUL not in (value or "")
    assert any("NUL" in reason for reason in row.reasons), row.reasons


def test_a_nul_in_any_signed_whatsapp_field_is_removed_said_and_the_message_stored(tmp_path: Path,
                                                                                   db_url: str) -> None:
    async def body(h: Harness) -> None:
        for i, field in enumerate(WHATSAPP_FIELDS):
            params = webhook(f"SMnul{i}", sender=PIET, body=f"vraag {i}", NumMedia="1",
                             MediaUrl0=f"{h.standin_url}/media/foto{i}.jpg", MediaContentType0="image/jpeg")
            params[field] = params[field][:3] + NUL + params[field][3:]
            answer = await h.post(params)
            assert answer.status_code == 200, (field, answer.text)
        # a message behind them is taken as ever
        assert (await h.post(webhook("SMafter", sender=ANNE))).status_code == 200
        assert h.app.db is not None
        rows = inbound(h.app.db)
        assert len(rows) == len(WHATSAPP_FIELDS) + 1
        for row in rows[:-1]:
            assert_cleaned(row)
        assert [r.external_id for r in rows[:2]] == ["SMnul0", "SMnul1"] and rows[2].external_id == "SMn" + "ul2"
        assert rows[0].text == "vraag 0" and rows[1].sender_name == "Piet"
        # the same webhook again (Twilio's retry) is a duplicate: stored once
        params = webhook("SMnul2", sender=PIET, body="vraag 2")
        params["MessageSid"] = "SMn" + NUL + "ul2"
        assert (await h.post(params)).status_code == 200
        assert len(inbound(h.app.db)) == len(WHATSAPP_FIELDS) + 1

    scenario(tmp_path, body, db_url=db_url)


def test_reconciliation_stores_a_message_with_a_nul_and_the_ones_behind_it(tmp_path: Path, db_url: str) -> None:
    async def body(h: Harness) -> None:
        assert h.app.whatsapp is not None
        h.standin.receive(f"whatsapp:{PIET}", "whatsapp:+31634890878", "kapot" + NUL + "te tekst", sid="SMrec1",
                          when=h.clock())
        h.standin.receive(f"whatsapp:{ANNE}", "whatsapp:+31634890878", "gewone vraag", sid="SMrec2",
                          when=h.clock())
        assert await h.app.whatsapp.reconcile() == 2
        assert h.app.db is not None
        rows = {r.external_id: r for r in inbound(h.app.db)}
        assert set(rows) == {"SMrec1", "SMrec2"}
        assert rows["SMrec1"].text == "kapotte tekst"
        assert_cleaned(rows["SMrec1"])

    scenario(tmp_path, body, db_url=db_url)


def test_a_nul_in_a_signed_voice_webhook_is_removed_and_the_call_logged(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with outage_line(tmp_path, "paynl", db_url=db_url) as line:
            form = call_form("CA" + NUL + "200")
            form["CallerName"] = "Piet" + NUL
            answer = await line.call(form)
            assert answer.status_code == 200, answer.text
            assert (await line.call(call_form("CA201", ANNE))).status_code == 200
            assert line.app.db is not None
            rows = inbound(line.app.db)
            assert [r.external_id for r in rows] == ["call:CA200", "call:CA201"]
            assert_cleaned(rows[0])

    asyncio.run(main())


def mail(message_id: str, subject: str, body: str, sender: str = "Piet <piet@bakkerij.nl>") -> bytes:
    return (f"From: {sender}\r\nTo: support@example.nl\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            ).encode()


def config_for(tmp_path: Path, url: str) -> str:
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    return str(config)


def test_slabot_ingest_email_stores_a_mail_with_a_nul_and_the_mails_behind_it(tmp_path: Path, db_url: str) -> None:
    db = open_database(db_url)
    add_account(db, "Bakkerij", "licentie", contact("Piet", email="piet@bakkerij.nl"))
    config = config_for(tmp_path, db_url)
    one = tmp_path / "one.eml"
    one.write_bytes(mail("nul-1@bakkerij.nl", "Storing" + NUL, "De knop" + NUL + " werkt niet",
                         sender="Pi" + NUL + "et <piet@bakkerij.nl>"))
    code, out, err = run_cli("--config", config, "ingest", "email", str(one), "--json")
    assert code == 0, err
    assert json.loads(out)[0]["outcome"] == "new_ticket"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.eml").write_bytes(mail("nul-2@bakkerij.nl", "Nog een", "met" + NUL + "NUL"))
    (folder / "b.eml").write_bytes(mail("nul-3@bakkerij.nl", "Gewoon", "zonder"))
    code, out, err = run_cli("--config", config, "ingest", "email", str(folder), "--json")
    assert code == 0, err
    assert [r["outcome"] for r in json.loads(out)] == ["new_ticket", "new_ticket"]
    rows = {r.external_id: r for r in inbound(db)}
    assert set(rows) == {"nul-1@bakkerij.nl", "nul-2@bakkerij.nl", "nul-3@bakkerij.nl"}
    assert rows["nul-1@bakkerij.nl"].subject == "Storing" and rows["nul-1@bakkerij.nl"].text == "De knop werkt niet"
    assert_cleaned(rows["nul-1@bakkerij.nl"])
    assert_cleaned(rows["nul-2@bakkerij.nl"])
    db.dispose()


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_slabot_calls_import_stores_a_call_with_a_nul_and_the_calls_behind_it(tmp_path: Path, db_url: str,
                                                                             kind: str) -> None:
    db = open_database(db_url)
    add_account(db, "Bakkerij", "licentie", contact("Piet", phone="+31634890878"))
    rows = [{"call_id": "c" + NUL + "1", "time": "2026-11-23T10:15:00", "caller": "+31634890878",
             "called": "+31201234567", "duration": "185", "status": "answered", "agent": "an" + NUL + "na",
             "notes": "Vraag" + NUL + " over factuur"},
            {"call_id": "c2", "time": "2026-11-23T11:00:00", "caller": "+31611111111", "called": "+31201234567",
             "duration": "0", "status": "no-answer", "agent": "", "notes": ""}]
    log = tmp_path / f"calls.{kind}"
    if kind == "csv":
        log.write_text(",".join(rows[0]) + "\n" + "\n".join(",".join(r.values()) for r in rows) + "\n",
                       encoding="utf-8")
    else:
        log.write_text(json.dumps(rows), encoding="utf-8")
    code, out, err = run_cli("--config", config_for(tmp_path, db_url), "calls", "import", str(log))
    assert code == 0, out + err
    assert "2 calls: 1 new_ticket, 1 unknown_sender" in out
    stored = {r.external_id: r for r in inbound(db)}
    assert set(stored) == {"call:c1", "call:c2"}
    assert "Vraag over factuur" in stored["call:c1"].text and "anna" in stored["call:c1"].text
    assert_cleaned(stored["call:c1"])
    db.dispose()


def test_reconciliation_goes_on_past_a_message_that_cannot_be_stored(tmp_path: Path, db_url: str) -> None:
    async def body(h: Harness) -> None:
        assert h.app.whatsapp is not None
        whatsapp = h.app.whatsapp
        for i, sender in enumerate((PIET, ANNE)):
            h.standin.receive(f"whatsapp:{sender}", "whatsapp:+31634890878", f"vraag {i}", sid=f"SMbad{i}",
                              when=h.clock())
        ingest = whatsapp.ingest

        async def refusing(message: Any) -> Any:  # the first one fails as a broken message would
            if message.external_id == "SMbad0":
                raise ValueError("cannot be stored")
            return await ingest(message)

        whatsapp.ingest = refusing  # type: ignore[method-assign]
        assert await whatsapp.reconcile() == 1
        assert h.app.db is not None
        assert [r.external_id for r in inbound(h.app.db)] == ["SMbad1"]

    scenario(tmp_path, body, db_url=db_url)
