"""Phone calls: `slabot calls import` (CSV and JSON), bad rows reported by line, a re-import adds nothing;
`slabot calls log` (--critical opens the outage line's ticket, R17); callbacks for calls missed during opening hours."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from helpers import add_account, at, contact, outbox_rows, pipeline, preset, run_cli
from pydantic import SecretStr
from sqlalchemy import func, select
from test_telegram_standin import serving

from bot.calls import import_calls, log_call
from bot.config import TelegramConfig
from bot.desk import Desk
from bot.intake import IntakePipeline
from bot.reminders import ReminderService
from bot.staffchat.staffbot import StaffBot
from bot.demo.standins.telegram import TelegramStandIn
from channels.calls import Call, parse_call
from channels.identity import phone_identity
from channels.messages import ChannelName, InboundMessage
from storage import models as m
from storage.database import Database, open_database

CSV = """call_id,time,caller,called,duration,status,agent,notes
c1,2026-11-23T10:15:00,06 34 89 08 78,+31201234567,185,answered,anna,Vraag over factuur november
c2,2026-11-23T11:00:00+01:00,+31 6 11111111,+31201234567,0,no-answer,,
c3,gisteren,+31612345678,+31201234567,60,answered,,tijd onleesbaar
c4,2026-11-23T12:00:00,,+31201234567,60,answered,,geen nummer
"""


def _cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "slabot.db"}"\n', encoding="utf-8")
    code, out, _ = run_cli("--config", str(config), *args)
    return code, out


def test_csv_import_reports_bad_rows_and_a_second_import_adds_nothing(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31634890878"))
    log = tmp_path / "calls.csv"
    log.write_text(CSV, encoding="utf-8")
    code, out = _cli(tmp_path, "calls", "import", str(log))
    assert code == 1
    assert "rejected: calls.csv:4: time 'gisteren' is not ISO 8601" in out
    assert "rejected: calls.csv:5: no caller number" in out
    assert "2 calls: 1 new_ticket, 1 unknown_sender; 2 rejected" in out
    code, again = _cli(tmp_path, "calls", "import", str(log))
    assert "2 calls: 2 duplicate; 2 rejected" in again
    tickets = db.run(lambda s: s.scalars(select(m.Ticket).order_by(m.Ticket.id)).all())
    assert [(t.channel, t.account_id is not None) for t in tickets] == [("phone", True), ("phone", False)]
    texts = db.run(lambda s: s.scalars(select(m.Message.text).where(m.Message.direction == "in")).all())
    assert any("aangenomen door anna" in t and "Vraag over factuur november" in t for t in texts)
    assert any(t.startswith("Gemiste oproep van +31611111111") for t in texts)
    db.dispose()


def test_json_import_and_the_outage_line(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    log = tmp_path / "calls.json"
    log.write_text(json.dumps({"calls": [
        {"CallSid": "CA1", "StartTime": "2026-11-23T03:10:00+01:00", "From": "+31612345678", "To": "+31800123",
         "Duration": "240", "critical": "true", "notes": "Betaalpagina plat"},
    ]}), encoding="utf-8")
    code, out = _cli(tmp_path, "calls", "import", str(log))
    assert code == 0, out
    priority = db.run(lambda s: s.scalar(select(m.Ticket.priority)))
    assert priority == "critical"
    assert db.run(lambda s: s.scalar(select(func.count()).select_from(m.Message))) >= 1
    db.dispose()


def test_a_call_without_id_gets_a_stable_one() -> None:
    row = {"time": "2026-11-23T10:00:00", "caller": "0634890878", "duration": "30"}
    assert parse_call(row).call_id == parse_call(dict(row)).call_id
    assert parse_call(row).call_id != parse_call({**row, "duration": "31"}).call_id


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, _ = _cli(tmp_path, "calls", "import", str(tmp_path / "nope.csv"))
    assert code == 2


# -- slabot calls log; the outage line (R17) and callbacks for missed calls -------------------------------------

NIGHT = "2026-11-23T23:00:00+01:00"
STAFF_CHAT, ONCALL_CHAT, ANNA = -1001234567890, -100777, 501
PIET = "+31612345678"


def _config(tmp_path: Path, preset_name: str) -> Path:
    config = tmp_path / f"{preset_name}.toml"
    config.write_text(f'preset = "{preset_name}"\n[database]\nurl = "sqlite:///{tmp_path / "slabot.db"}"\n',
                      encoding="utf-8")
    return config


async def _staff_chat(db: Database, now: datetime, body: Callable[[StaffBot, TelegramStandIn], Awaitable[None]]
                      ) -> TelegramStandIn:
    """``body`` with the staff bot on the local Bot API stand-in; the test drives its rounds."""
    standin = TelegramStandIn()
    async with serving(standin.app()) as url:
        config = TelegramConfig(token=SecretStr("123:TEST"), staff_chat_id=STAFF_CHAT, staff_user_ids=[ANNA],
                                oncall_chat_id=ONCALL_CHAT, api_base_url=url)
        bot = StaffBot(config, db, now=lambda: now, announce_every=None)
        await bot.start()
        try:
            await body(bot, standin)
        finally:
            await bot.stop()
    return standin


def test_calls_log_critical_opens_a_critical_ticket_that_on_call_is_paged_for(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    add_account(db, "Bakkerij de Vries", "business", contact("Piet", phone=PIET))
    config = _config(tmp_path, "paynl")
    args = ("--config", str(config), "calls", "log", "--from", "06 12 34 56 78", "--critical", "--at", NIGHT,
            "--agent", "anna", "Betaalpagina", "geeft", "500")
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert out.startswith("PN-10001: new_ticket\n") and "pages on-call" in out
    code, again, _ = run_cli(*args)  # the same call logged twice: stored once
    assert code == 0 and "logged already" in again
    (ticket,) = db.run(lambda s: s.scalars(select(m.Ticket)).all())
    assert ticket.priority == "critical" and ticket.channel == "phone" and ticket.plan == "business"
    received = datetime.fromisoformat(NIGHT)
    assert ticket.first_response_due is not None
    assert ticket.first_response_due.replace(tzinfo=timezone.utc) == received + timedelta(hours=24)  # 24/7 clock
    text = db.run(lambda s: s.scalar(select(m.Message.text).where(m.Message.direction == "in")))
    assert text == f"Storingslijn: Telefoongesprek met {PIET}, aangenomen door anna\nBetaalpagina geeft 500"

    async def body(bot: StaffBot, standin: TelegramStandIn) -> None:
        assert await bot.page_oncall() == 1
        (page,) = standin.messages_to(ONCALL_CHAT)
        assert (page.text or "").startswith("🚨 STORING PN-10001 · Bakkerij de Vries")
        assert "Betaalpagina geeft 500" in (page.text or "")
        assert "ack:PN-10001" in str(page.reply_markup)

    asyncio.run(_staff_chat(db, received + timedelta(minutes=1), body))
    db.dispose()


def test_calls_log_refuses_a_bad_number_a_bad_time_and_critical_without_an_outage_line(tmp_path: Path) -> None:
    paynl, mailcampaigns = _config(tmp_path, "paynl"), _config(tmp_path, "mailcampaigns")
    code, _, err = run_cli("--config", str(paynl), "calls", "log", "--from", "12", "--critical", "Storing")
    assert code == 2 and "--from: '12' is not" in err and "+31612345678" in err
    code, _, err = run_cli("--config", str(paynl), "calls", "log", "--from", PIET, "--at", "gisteren", "x")
    assert code == 2 and "--at 'gisteren' is not an ISO 8601" in err
    code, _, err = run_cli("--config", str(mailcampaigns), "calls", "log", "--from", PIET, "--critical", "x")
    assert code == 2 and "no outage line" in err
    assert run_cli("--config", str(paynl), "calls", "log", "--critical", "x")[0] == 2  # no --from at all
    assert not (tmp_path / "slabot.db").exists()  # refused before the database was opened


def test_calls_log_a_missed_call_during_opening_hours_reminds_staff_to_call_back(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    add_account(db, "Bakkerij de Vries", "licentie", contact("Piet", phone=PIET))
    config = str(_config(tmp_path, "mailcampaigns"))
    code, out, _ = run_cli("--config", config, "calls", "log", "--from", PIET, "--missed", "--at", "2026-11-23T10:15")
    assert code == 0 and out.startswith("MC-10001: new_ticket") and "call back" in out
    code, out, _ = run_cli("--config", config, "calls", "log", "--from", PIET, "--missed", "--at", "2026-11-23T18:15")
    assert code == 0 and out.startswith("MC-10001: reply") and "call back" not in out  # after 17:00
    specs = db.run(lambda s: s.scalars(select(m.Reminder.spec).where(m.Reminder.spec.like("callback:%"))).all())
    assert len(specs) == 1
    db.dispose()


def _call(call_id: str, when: datetime, caller: str = PIET, *, missed: bool = True, critical: bool = False) -> Call:
    return parse_call({"call_id": call_id, "time": when.isoformat(), "caller": caller,
                       "duration": "0" if missed else "95", "critical": str(critical)})


def _callbacks(db: Database) -> list[tuple[str, datetime, str]]:
    rows = db.run(lambda s: s.scalars(select(m.Reminder).where(m.Reminder.spec.like("callback:%"))
                                      .order_by(m.Reminder.id)).all())
    return [(r.spec, r.due_at.replace(tzinfo=timezone.utc) if r.due_at.tzinfo is None else r.due_at, r.state)
            for r in rows]


def ticket_answered_at(db: Database, ref: str) -> datetime | None:
    found = db.run(lambda s: s.scalar(select(m.Ticket.first_responded_at).where(m.Ticket.ref == ref)))
    return None if found is None else found.replace(tzinfo=timezone.utc) if found.tzinfo is None else found


def test_a_missed_call_in_the_plans_opening_hours_gets_a_callback_and_others_do_not(db: Database) -> None:
    add_account(db, "Bakkerij de Vries", "licentie", contact("Piet", phone=PIET))
    add_account(db, "Webshop Klein", "professional", contact("Kees", phone="+31687654321"))
    mc, pn = pipeline(db, "mailcampaigns"), pipeline(db, "paynl")
    ten = at(2026, 11, 23, 10)
    first = log_call(mc, _call("c1", ten))
    assert first.callback and first.result.outcome.value == "new_ticket"
    assert _callbacks(db) == [(f"callback:{first.result.message_id}", ten, "planned")]  # due at once
    assert not log_call(mc, _call("c1", ten)).callback  # the same call again: a duplicate, nothing planned
    assert not log_call(mc, _call("c2", at(2026, 11, 23, 17, 15))).callback  # MailCampaigns closes at 17:00
    assert not log_call(mc, _call("c3", at(2026, 11, 28, 11))).callback  # Saturday
    assert not log_call(mc, _call("c4", at(2026, 12, 25, 11))).callback  # Christmas Day
    assert not log_call(mc, _call("c5", ten, "+31611111111", missed=False)).callback  # answered
    assert log_call(mc, _call("c6", ten, "+31622222222")).callback  # an unknown number: the office hours
    # Pay.nl's office is open until 17:30, also for a plan without SLA
    assert log_call(pn, _call("c7", at(2026, 11, 23, 17, 15), "+31687654321")).callback
    # a missed call to the outage line pages on-call instead
    assert not log_call(pn, _call("c8", ten, "+31687654321", critical=True)).callback
    assert len(_callbacks(db)) == 3

    # an answered call from the same number joins the ticket and cancels the callbacks still planned for it
    answered = log_call(mc, _call("c9", at(2026, 11, 23, 10, 30), missed=False))
    assert answered.result.ticket_ref == first.result.ticket_ref
    assert _callbacks(db)[0][2] == "cancelled"


def test_callback_reminders_are_worded_call_back_and_skipped_once_staff_wrote_after_the_call(db: Database) -> None:
    add_account(db, "Bakkerij de Vries", "ondersteuning", contact("Piet", phone=PIET), staff="anna")
    clock = [at(2026, 11, 23, 10)]
    mc = IntakePipeline(db, preset("mailcampaigns"), now=lambda: clock[0])
    ref = log_call(mc, _call("c1", clock[0], missed=False)).result.ticket_ref
    assert ref is not None
    clock[0] = at(2026, 11, 23, 10, 30)
    assert ticket_answered_at(db, ref) == at(2026, 11, 23, 10)  # the answered call was the first response (R8)
    assert not Desk(db, lambda: clock[0]).reply(ref, "We bellen u straks.", "anna").first_response
    # a missed call on a ticket answered before it: staff are still told to call back
    clock[0] = at(2026, 11, 23, 11)
    assert log_call(mc, _call("c2", clock[0])).callback

    async def body(bot: StaffBot, standin: TelegramStandIn) -> None:
        service = ReminderService(db, bot.notify, now=lambda: clock[0] + timedelta(minutes=1))
        assert await service.run_due() == 1
        (ping,) = [s.text for s in standin.messages_to(STAFF_CHAT)]
        assert ping == (f"📞 {ref} (Bakkerij de Vries, ondersteuning): bel {PIET} terug — gemiste oproep op "
                        "maandag 23 november 2026 om 11:00 @anna")
        # another missed call, then a staff reply before the reminder goes out: skipped
        clock[0] = at(2026, 11, 23, 12)
        assert log_call(mc, _call("c3", clock[0])).callback
        await asyncio.to_thread(Desk(db, lambda: clock[0] + timedelta(seconds=30)).reply, ref, "Gebeld.", "anna")
        assert await service.run_due() == 0
        assert len(standin.messages_to(STAFF_CHAT)) == 1

    asyncio.run(_staff_chat(db, clock[0], body))
    assert [state for _, _, state in _callbacks(db)] == ["sent", "skipped"]
    reasons = db.run(lambda s: [e.data["reason"] for e in s.scalars(
        select(m.Event).where(m.Event.kind == "reminder_skipped"))])
    assert reasons == ["staff answered the caller after the missed call"]


def test_a_caller_on_the_outage_line_is_told_by_e_mail_or_whatsapp(db: Database) -> None:
    """R17: the acknowledgement, with the outage-charge warning, reaches the caller where they can read it."""
    add_account(db, "Webshop Noord", "premium", contact("Eva", email="eva@webshop.example", phone="+31611111111"))
    add_account(db, "Webshop Zuid", "premium", contact("Bas", phone="+31622222222"))
    intake = pipeline(db, "paynl", at(2026, 11, 23, 3))
    for number, call_id in (("+31611111111", "c1"), ("+31622222222", "c2")):
        result = intake.ingest(InboundMessage(ChannelName.PHONE, call_id, phone_identity(number),
                                              at(2026, 11, 23, 3), "Betaalpagina geeft 500", critical=True))
        assert result.acknowledgement == "critical"
    by_mail, by_whatsapp = outbox_rows(db)
    assert (by_mail.channel, by_mail.recipient) == ("email", "eva@webshop.example")
    assert by_mail.payload["subject"].endswith("]") and "eigen domein" in by_mail.payload["text"]
    assert (by_whatsapp.channel, by_whatsapp.recipient) == ("whatsapp", "+31622222222")
    assert "eigen domein" in by_whatsapp.payload["text"]


def test_a_second_outage_call_joins_the_open_outage_ticket(db: Database) -> None:
    add_account(db, "Webshop Zuid", "premium", contact("Bas", phone="+31622222222"))
    intake = pipeline(db, "paynl", at(2026, 11, 23, 3))

    def call(call_id: str, hour: int, critical: bool) -> str | None:
        return intake.ingest(InboundMessage(ChannelName.PHONE, call_id, phone_identity("+31622222222"),
                                            at(2026, 11, 23, hour), "Betalingen falen", critical=critical)).ticket_ref

    normal = call("c0", 2, critical=False)  # an ordinary request, still open
    outage = call("c1", 3, critical=True)
    assert outage != normal  # an outage never disappears into the open normal ticket (R17 over R6)
    assert call("c2", 4, critical=True) == outage  # calling again about it: the same outage ticket
    assert len(outbox_rows(db)) == 2  # one acknowledgement each for the request and the outage


# -- the outage line is open to every plan (R5, R17); its acknowledgement promises no time (R7) ------------------

KLEIN = "+31687654321"  # Webshop Klein: Pioneer, chat only
ZON = "+31611223344"  # Kapsalon Zon: Pioneer too


def test_calls_log_critical_from_a_pioneer_number_opens_a_critical_ticket_and_pages_on_call(
        db: Database, db_url: str, tmp_path: Path) -> None:
    add_account(db, "Webshop Klein", "pioneer", contact("Kees", phone=KLEIN, email="kees@klein.example"))
    add_account(db, "Kapsalon Zon", "pioneer", contact("Zita", phone=ZON))
    config = tmp_path / "paynl.toml"
    config.write_text(f'preset = "paynl"\n[database]\nurl = "{db_url}"\n', encoding="utf-8")
    night = "2026-11-29T03:00:00+01:00"  # Sunday night
    code, out, err = run_cli("--config", str(config), "calls", "log", "--from", "06 87 65 43 21", "--critical",
                             "--at", night, "--agent", "eva", "Betalingen", "komen", "niet", "door")
    assert code == 0, out + err
    assert out.startswith("PN-10001: new_ticket\n") and "pages on-call" in out
    code, out, _ = run_cli("--config", str(config), "tickets", "show", "PN-10001", "--json")
    shown = json.loads(out)
    assert (shown["priority"], shown["plan"], shown["state"], shown["channel"]) == ("critical", "pioneer", "open",
                                                                                    "phone")
    assert shown["first_response_due"] is None  # Pioneer has no SLA: no time, but the outage is taken
    assert any("outage line" in r and "every plan" in r for r in shown["reasons"])
    (told,) = [msg for msg in shown["messages"] if msg["direction"] == "out"]
    assert told["purpose"] == "critical" and told["recipient"] == "kees@klein.example"
    assert "gealarmeerd" in told["text"] and "eigen domein" in told["text"]  # on-call paged, the possible charge
    assert "uiterlijk" not in told["text"] and "WhatsApp" not in told["text"]  # no deadline, not turned away

    async def body(bot: StaffBot, standin: TelegramStandIn) -> None:
        assert await bot.page_oncall() == 1
        (page,) = standin.messages_to(ONCALL_CHAT)
        assert (page.text or "").startswith("🚨 STORING PN-10001 · Webshop Klein")

    asyncio.run(_staff_chat(db, datetime.fromisoformat(night) + timedelta(minutes=1), body))

    # an ordinary call from a Pioneer number keeps R5's answer: kept, no ticket, the channels named
    code, out, _ = run_cli("--config", str(config), "calls", "log", "--from", ZON, "--at", "2026-11-30T10:00",
                           "Vraag over mijn factuur")
    assert code == 0 and out.startswith("logged without a ticket (channel_not_in_plan)")
    code, out, _ = run_cli("--config", str(config), "tickets", "list", "--json")
    assert [t["ref"] for t in json.loads(out)] == ["PN-10001"]


def test_an_imported_call_log_flags_a_pioneer_outage_critical_and_it_is_taken(db: Database, tmp_path: Path) -> None:
    add_account(db, "Webshop Klein", "pioneer", contact("Kees", phone=KLEIN), language="en")
    add_account(db, "Kapsalon Zon", "pioneer", contact("Zita", phone=ZON), language="en")
    log = tmp_path / "calls.json"
    log.write_text(json.dumps({"calls": [
        {"CallSid": "CA1", "StartTime": "2026-11-29T03:10:00+01:00", "From": KLEIN, "To": "+31800123",
         "Duration": "240", "critical": "true", "notes": "Payment page down"},
        {"CallSid": "CA2", "StartTime": "2026-11-30T10:10:00+01:00", "From": ZON, "To": "+31800123",
         "Duration": "60", "notes": "A question about the invoice"},
    ]}), encoding="utf-8")
    result = import_calls(pipeline(db, "paynl", at(2026, 11, 30, 11)), log)
    assert result.outcomes == {"new_ticket": 1, "channel_not_in_plan": 1}, result.summary()
    (row, refusal) = outbox_rows(db)
    assert (row.channel, row.recipient) == ("whatsapp", KLEIN)  # no e-mail address: the calling number
    text = row.payload["text"]
    assert "engineer on call" in text and "paged" in text and "own domain" in text and "may be charged" in text
    assert " by " not in text.split("Kind regards")[0]  # no deadline ("will respond by ...")
    assert "does not include support by phone" in refusal.payload["text"]
