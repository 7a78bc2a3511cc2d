"""The staff chat: only staff act, replies reach the customer through the outbox and record the first response,
an update handled once, reminders posted with the assigned staff member; the real python-telegram-bot against
the local Bot API stand-in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import MONDAY_10, add_account, contact, email, free_port, outbox_rows, pipeline, reminders, ticket
from pydantic import SecretStr
from sqlalchemy import select
from test_telegram_standin import serving

from bot.config import TelegramConfig
from bot.reminders import ReminderService
from bot.staffbot import StaffBot, _first_time
from bot.standins.telegram import TelegramStandIn
from storage import models as m
from storage.database import Database, open_database

STAFF_CHAT = -1001234567890
ANNA = 501  # on the staff list
STRANGER = 999  # in the group, not on the staff list
PIET = "piet@bakkerij-jansen.nl"


@pytest.fixture(autouse=True)
def _timedelta_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    add_account(database, "Bakkerij Jansen", "ondersteuning", contact("Piet", email=PIET), staff="anna")
    yield database
    database.dispose()


def open_ticket(db: Database) -> str:
    ref = pipeline(db, "mailcampaigns").ingest(email("q1", PIET, "De verzendknop werkt niet")).ticket_ref
    assert ref is not None
    return ref


@asynccontextmanager
async def staff_chat(db: Database, standin: TelegramStandIn) -> AsyncIterator[StaffBot]:
    async with serving(standin.app()) as url:
        config = TelegramConfig(token=SecretStr("123:TEST"), staff_chat_id=STAFF_CHAT, staff_user_ids=[ANNA],
                                api_base_url=url, team_lead="lotte")
        bot = StaffBot(config, db, now=lambda: MONDAY_10 + timedelta(hours=1), team_lead="lotte")
        await bot.start()
        try:
            yield bot
        finally:
            await bot.stop()


async def answered(standin: TelegramStandIn, count: int, seconds: float = 5.0) -> list[str]:
    for _ in range(int(seconds / 0.02)):
        texts = [s.text for s in standin.messages_to(STAFF_CHAT)]
        if len(texts) >= count:
            return texts
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} messages in the staff chat, got {standin.messages_to(STAFF_CHAT)}")


def run(db: Database, body: Callable[[TelegramStandIn, StaffBot], Awaitable[None]]) -> TelegramStandIn:
    standin = TelegramStandIn()

    async def main() -> None:
        async with staff_chat(db, standin) as bot:
            await body(standin, bot)

    asyncio.run(main())
    return standin


def test_someone_not_on_the_staff_list_is_refused_and_nothing_happens(db: Database,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    ref = open_ticket(db)

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        standin.push_message(STAFF_CHAT, STRANGER, f"/reply {ref} Ik los het op", username="mallory")
        (answer,) = await answered(standin, 1)
        assert "niet op de lijst" in answer and str(STRANGER) in answer

    with caplog.at_level(logging.WARNING):
        run(db, body)
    assert len(outbox_rows(db)) == 1  # only the acknowledgement
    assert ticket(db, ref).first_responded_at is None
    assert any("not on the staff list" in r.getMessage() for r in caplog.records)


def test_queue_and_ticket(db: Database) -> None:
    ref = open_ticket(db)

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        standin.push_message(STAFF_CHAT, ANNA, "/queue", username="anna")
        standin.push_message(STAFF_CHAT, ANNA, f"/ticket@slabot_test_bot {ref.lower()}", username="anna",
                             language_code="en")
        queue, shown = await answered(standin, 2)
        assert ref in queue and "Bakkerij Jansen" in queue and "donderdag 26 november 2026 om 10:00" in queue
        assert shown.startswith(ref) and "first response due Thursday 26 November 2026 at 10:00" in shown
        assert "De verzendknop werkt niet" in shown

    run(db, body)


def test_reply_reaches_the_customer_records_the_first_response_and_stops_the_reminders(db: Database) -> None:
    ref = open_ticket(db)

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        standin.push_message(STAFF_CHAT, ANNA, f"/reply {ref} We kijken ernaar, Piet.", username="anna")
        (answer,) = await answered(standin, 1)
        assert "eerste reactie vastgelegd" in answer

    run(db, body)
    record = ticket(db, ref)
    assert record.first_responded_at is not None
    rows = outbox_rows(db)
    assert len(rows) == 2 and rows[-1].recipient == PIET and rows[-1].payload["text"] == "We kijken ernaar, Piet."
    assert {r.state for r in reminders(db, record.id)} == {"cancelled"}


def test_answering_the_bots_message_about_a_ticket_replies_to_the_customer(db: Database) -> None:
    ref = open_ticket(db)

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        standin.push_message(STAFF_CHAT, ANNA, f"/ticket {ref}", username="anna")
        (shown,) = await answered(standin, 1)
        bot_message = standin.messages_to(STAFF_CHAT)[0]
        standin.push_message(STAFF_CHAT, ANNA, "Opgelost in de nieuwe versie.", username="anna",
                             reply_to=bot_message.message_id)
        await answered(standin, 2)

    run(db, body)
    assert outbox_rows(db)[-1].payload["text"] == "Opgelost in de nieuwe versie."


def test_take_records_who_took_the_ticket(db: Database) -> None:
    ref = open_ticket(db)

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        standin.push_message(STAFF_CHAT, ANNA, f"/take {ref}", username="anna")
        standin.push_message(STAFF_CHAT, ANNA, f"/note {ref} klant belt morgen terug", username="anna")
        taken, noted = await answered(standin, 2)
        assert taken == f"{ref} opgepakt door @anna." and noted == f"Notitie bij {ref} vastgelegd."

    run(db, body)
    actors = db.run(lambda s: s.scalars(select(m.Event.actor).where(m.Event.kind == "taken")).all())
    assert actors == ["anna"]
    notes = db.run(lambda s: [e.data for e in s.scalars(select(m.Event).where(m.Event.kind == "note"))])
    assert notes == [{"text": "klant belt morgen terug"}]


def test_usage_and_unknown_tickets_are_answered_clearly(db: Database) -> None:
    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        standin.push_message(STAFF_CHAT, ANNA, "/reply", username="anna")
        standin.push_message(STAFF_CHAT, ANNA, "/resolve MC-99999", username="anna")
        usage, unknown = await answered(standin, 2)
        assert "/reply REF" in usage and "MC-99999" in unknown

    run(db, body)


def test_an_update_is_handled_once(db: Database) -> None:
    assert db.run_direct(lambda d: _first_time(d, 10)) is True
    assert db.run_direct(lambda d: _first_time(d, 10)) is False
    assert db.run_direct(lambda d: _first_time(d, 9)) is False
    assert db.run_direct(lambda d: _first_time(d, 11)) is True


def test_reminders_are_posted_with_the_staff_member_and_the_breach_escalates(db: Database) -> None:
    ref = open_ticket(db)
    planned = reminders(db, ticket(db, ref).id)

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        now = [planned[-1].due_at + timedelta(minutes=1)]
        service = ReminderService(db, bot.notify, now=lambda: now[0])
        standin.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
        assert await service.run_due() == 0  # rate limited: the reminders wait
        assert await service.run_due() == 3
        texts = await answered(standin, 3)
        assert all(ref in t and "@anna" in t for t in texts)
        assert "verstreken" in texts[-1] and "@lotte" in texts[-1]
        assert await service.run_due() == 0

    run(db, body)


def test_slabot_run_posts_due_reminders_to_the_staff_chat(tmp_path: Path) -> None:
    from bot.app import Application
    from bot.config import load_config

    url = f"sqlite:///{tmp_path / 'run.db'}"
    seeded = open_database(url)
    add_account(seeded, "Bakkerij Jansen", "ondersteuning", contact("Piet", email=PIET), staff="anna")
    ref = open_ticket(seeded)
    last = reminders(seeded, ticket(seeded, ref).id)[-1].due_at
    seeded.dispose()
    standin = TelegramStandIn()

    async def main() -> None:
        async with serving(standin.app()) as api:
            config = tmp_path / "slabot.toml"
            config.write_text(
                f'[database]\nurl = "{url}"\n[http]\nhost = "127.0.0.1"\nport = {free_port()}\n'
                f'[telegram]\ntoken = "123:TEST"\nstaff_chat_id = {STAFF_CHAT}\nstaff_user_ids = [{ANNA}]\n'
                f'team_lead = "lotte"\napi_base_url = "{api}"\n', encoding="utf-8")
            app = Application(load_config(str(config)), now=lambda: last + timedelta(minutes=1))
            stop = asyncio.Event()
            task = asyncio.create_task(app.run(stop))
            try:
                texts = await answered(standin, 3, seconds=15)
                assert all(ref in t for t in texts) and "@lotte" in texts[-1]
                standin.push_message(STAFF_CHAT, ANNA, "/queue", username="anna")
                assert ref in (await answered(standin, 4))[-1]
            finally:
                stop.set()
                await task

    asyncio.run(main())


def test_new_tickets_are_announced_with_buttons_once(db: Database) -> None:
    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        bot.announce_every = 0.05
        await asyncio.sleep(0.2)  # the first round sets the checkpoint: older tickets are not announced
        ref = await asyncio.to_thread(open_ticket, db)
        (text,) = await answered(standin, 1)
        assert text.startswith(f"🆕 {ref}") and "Bakkerij Jansen" in text and "@anna" in text
        assert "De verzendknop werkt niet" in text
        announcement = standin.messages_to(STAFF_CHAT)[0]
        assert "take:" in str(announcement.reply_markup)
        standin.push_callback(STAFF_CHAT, STRANGER, f"take:{ref}", announcement.message_id)
        standin.push_callback(STAFF_CHAT, ANNA, f"take:{ref}", announcement.message_id)
        texts = await answered(standin, 2)
        assert texts[-1] == f"{ref} opgepakt door @{ANNA}."  # a user without a username is named by id
        await asyncio.sleep(0.3)
        assert len([t for t in standin.messages_to(STAFF_CHAT) if (t.text or "").startswith("🆕")]) == 1
        refused = [c for c in standin.answered_callbacks if c.query["from"]["id"] == STRANGER]
        assert len(refused) == 1 and refused[0].show_alert and "niet op de lijst" in (refused[0].text or "")

    run(db, body)


def test_an_incident_pages_on_call_every_15_minutes_until_acknowledged(tmp_path: Path) -> None:
    from helpers import preset

    from bot.intake import IntakePipeline

    db = open_database(f"sqlite:///{tmp_path / 'pn.db'}")
    oncall = -100777
    clock = [MONDAY_10.replace(hour=23)]  # at night: the outage line is open 24/7
    standin = TelegramStandIn()

    async def main() -> None:
        async with serving(standin.app()) as url:
            config = TelegramConfig(token=SecretStr("123:TEST"), staff_chat_id=STAFF_CHAT, staff_user_ids=[ANNA],
                                    oncall_chat_id=oncall, api_base_url=url)
            bot = StaffBot(config, db, now=lambda: clock[0], announce_every=None,  # the test drives the pages
                           pipeline=IntakePipeline(db, preset("paynl"), now=lambda: clock[0]))
            await bot.start()
            try:
                standin.push_message(oncall, ANNA, "/incident 06 34 89 08 78 Betaalpagina geeft 500", username="anna")
                for _ in range(250):
                    if standin.messages_to(oncall):
                        break
                    await asyncio.sleep(0.02)
                (logged,) = [s.text for s in standin.messages_to(oncall)]
                assert "Storing vastgelegd als PN-" in (logged or "")
                assert await bot.page_oncall() == 1
                assert await bot.page_oncall() == 0  # not again within 15 minutes
                clock[0] += timedelta(minutes=14)
                assert await bot.page_oncall() == 0
                clock[0] += timedelta(minutes=1)
                assert await bot.page_oncall() == 1
                pages = [s for s in standin.messages_to(oncall) if (s.text or "").startswith("🚨")]
                assert len(pages) == 2 and "Pagina 2" in (pages[-1].text or "")
                assert "Betaalpagina geeft 500" in (pages[0].text or "")
                standin.push_callback(oncall, ANNA, (pages[-1].reply_markup or {})["inline_keyboard"][0][0][
                    "callback_data"], pages[-1].message_id)
                for _ in range(250):
                    if any("bevestigd" in (s.text or "") for s in standin.messages_to(oncall)):
                        break
                    await asyncio.sleep(0.02)
                clock[0] += timedelta(hours=1)
                assert await bot.page_oncall() == 0  # acknowledged: paging stops
            finally:
                await bot.stop()

    try:
        asyncio.run(main())
        critical = db.run(lambda s: s.scalars(select(m.Ticket).where(m.Ticket.priority == "critical")).all())
        assert len(critical) == 1 and critical[0].channel == "phone"
    finally:
        db.dispose()
