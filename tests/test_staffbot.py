"""The staff chat: only staff act, replies reach the customer through the outbox and record the first response,
an update handled once, reminders posted with the assigned staff member, updates by long polling or on slabot's
own webhook route; the real python-telegram-bot against the local Bot API stand-in, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (MONDAY_10, add_account, app_running, contact, email, free_port, outbox_rows, pipeline, reminders,
                     ticket, until)
from pydantic import SecretStr
from sqlalchemy import select
from starlette.applications import Starlette
from test_telegram_standin import serving

from bot.config import TelegramConfig
from bot.reminders import ReminderService
from bot.staffchat.staffbot import StaffBot
from bot.demo.standins.telegram import TelegramStandIn, post_update_to
from bot.web.telegram import MAX_UPDATE_BYTES, SECRET_HEADER, WEBHOOK_PATH, telegram_webhook_route
from storage import models as m
from storage.database import Database, open_database
from storage.repositories import counter
from storage.staffchat import StaffChatRepository

STAFF_CHAT = -1001234567890
ANNA = 501  # on the staff list
STRANGER = 999  # in the group, not on the staff list
PIET = "piet@bakkerij-jansen.nl"
HOOK_URL = "https://support.example.nl/webhooks/telegram"  # what Telegram is told; the TLS proxy forwards it
SECRET = "s3cret-Hook_42"


@pytest.fixture(autouse=True)
def _timedelta_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A database with Piet's account, on SQLite and on PostgreSQL (``db_url`` in conftest.py)."""
    database = open_database(db_url)
    add_account(database, "Bakkerij Jansen", "ondersteuning", contact("Piet", email=PIET), staff="anna")
    yield database
    database.dispose()


def open_ticket(db: Database) -> str:
    ref = pipeline(db, "mailcampaigns").ingest(email("q1", PIET, "De verzendknop werkt niet")).ticket_ref
    assert ref is not None
    return ref


@asynccontextmanager
async def staff_chat(db: Database, standin: TelegramStandIn, **settings: Any) -> AsyncIterator[StaffBot]:
    """A started staff bot on the stand-in; ``settings`` are more [telegram] keys (webhook_url, ...)."""
    async with serving(standin.app()) as url:
        config = TelegramConfig(token=SecretStr("123:TEST"), staff_chat_id=STAFF_CHAT, staff_user_ids=[ANNA],
                                api_base_url=url, team_lead="lotte", **settings)
        bot = StaffBot(config, db, now=lambda: MONDAY_10 + timedelta(hours=1), team_lead="lotte",
                       webhook_route=telegram_webhook_route)
        await bot.start()
        try:
            yield bot
        finally:
            await bot.stop()


async def answered(standin: TelegramStandIn, count: int, seconds: float = 5.0) -> list[str]:
    for _ in range(int(seconds / 0.02)):
        texts = [s.text or "" for s in standin.messages_to(STAFF_CHAT)]
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
    assert db.run_direct(lambda d: StaffChatRepository(d).first_time(10)) is True
    assert db.run_direct(lambda d: StaffChatRepository(d).first_time(10)) is False
    assert db.run_direct(lambda d: StaffChatRepository(d).first_time(9)) is False
    assert db.run_direct(lambda d: StaffChatRepository(d).first_time(11)) is True


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


def seed(db_url: str) -> tuple[str, datetime]:
    """Piet's account and an open ticket in the database ``slabot run`` will open: its ref and last reminder."""
    seeded = open_database(db_url)
    try:
        add_account(seeded, "Bakkerij Jansen", "ondersteuning", contact("Piet", email=PIET), staff="anna")
        ref = open_ticket(seeded)
        return ref, reminders(seeded, ticket(seeded, ref).id)[-1].due_at
    finally:
        seeded.dispose()


def run_config(tmp_path: Path, db_url: str, api: str, port: int, telegram: str) -> Path:
    """A config file for ``slabot run`` with the staff chat on the stand-in at ``api``; more [telegram] lines."""
    path = tmp_path / "slabot.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[http]\nhost = "127.0.0.1"\nport = {port}\n'
                    f'[telegram]\ntoken = "123:TEST"\nstaff_chat_id = {STAFF_CHAT}\nstaff_user_ids = [{ANNA}]\n'
                    f'api_base_url = "{api}"\n{telegram}', encoding="utf-8")
    return path


def test_slabot_run_posts_due_reminders_to_the_staff_chat(tmp_path: Path, db_url: str) -> None:
    from bot.app import Application
    from bot.config import load_config

    ref, last = seed(db_url)
    standin = TelegramStandIn()

    async def main() -> None:
        async with serving(standin.app()) as api:
            config = run_config(tmp_path, db_url, api, free_port(), 'team_lead = "lotte"\n')
            app = Application(load_config(str(config)), now=lambda: last + timedelta(minutes=1))
            stop = asyncio.Event()
            task = asyncio.create_task(app.run(stop))
            try:
                texts = await answered(standin, 3, seconds=15)
                assert all(ref in t for t in texts) and "@lotte" in texts[-1]
                assert texts[0].startswith(f"⏰ {ref} (Bakkerij Jansen, ondersteuning): 75% van de reactietijd is "
                                           "om; eerste reactie uiterlijk ")
                assert "): nog 1 uur binnen openingstijden; eerste reactie uiterlijk " in texts[1]
                assert texts[0].endswith("@anna") and texts[1].endswith("@anna")
                standin.push_message(STAFF_CHAT, ANNA, "/queue", username="anna")
                assert ref in (await answered(standin, 4))[-1]
            finally:
                stop.set()
                await task

    asyncio.run(main())


def test_telegram_down_at_start_is_tried_again_until_it_is_up(tmp_path: Path, db_url: str) -> None:
    from bot.app import Application
    from bot.config import load_config

    seed(db_url)
    standin = TelegramStandIn(down=True)

    async def main() -> None:
        async with serving(standin.app()) as api:
            config = run_config(tmp_path, db_url, api, free_port(), "")
            app = Application(load_config(str(config)))
            app.staff_retry = (0.1, 0.4)
            async with app_running(app):
                assert app.health.channels["telegram"].state == "down"
                await asyncio.sleep(0.5)  # a few attempts while it is still down
                assert app.health.channels["telegram"].state == "down"
                standin.down = False
                await until(lambda: app.health.channels["telegram"].state == "up", timeout=10)
                standin.push_message(STAFF_CHAT, ANNA, "/help", username="anna")
                assert "/queue" in (await answered(standin, 1))[-1]

    asyncio.run(main())


def test_the_staff_chat_failing_after_a_good_start_shows_in_the_health(tmp_path: Path, db_url: str) -> None:
    from bot.app import Application
    from bot.config import load_config

    seed(db_url)
    standin = TelegramStandIn()

    async def main() -> None:
        async with serving(standin.app()) as api:
            config = run_config(tmp_path, db_url, api, free_port(), "")
            async with app_running(Application(load_config(str(config)), staff_rounds=0.1)) as app:
                assert app.health.channels["telegram"].state == "up"
                await asyncio.sleep(0.3)  # the first round sets the announcement checkpoint
                standin.down = True
                assert app.db is not None
                ref = await asyncio.to_thread(
                    lambda: pipeline(app.db, "mailcampaigns").ingest(email("q2", PIET, "Nog een vraag")).ticket_ref)
                await until(lambda: app.health.channels["telegram"].state == "down", timeout=10)
                assert "Bad Gateway" in (app.health.channels["telegram"].reason or "")
                standin.down = False
                await until(lambda: app.health.channels["telegram"].state == "up", timeout=10)
                assert any((m_.text or "").startswith(f"🆕 {ref}") for m_ in standin.messages_to(STAFF_CHAT))

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


def test_an_incident_pages_on_call_every_15_minutes_until_acknowledged(db_url: str) -> None:
    from helpers import preset

    from bot.intake import IntakePipeline

    db = open_database(db_url)
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


# -- webhook mode ------------------------------------------------------------------------------------


@asynccontextmanager
async def webhook_chat(db: Database, standin: TelegramStandIn) -> AsyncIterator[tuple[StaffBot, str]]:
    """A staff bot in webhook mode with its route served on loopback; yields the bot and the route's URL."""
    async with staff_chat(db, standin, webhook_url=HOOK_URL, webhook_secret=SecretStr(SECRET)) as bot:
        async with serving(Starlette(routes=bot.routes())) as url:
            yield bot, f"{url}{WEBHOOK_PATH}"


def test_webhook_mode_registers_the_webhook_with_its_secret_and_answers_what_telegram_posts(db: Database) -> None:
    ref = open_ticket(db)
    standin = TelegramStandIn()

    async def main() -> None:
        async with webhook_chat(db, standin) as (bot, hook):
            assert standin.webhook is not None
            assert (standin.webhook["url"], standin.webhook["secret_token"]) == (HOOK_URL, SECRET)
            assert standin.webhook["max_connections"] == "1"  # posted one at a time, in update id order
            standin.push_message(STAFF_CHAT, ANNA, "/queue", username="anna")
            standin.push_message(STAFF_CHAT, ANNA, f"/reply {ref} We kijken ernaar.", username="anna")
            answers = await standin.deliver(hook)
            assert [a.status_code for a in answers] == [200, 200] and standin.pending == []
            queue, replied = await answered(standin, 2)
            assert ref in queue and "eerste reactie vastgelegd" in replied
        assert standin.webhook is not None  # left set: Telegram keeps updates for the restart

    asyncio.run(main())
    assert standin.calls["getUpdates"] == 0 and standin.calls["setWebhook"] == 1
    assert ticket(db, ref).first_responded_at is not None
    assert outbox_rows(db)[-1].payload["text"] == "We kijken ernaar."


def test_webhook_refuses_a_wrong_or_missing_secret_and_does_nothing(db: Database,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    ref = open_ticket(db)
    standin = TelegramStandIn()

    async def main() -> None:
        async with webhook_chat(db, standin) as (bot, hook):
            update = standin.push_message(STAFF_CHAT, ANNA, f"/reply {ref} Nep-antwoord", username="anna")
            for secret in ("wrong", None, SECRET + "x", SECRET[:-1], "s3cret-hook_42"):
                assert (await post_update_to(hook, update, secret)).status_code == 403
            async with httpx.AsyncClient() as client:  # a non-ASCII header value is refused the same way
                answer = await client.post(hook, json=update, headers={SECRET_HEADER.encode(): "sécret".encode()})
                assert answer.status_code == 403
            await asyncio.sleep(0.3)
            assert standin.messages_to(STAFF_CHAT) == []
            assert db.run_direct(lambda d: counter(d, "telegram:update")) is None  # not even marked as seen
            # the same update with the right secret, as Telegram posts it, is taken once
            assert [a.status_code for a in await standin.deliver(hook)] == [200]
            await answered(standin, 1)

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert sum("missing or wrong secret" in r.getMessage() for r in caplog.records) == 6
    assert [r.payload["text"] for r in outbox_rows(db)][1:] == ["Nep-antwoord"]


def test_webhook_rejects_bad_json_oversized_bodies_and_waits_while_stopped(db: Database) -> None:
    standin = TelegramStandIn()

    async def main() -> None:
        async with webhook_chat(db, standin) as (bot, hook):
            headers = {SECRET_HEADER: SECRET}
            async with httpx.AsyncClient() as client:
                for body in (b"{not json", b"\xff\xfe", b"[1, 2]", b'{"message": {}}', b'{"update_id": "7"}',
                             b'{"update_id": 7, "message": {"text": "no chat"}}'):
                    answer = await client.post(hook, content=body, headers={**headers,
                                                                            "content-type": "application/json"})
                    assert answer.status_code == 400, body
                big = {"update_id": 1, "padding": "x" * MAX_UPDATE_BYTES}
                assert (await client.post(hook, json=big, headers=headers)).status_code == 413
                assert (await client.post(hook, json=big, headers={SECRET_HEADER: "wrong"})).status_code == 403

                standin.push_message(STAFF_CHAT, ANNA, "/help", username="anna")
                await bot.app.stop()  # the handlers are not running: Telegram is asked to post it again
                assert [a.status_code for a in await standin.deliver(hook)] == [503] and len(standin.pending) == 1
                await bot.app.start()
                assert [a.status_code for a in await standin.deliver(hook)] == [200]
                (shown,) = await answered(standin, 1)
                assert shown.startswith("Opdrachten")

    asyncio.run(main())


def test_polling_deletes_a_webhook_left_from_webhook_mode(db: Database) -> None:
    standin = TelegramStandIn()
    standin.webhook = {"url": HOOK_URL, "secret_token": SECRET}  # slabot ran with webhook_url before

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        assert standin.webhook is None and bot.routes() == []
        standin.push_message(STAFF_CHAT, ANNA, "/queue", username="anna")
        await answered(standin, 1)

    async def main() -> None:
        async with staff_chat(db, standin) as bot:
            await body(standin, bot)

    asyncio.run(main())
    assert standin.calls["deleteWebhook"] >= 1 and standin.calls["setWebhook"] == 0


def test_slabot_run_takes_telegram_updates_on_its_own_http_app(tmp_path: Path, db_url: str) -> None:
    from bot.app import Application
    from bot.config import load_config

    ref, _ = seed(db_url)
    standin = TelegramStandIn()
    port = free_port()

    async def main() -> None:
        async with serving(standin.app()) as api:
            config = run_config(tmp_path, db_url, api, port, f'webhook_url = "{HOOK_URL}"\n')
            loaded = load_config(str(config), environ={"SLABOT_TELEGRAM_WEBHOOK_SECRET": SECRET})
            app = Application(loaded, now=lambda: MONDAY_10 + timedelta(hours=1))
            stop = asyncio.Event()
            task = asyncio.create_task(app.run(stop))
            try:
                await until(app.started.is_set, 15, "slabot to start")
                assert standin.webhook is not None and standin.webhook["secret_token"] == SECRET
                standin.push_message(STAFF_CHAT, ANNA, f"/ticket {ref}", username="anna")
                hook = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
                assert [a.status_code for a in await standin.deliver(hook)] == [200]
                assert (await answered(standin, 1))[0].startswith(ref)
                assert (await post_update_to(hook, {"update_id": 99}, "wrong")).status_code == 403
            finally:
                stop.set()
                await task

    asyncio.run(main())
    assert standin.calls["getUpdates"] == 0


def test_an_update_posted_twice_to_the_webhook_is_handled_once(db: Database) -> None:
    ref = open_ticket(db)
    standin = TelegramStandIn()

    async def main() -> None:
        async with webhook_chat(db, standin) as (bot, hook):
            command = standin.push_message(STAFF_CHAT, ANNA, f"/take {ref}", username="anna")
            await standin.deliver(hook)
            (taken,) = await answered(standin, 1)
            bot_message = standin.messages_to(STAFF_CHAT)[0].message_id
            press = standin.push_callback(STAFF_CHAT, ANNA, f"take:{ref}", bot_message)
            await standin.deliver(hook)
            await answered(standin, 2)
            for again in (command, press):  # Telegram posts an update again when it missed the answer
                assert (await post_update_to(hook, again, SECRET)).status_code == 200
            await asyncio.sleep(0.3)
            assert len(standin.messages_to(STAFF_CHAT)) == 2 and len(standin.answered_callbacks) == 1

    asyncio.run(main())
    assert db.run(lambda s: s.scalars(select(m.Event.actor).where(m.Event.kind == "taken")).all()) == ["anna"] * 2


def test_what_staff_are_told_reaches_the_staff_chat_once(db: Database) -> None:
    """A mail kept aside, a message Twilio refused outside the 24-hour window, a failed send: each in the chat."""
    from bot.mail import MailIntake
    from bot.outbox import apply_status

    ref = open_ticket(db)
    ack = db.run(lambda s: s.scalars(select(m.Message.id).where(m.Message.direction == "out")).one())

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        await bot.announce_new()  # the first round sets the checkpoint: older events are not posted
        kept = MailIntake(db, pipeline(db, "mailcampaigns"), now=lambda: MONDAY_10).ingest_raw(
            b"\x00\x01 not a mail at all", source="imap INBOX uid 7")
        assert kept.outcome == "kept_aside"
        await asyncio.to_thread(db.run, lambda s: apply_status(s, ack, "needs_staff", 63016, MONDAY_10))
        await asyncio.to_thread(db.run, lambda s: apply_status(s, ack, "needs_staff", 63016, MONDAY_10))  # once only
        await bot.announce_new()  # (or the bot's own round, whichever comes first)
        await answered(standin, 2)
        assert await bot.announce_new() == 0
        texts = [s.text or "" for s in standin.messages_to(STAFF_CHAT)]
        assert len(texts) == 2, texts
        assert texts[0].startswith("📥") and "imap INBOX uid 7" in texts[0] and "apart gezet" in texts[0]
        assert texts[1].startswith(f"✋ {ref} (Bakkerij Jansen, Piet)") and PIET in texts[1] and "63016" in texts[1]

    run(db, body)


def test_release_takes_a_ticket_off_the_resolution_clock_where_the_plan_says_so(db: Database) -> None:
    """R13: Pay.nl Business leaves the resolution clock while an IT release is awaited; MailCampaigns keeps it."""
    add_account(db, "Webshop Noord", "business", contact("Eva", email="eva@webshop-noord.nl"))
    pn_ref = pipeline(db, "paynl").ingest(email("q-pn", "eva@webshop-noord.nl", "Betaalpagina geeft 500")).ticket_ref
    assert pn_ref is not None and ticket(db, pn_ref).resolution_due_max is not None
    mc_ref = open_ticket(db)

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        standin.push_message(STAFF_CHAT, ANNA, f"/release {pn_ref}", username="anna")
        (on,) = await answered(standin, 1)
        assert on == f"{pn_ref} wacht op een release: buiten de oplostermijn (R13)."
        assert ticket(db, pn_ref).needs_release and ticket(db, pn_ref).resolution_due_max is None
        standin.push_message(STAFF_CHAT, ANNA, f"/release {pn_ref} uit", username="anna")
        standin.push_message(STAFF_CHAT, ANNA, f"/release {mc_ref}", username="anna", language_code="en")
        _, off, kept = await answered(standin, 3)
        assert off.startswith(f"{pn_ref} wacht niet meer op een release")
        assert not ticket(db, pn_ref).needs_release and ticket(db, pn_ref).resolution_due_max is not None
        assert kept.startswith(f"{mc_ref} waits for a release; the plan keeps its resolution target anyway (by ")
        assert ticket(db, mc_ref).needs_release and ticket(db, mc_ref).resolution_due_max is not None

    run(db, body)
    kinds = db.run(lambda s: s.scalars(select(m.Event.kind).where(m.Event.kind.in_(
        ("needs_release", "release_cleared"))).order_by(m.Event.id)).all())
    assert kinds == ["needs_release", "release_cleared", "needs_release"]
