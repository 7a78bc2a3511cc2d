"""Billing from the Telegram staff chat (R18-R21): /classify, /cause, /quote, /hours, and the staff told about
answered quotes, renewed punch cards and separate invoices, against the local Bot API stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from helpers import MONDAY_10, add_account, at, contact, outbox_rows, pipeline, ticket, whatsapp
from pydantic import SecretStr
from test_telegram_standin import serving

from bot.billing import Billing
from bot.config import TelegramConfig
from bot.intake import IntakePipeline
from bot.staffchat.staffbot import StaffBot
from bot.demo.standins.telegram import TelegramStandIn
from storage.billing import BillingRepository
from storage.database import Database, open_database

STAFF_CHAT, ANNA, STRANGER = -1001, 42, 666
PIET = "+31612345678"
NOW = MONDAY_10 + timedelta(hours=1)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    add_account(database, "Bakkerij Jansen", "licentie", contact("Piet", phone=PIET), staff="anna")
    yield database
    database.dispose()


def intake(db: Database) -> IntakePipeline:
    return pipeline(db, "mailcampaigns", NOW)


def open_ticket(db: Database, text: str = "Kunnen jullie helpen met de opmaak van onze nieuwsbrief?") -> str:
    ref = intake(db).ingest(whatsapp("SM-q1", PIET, text, received_at=MONDAY_10)).ticket_ref
    assert ref is not None
    return ref


def chat(db: Database, body: Callable[[TelegramStandIn, StaffBot], Awaitable[None]],
         now: Callable[[], datetime] = lambda: NOW) -> None:
    standin = TelegramStandIn()

    async def main() -> None:
        async with serving(standin.app()) as url:
            config = TelegramConfig(token=SecretStr("123:TEST"), staff_chat_id=STAFF_CHAT, staff_user_ids=[ANNA],
                                    api_base_url=url)
            bot = StaffBot(config, db, now=now, pipeline=intake(db), announce_every=None)
            await bot.start()
            try:
                await body(standin, bot)
            finally:
                await bot.stop()

    asyncio.run(main())


async def answers(standin: TelegramStandIn, count: int) -> list[str]:
    for _ in range(250):
        texts = [m.text or "" for m in standin.messages_to(STAFF_CHAT)]
        if len(texts) >= count:
            return texts
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} answers, got {standin.messages_to(STAFF_CHAT)}")


def test_quote_agreement_hours_and_the_staff_told(db: Database) -> None:
    ref = open_ticket(db)

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        await bot.announce_new()  # the first round sets the checkpoint
        standin.push_message(STAFF_CHAT, ANNA, f"/quote {ref} 2,5", username="anna")
        (quoted,) = await answers(standin, 1)
        assert "2.50 uur à €\xa0130,00 (ad_hoc) = €\xa0325,00" in quoted and "wacht op akkoord" in quoted
        standin.push_message(STAFF_CHAT, ANNA, f"/hours {ref} 1 begonnen", username="anna")
        assert "niet factureerbaar" in (await answers(standin, 2))[-1]
        await asyncio.to_thread(intake(db).ingest, whatsapp("SM-a1", PIET, "Akkoord", received_at=NOW))
        assert await bot.announce_new() == 1
        assert (await answers(standin, 3))[-1].startswith(f"✅ {ref} (Bakkerij Jansen, licentie)")
        standin.push_message(STAFF_CHAT, ANNA, f"/hours {ref} 8 opmaak gebouwd", username="anna")
        logged = (await answers(standin, 4))[-1]
        assert "gefactureerd" in logged and "direct apart gefactureerd" in logged
        await bot.announce_new()
        told = sorted((await answers(standin, 6))[-2:])
        assert told[0].startswith(f"💶 {ref}")
        # Piet's account has a phone number only: the invoice has no address to go to, and staff hear of it
        assert told[1].startswith("🧾 Factuur 2026-00001 van Bakkerij Jansen is niet verzonden")
        standin.push_message(STAFF_CHAT, ANNA, f"/ticket {ref}", username="anna", language_code="en")
        shown = (await answers(standin, 7))[-1]
        assert "estimate: 2.50 h, €325.00 — agreed" in shown
        assert "service: the request mentions 'opmaak'; help with the layout of mailings is paid service" in shown

    chat(db, body)
    quote_text = next(r for r in outbox_rows(db) if r.payload.get("purpose") == "quote").payload["text"]
    assert "2,5 uur" in quote_text
    record = ticket(db, ref)
    entries = db.run(lambda s: BillingRepository(s).entries(record.id))
    assert [(e.hours, e.status, e.note) for e in entries] == [
        (Decimal("1.00"), "not_agreed", "begonnen"), (Decimal("8.00"), "billed", "opmaak gebouwd")]


def test_classify_and_the_diagnosis_rule_from_the_chat(db: Database) -> None:
    ref = open_ticket(db, "Hoe kan het dat de mailing van gisteren half is aangekomen")

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        standin.push_message(STAFF_CHAT, ANNA, f"/hours {ref} 1.5 diagnose logs bekeken", username="anna")
        assert "wacht op de oorzaak" in (await answers(standin, 1))[-1]
        standin.push_message(STAFF_CHAT, ANNA, f"/cause {ref} outside", username="anna")
        caused = (await answers(standin, 2))[-1]
        assert "oorzaak outside, dus service" in caused and "€\xa0195,00" in caused
        standin.push_message(STAFF_CHAT, ANNA, f"/classify {ref} gratis", username="anna")
        assert "support or service" in (await answers(standin, 3))[-1]
        standin.push_message(STAFF_CHAT, ANNA, f"/classify {ref}", username="anna")
        assert "Gebruik: /classify REF support|service" in (await answers(standin, 4))[-1]
        standin.push_message(STAFF_CHAT, STRANGER, f"/hours {ref} 3", username="mallory")
        assert "niet op de lijst" in (await answers(standin, 5))[-1]

    chat(db, body)
    record = ticket(db, ref)
    assert (record.kind, record.root_cause) == ("service", "outside")
    assert len(db.run(lambda s: BillingRepository(s).entries(record.id))) == 1  # the stranger logged nothing


def test_a_renewed_punch_card_is_announced(db: Database) -> None:
    Billing(db, intake(db).preset, now=lambda: NOW).buy_punch_card("Bakkerij Jansen", "5", "anna")
    ref = open_ticket(db)

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        await bot.announce_new()
        standin.push_message(STAFF_CHAT, ANNA, f"/quote {ref} 6", username="anna")
        assert "(punch_card)" in (await answers(standin, 1))[-1]
        await asyncio.to_thread(intake(db).ingest, whatsapp("SM-a1", PIET, "ja", received_at=NOW))
        standin.push_message(STAFF_CHAT, ANNA, f"/hours {ref} 6", username="anna")
        await answers(standin, 2)
        await bot.announce_new()
        texts = await answers(standin, 4)
        assert any(t.startswith(f"💳 {ref}") and "€\xa0585,00" in t for t in texts)

    chat(db, body)


def test_the_reply_button_asks_for_the_text_and_the_answer_reaches_the_customer(db: Database) -> None:
    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        await bot.announce_new()  # the first round sets the checkpoint
        ref = await asyncio.to_thread(open_ticket, db)
        assert await bot.announce_new() == 1
        announcement = standin.messages_to(STAFF_CHAT)[-1]
        assert f"reply:{ref}" in str(announcement.reply_markup)
        standin.push_callback(STAFF_CHAT, ANNA, f"reply:{ref}", announcement.message_id)
        prompt = (await answers(standin, 2))[-1]
        assert prompt.startswith(f"{ref}: antwoord op dit bericht")
        prompt_id = standin.messages_to(STAFF_CHAT)[-1].message_id
        standin.push_message(STAFF_CHAT, ANNA, "We passen de opmaak vandaag aan.", username="anna", reply_to=prompt_id)
        assert "eerste reactie vastgelegd" in (await answers(standin, 3))[-1]

    chat(db, body)
    assert outbox_rows(db)[-1].payload["text"] == "We passen de opmaak vandaag aan."


def test_the_weekly_summary_is_posted_once_a_week_from_monday_morning(db: Database) -> None:
    clock = [at(2026, 11, 25, 12)]  # a Wednesday: the first start only records the week

    async def body(standin: TelegramStandIn, bot: StaffBot) -> None:
        assert not await bot.post_weekly_report_if_due()
        clock[0] = at(2026, 11, 30, 7, 59)  # Monday, before 08:00
        assert not await bot.post_weekly_report_if_due()
        clock[0] = at(2026, 11, 30, 8, 0)
        assert await bot.post_weekly_report_if_due()
        assert not await bot.post_weekly_report_if_due()  # once
        clock[0] = at(2026, 12, 2, 9)
        assert not await bot.post_weekly_report_if_due()
        clock[0] = at(2026, 12, 7, 10)
        assert await bot.post_weekly_report_if_due()
        assert standin.calls["sendPhoto"] == 2

    chat(db, body, now=lambda: clock[0])
