"""R8: what counts as staff's response. An answered phone call (``calls log``, ``calls import``) is one and
promises no deadline to the caller; a missed call is not. A staff reply counts when it is queued (``tickets
reply`` says "queued"); when it then fails for good the ticket is unanswered again, its reminders are back and
staff are told in the chat. Through the CLI and its JSON, the outbox and the staff-chat stand-in, on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import MONDAY_10, add_account, contact, email, outbox_rows, pipeline, reminders, run_cli, ticket
from test_outbox import FakeSender
from pydantic import SecretStr
from test_staffbot import ANNA, STAFF_CHAT, answered
from test_telegram_standin import serving

from bot.config import TelegramConfig
from bot.demo.standins.telegram import TelegramStandIn
from bot.desk import Desk
from bot.i18n import Language
from bot.outbox import OutboxDispatcher, apply_status
from bot.staffchat.staffbot import StaffBot
from channels.messages import PermanentSendError
from storage.database import Database, open_database
from storage.repositories import TicketRepository

PIET, PIET_MAIL = "+31612345678", "piet@bakkerij.example"
JOHN, JOHN_MAIL = "+31687654321", "john@bakery.example"
EVA = "eva@webshop.example"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    add_account(database, "Bakkerij de Vries", "licentie", contact("Piet", phone=PIET, email=PIET_MAIL))
    add_account(database, "Bakery Smith", "licentie", contact("John", phone=JOHN, email=JOHN_MAIL, language="en"))
    add_account(database, "Bakkerij Jansen", "ondersteuning", contact("Eva", email=EVA), staff="anna")
    yield database
    database.dispose()


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "slabot.toml"
    path.write_text(f'preset = "mailcampaigns"\n[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return path


def cli(config: Path, *argv: str) -> tuple[int, str]:
    code, out, err = run_cli("--config", str(config), *argv)
    assert code == 0, err
    return code, out


def shown(config: Path, ref: str) -> dict[str, Any]:
    return dict(json.loads(cli(config, "tickets", "show", ref, "--json")[1]))


def ref_of(out: str) -> str:
    return out.split(":", 1)[0]


# -- point 2: an answered call is a response ------------------------------------------------------------


def test_an_answered_call_logged_is_the_first_response_and_promises_no_deadline(db: Database, config: Path) -> None:
    for number, address, promise in ((PIET, PIET_MAIL, "reageert uiterlijk"), (JOHN, JOHN_MAIL, "respond by")):
        _, out = cli(config, "calls", "log", "--from", number, "--agent", "bram", "--duration", "300",
                     "--at", "2026-11-23T10:15", "Vraag", "over", "de", "factuur")
        ref = ref_of(out)
        data = shown(config, ref)
        assert data["first_responded_at"] is not None, data
        record = ticket(db, ref)
        assert record.first_responded_at is not None
        assert {r.state for r in reminders(db, record.id)} <= {"cancelled"}
        (ack,) = [row for row in outbox_rows(db) if row.recipient == address]
        assert ref in ack.payload["text"] and promise not in ack.payload["text"]
        assert ack.payload["purpose"] == "call_answered"
        assert "Telefoongesprek" in data["messages"][0]["text"]


def test_a_missed_call_stays_unanswered(db: Database, config: Path) -> None:
    _, out = cli(config, "calls", "log", "--from", PIET, "--missed", "--at", "2026-11-23T10:15")
    ref = ref_of(out)
    assert shown(config, ref)["first_responded_at"] is None
    assert "planned" in {r.state for r in reminders(db, ticket(db, ref).id)}
    (ack,) = [row for row in outbox_rows(db) if row.recipient == PIET_MAIL]
    assert "Een medewerker reageert uiterlijk" in ack.payload["text"]


def test_an_answered_call_in_an_imported_log_is_a_response_and_a_missed_one_is_not(db: Database, config: Path,
                                                                                    tmp_path: Path) -> None:
    log = tmp_path / "calls.csv"
    log.write_text("call_id,time,caller,duration,status,agent\n"
                   f"a1,2026-11-23T10:15:00,{PIET},185,answered,anna\n"
                   f"a2,2026-11-23T10:20:00,{JOHN},0,no-answer,\n", encoding="utf-8")
    cli(config, "calls", "import", str(log))
    listed = {t["contact"]: t for t in json.loads(cli(config, "tickets", "list", "--json")[1])}
    assert listed["Piet"]["first_responded_at"] is not None
    assert listed["John"]["first_responded_at"] is None


def test_an_answered_call_on_an_open_phone_ticket_answers_it(db: Database, config: Path) -> None:
    _, out = cli(config, "calls", "log", "--from", PIET, "--missed", "--at", "2026-11-23T10:15")
    ref = ref_of(out)
    _, again = cli(config, "calls", "log", "--from", PIET, "--agent", "bram", "--duration", "120",
                   "--at", "2026-11-23T11:00")
    assert again.startswith(f"{ref}: reply")
    assert shown(config, ref)["first_responded_at"] is not None
    assert "planned" not in {r.state for r in reminders(db, ticket(db, ref).id)}


def _mailed(db: Database, external_id: str, sender: str) -> str:
    ref = pipeline(db, "mailcampaigns").ingest(email(external_id, sender, "De koppeling werkt niet")).ticket_ref
    assert ref is not None
    return ref


def test_an_outbound_call_the_contact_answers_is_the_response_and_a_missed_one_is_not(db: Database,
                                                                                      config: Path) -> None:
    ref = _mailed(db, "q-out", PIET_MAIL)
    _, out = cli(config, "calls", "log", "--outbound", "--ticket", ref, "--agent", "bram", "--missed",
                 "--at", "2026-11-23T10:30", "--json")
    missed = json.loads(out)
    assert (missed["ref"], missed["direction"], missed["answered"], missed["response"]) == (
        ref, "outbound", False, False)
    assert missed["first_response"] is False
    assert ticket(db, ref).first_responded_at is None
    assert "planned" in {r.state for r in reminders(db, ticket(db, ref).id)}

    args = ("calls", "log", "--outbound", "--ticket", ref, "--agent", "bram", "--duration", "240",
            "--at", "2026-11-23T11:00", "Koppeling", "samen", "nagelopen")
    _, out = cli(config, *args)
    assert out.startswith(f"{ref}: outbound call answered") and "first response" in out
    record = ticket(db, ref)
    assert record.first_responded_at == MONDAY_10 + timedelta(hours=1)
    assert {r.state for r in reminders(db, record.id)} <= {"cancelled"}
    calls = [msg for msg in shown(config, ref)["messages"] if msg["channel"] == "phone"]
    assert [(c["direction"], c["recipient"], c["staff"]) for c in calls] == [("out", PIET, None), ("out", PIET, "bram")]
    assert "Koppeling samen nagelopen" in calls[1]["text"] and "4:00" in calls[1]["text"]
    assert not [row for row in outbox_rows(db) if row.channel == "phone"]  # logged, never sent
    _, again = cli(config, *args)  # the same call logged twice (same --at): once
    assert "logged already" in again
    assert len([msg for msg in shown(config, ref)["messages"] if msg["channel"] == "phone"]) == 2
    code, _, err = run_cli("--config", str(config), "calls", "log", "--outbound", "--agent", "bram")
    assert code == 2 and "--ticket" in err
    code, _, err = run_cli("--config", str(config), "calls", "log", "--outbound", "--ticket", "MC-99999",
                           "--agent", "bram")
    assert code == 2 and "MC-99999" in err


def test_an_outbound_call_in_an_imported_log_answers_the_contacts_open_ticket(db: Database, config: Path,
                                                                              tmp_path: Path) -> None:
    piet, john = _mailed(db, "q-p", PIET_MAIL), _mailed(db, "q-j", JOHN_MAIL)
    log = tmp_path / "calls.csv"
    log.write_text("call_id,time,caller,called,duration,status,agent,direction\n"
                   f"o1,2026-11-23T11:00:00,+31201234567,06 12 34 56 78,185,completed,anna,outbound-dial\n"
                   f"o2,2026-11-23T11:05:00,+31201234567,{JOHN},0,no-answer,anna,outbound-api\n"
                   f"o3,2026-11-23T11:10:00,+31201234567,+31699999999,60,completed,anna,outbound-dial\n",
                   encoding="utf-8")
    _, out = cli(config, "calls", "import", str(log))
    assert "0 rejected" in out
    listed = {t["ref"]: t for t in json.loads(cli(config, "tickets", "list", "--json")[1])}
    assert set(listed) == {piet, john}  # an outbound call opens no ticket
    assert ticket(db, piet).first_responded_at == MONDAY_10 + timedelta(hours=1)
    assert ticket(db, john).first_responded_at is None
    (call,) = [msg for msg in shown(config, piet)["messages"] if msg["channel"] == "phone"]
    assert (call["direction"], call["recipient"], call["staff"]) == ("out", PIET, "anna")
    _, again = cli(config, "calls", "import", str(log))  # importing again adds nothing
    assert len([msg for msg in shown(config, piet)["messages"] if msg["channel"] == "phone"]) == 1


# -- point 7: a reply counts when queued, and is undone when it fails for good --------------------------


def _open(db: Database) -> str:
    ref = pipeline(db, "mailcampaigns").ingest(email("q1", EVA, "De verzendknop werkt niet")).ticket_ref
    assert ref is not None
    return ref


def test_a_reply_with_the_channel_off_is_said_to_be_queued(db: Database, config: Path) -> None:
    ref = _open(db)
    _, out = cli(config, "tickets", "reply", ref, "We kijken ernaar.", "--staff", "anna")
    assert "queued" in out and "sent to the customer" not in out
    _, out = cli(config, "tickets", "reply", ref, "Nog iets.", "--staff", "anna", "--json")
    data = json.loads(out)
    assert data["first_response"] is False and data["queued"] is True and data["delivery_state"] == "queued"


def _failing_reply(db: Database, config: Path) -> tuple[str, list[tuple[str, Any]]]:
    ref = _open(db)
    planned = [(r.spec, r.due_at) for r in reminders(db, ticket(db, ref).id)]
    assert planned
    Desk(db, lambda: MONDAY_10 + timedelta(minutes=30)).reply(ref, "We kijken ernaar.", "anna")
    assert ticket(db, ref).first_responded_at is not None
    assert {r.state for r in reminders(db, ticket(db, ref).id)} == {"cancelled"}
    return ref, planned


async def _told_after_sending(db: Database, language: Language, chat_now: datetime, send_at: datetime,
                              mail: FakeSender) -> list[str]:
    """The staff chat's first two texts after the outbox sent what was due at ``send_at`` through ``mail``."""
    standin = TelegramStandIn()
    async with serving(standin.app()) as url:
        bot = StaffBot(TelegramConfig(token=SecretStr("123:TEST"), staff_chat_id=STAFF_CHAT, staff_user_ids=[ANNA],
                                      api_base_url=url), db, language=language, now=lambda: chat_now,
                       announce_every=None)
        await bot.start()
        try:
            await bot.announce_new()  # the first round sets the checkpoint
            dispatcher = OutboxDispatcher(db, {"email": mail}, now=lambda: send_at)
            while await dispatcher.run_once():
                pass
            await bot.announce_new()
            return await answered(standin, 2)
        finally:
            await bot.stop()


@pytest.mark.parametrize(("language", "words"), [("nl", "weer onbeantwoord"), ("en", "unanswered again")])
def test_a_reply_that_fails_for_good_makes_the_ticket_unanswered_and_staff_are_told(
        db: Database, config: Path, language: Language, words: str) -> None:
    ref, planned = _failing_reply(db, config)
    mail = FakeSender([None, PermanentSendError("550 no such user")])  # the acknowledgement goes, the reply not

    texts = asyncio.run(_told_after_sending(db, language, MONDAY_10, MONDAY_10 + timedelta(hours=1), mail))
    record = ticket(db, ref)
    assert record.first_responded_at is None
    assert shown(config, ref)["first_responded_at"] is None
    again = sorted((r.spec, r.due_at) for r in reminders(db, record.id) if r.state == "planned")
    assert again == sorted(planned)  # from the original deadline (R16)
    assert texts[0].startswith("❌") and texts[1].startswith(f"⚠️ {ref}") and words in texts[1], texts
    assert ("donderdag 26 november 2026 om 10:00" if language == "nl" else "Thursday 26 November 2026") in texts[1]


def test_a_reply_needing_staff_is_undone_unless_another_response_stands(db: Database, config: Path) -> None:
    ref, _ = _failing_reply(db, config)
    Desk(db, lambda: MONDAY_10 + timedelta(hours=1)).reply(ref, "Tweede antwoord.", "anna")
    first_reply, second = db.run(lambda s: [m.id for m in TicketRepository(s).messages(ticket(db, ref).id)
                                            if m.staff])
    db.run(lambda s: apply_status(s, first_reply, "needs_staff", 63016, MONDAY_10))
    assert ticket(db, ref).first_responded_at is not None  # the second reply still stands
    db.run(lambda s: apply_status(s, second, "failed", 30008, MONDAY_10))
    assert ticket(db, ref).first_responded_at is None
    assert "planned" in {r.state for r in reminders(db, ticket(db, ref).id)}


# -- a failed reply that had answered a follow-up question (R24) -----------------------------------------

TUESDAY_14 = MONDAY_10 + timedelta(days=1, hours=4)


@pytest.mark.parametrize(("language", "words"), [("nl", "weer onbeantwoord"), ("en", "unanswered again")])
def test_a_failed_reply_to_a_follow_up_question_leaves_the_question_waiting_again(
        db: Database, config: Path, language: Language, words: str) -> None:
    ref = _open(db)
    Desk(db, lambda: MONDAY_10 + timedelta(minutes=30)).reply(ref, "We kijken ernaar.", "anna")
    first_at = ticket(db, ref).first_responded_at
    intake = pipeline(db, "mailcampaigns", TUESDAY_14)
    assert intake.ingest(email("q2", EVA, "En nu?", received_at=TUESDAY_14, subject=f"Re: [{ref}] Vraag")
                         ).ticket_ref == ref
    asked = ticket(db, ref)
    assert asked.followup_at == TUESDAY_14 and asked.response_due is not None
    waiting = sorted((r.spec, r.due_at) for r in reminders(db, asked.id) if r.state == "planned")
    assert waiting and all("@" in spec for spec, _ in waiting)
    answered_follow_up = Desk(db, lambda: TUESDAY_14 + timedelta(hours=1)).reply(ref, "Zo dus.", "anna")
    assert answered_follow_up.follow_up is True
    assert ticket(db, ref).followup_at is None
    assert not [r for r in reminders(db, asked.id) if r.state == "planned"]

    mail = FakeSender([None, None, PermanentSendError("550 no such user")])  # the acknowledgement, the first reply
    texts = asyncio.run(_told_after_sending(db, language, TUESDAY_14, TUESDAY_14 + timedelta(hours=2), mail))
    record = ticket(db, ref)
    assert record.followup_at == TUESDAY_14  # the follow-up question waits again (R24)
    assert record.response_due == asked.response_due and record.first_responded_at == first_at
    assert record.responded_at == first_at  # staff last answered with the first reply
    again = sorted((r.spec, r.due_at) for r in reminders(db, record.id) if r.state == "planned")
    assert again == waiting  # its reminders, from its own deadline (R16)
    assert shown(config, ref)["responded_at"] is None
    assert texts[-1].startswith(f"⚠️ {ref}") and words in texts[-1], texts
