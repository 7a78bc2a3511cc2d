"""R24: a customer's follow-up question on a ticket staff already answered gets a response deadline of its own.

The question comes in by e-mail (``slabot ingest email`` piped) or by the WhatsApp webhook; the ticket goes back
into the queue with a new response deadline on the plan's first-response terms (``response_due`` beside
``first_response_due``), staff are told in the staff chat at once (the Telegram stand-in), R16's reminders are
planned for it, no second acknowledgement goes to the customer, and staff answering again stops them. On SQLite
and PostgreSQL, Dutch and English.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    MONDAY_10,
    add_account,
    at,
    contact,
    email,
    preset,
    reminders,
    run_cli,
    ticket,
)
from pydantic import SecretStr
from starlette.applications import Starlette
from test_dashboard import PASSWORD, Browser, make_dashboard, serve
from test_telegram_standin import serving
from twilio.request_validator import RequestValidator

from bot.config import TelegramConfig
from bot.demo.standins.telegram import TelegramStandIn
from bot.desk import Desk
from bot.i18n import Language
from bot.intake import IntakePipeline
from bot.reminders import ReminderService
from bot.staffchat.staffbot import StaffBot
from bot.web.dashboard.auth import hash_password
from bot.web.twilio import WEBHOOK_PATH, whatsapp_routes
from channels.whatsapp import StatusUpdate
from sla_engine.deadlines import first_response_due
from sla_engine.policy import SlaTerms
from storage.database import Database, open_database
from storage.records import TicketState
from storage.repositories import TicketRepository

TOKEN = "test-auth-token"
PUBLIC = "https://support.example.nl"
PIET_PHONE = "+31612345678"
PIET_MAIL = "piet@bakkerij-jansen.nl"
PIM_MAIL = "pim@pro.example"
SUPPORT = "support@mailcampaigns.example"
STAFF_CHAT = -1001234567890
ANNA = 501
TUESDAY_14 = at(2026, 11, 24, 14)  # the follow-up question
FRIDAY_14 = at(2026, 11, 27, 14)  # 24 business hours later: its response deadline


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """Piet's bakery on Ondersteuning (its campaign specialist anna is named in pings), on SQLite and PostgreSQL."""
    database = open_database(db_url)
    add_account(database, "Bakkerij Jansen", "ondersteuning",
                contact("Piet", email=PIET_MAIL, phone=PIET_PHONE), staff="anna")
    yield database
    database.dispose()


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "slabot.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[email]\nfrom_address = "{SUPPORT}"\n', encoding="utf-8")
    return path


def show(config: Path, ref: str) -> dict[str, Any]:
    code, out, err = run_cli("--config", str(config), "tickets", "show", ref, "--json")
    assert code == 0, err
    return dict(json.loads(out))


def listed(config: Path) -> list[dict[str, Any]]:
    code, out, err = run_cli("--config", str(config), "tickets", "list", "--state", "open", "--json")
    assert code == 0, err
    return list(json.loads(out))


def local(instant: datetime) -> str:
    return instant.astimezone(MONDAY_10.tzinfo).isoformat()


def planned(db: Database, ref: str) -> list[Any]:
    return [r for r in reminders(db, ticket(db, ref).id) if r.state == "planned"]


def purposes_out(data: dict[str, Any]) -> list[str | None]:
    return [m_["purpose"] for m_ in data["messages"] if m_["direction"] == "out"]


# -- WhatsApp: the webhook -----------------------------------------------------------------------------------


class Desk24:
    """The WhatsApp webhook on the intake, the staff desk and the staff chat, on one clock that tests move."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.now = MONDAY_10
        self.pipeline = IntakePipeline(db, preset("mailcampaigns"), now=lambda: self.now)

        async def ingest(message: Any) -> object:
            return await asyncio.to_thread(self.pipeline.ingest, message)

        async def status(update: StatusUpdate) -> None:
            return None

        self.app = Starlette(routes=whatsapp_routes(TOKEN, PUBLIC, ingest, status, lambda: self.now))

    async def message(self, sid: str, text: str) -> None:
        params = {"MessageSid": sid, "SmsMessageSid": sid, "AccountSid": "AC" + "0" * 32,
                  "From": f"whatsapp:{PIET_PHONE}", "To": "whatsapp:+31634890878", "Body": text,
                  "ProfileName": "Piet", "NumMedia": "0"}
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC + WEBHOOK_PATH, params)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=PUBLIC) as http:
            answer = await http.post(WEBHOOK_PATH, data=params, headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200, answer.text

    def reply(self, ref: str, text: str) -> None:
        Desk(self.db, now=lambda: self.now).reply(ref, text, "anna")


@asynccontextmanager
async def staff_chat(db: Database, standin: TelegramStandIn, language: Language,
                     now: Callable[[], datetime]) -> AsyncIterator[StaffBot]:
    """A started staff bot on the stand-in whose rounds the test drives."""
    async with serving(standin.app()) as url:
        config = TelegramConfig(token=SecretStr("123:TEST"), staff_chat_id=STAFF_CHAT, staff_user_ids=[ANNA],
                                api_base_url=url, team_lead="lotte")
        bot = StaffBot(config, db, language=language, now=now, team_lead="lotte", announce_every=None)
        await bot.start()
        try:
            yield bot
        finally:
            await bot.stop()


async def chat_texts(standin: TelegramStandIn, count: int) -> list[str]:
    for _ in range(250):
        texts = [s.text or "" for s in standin.messages_to(STAFF_CHAT)]
        if len(texts) >= count:
            return texts
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} messages in the staff chat, got {standin.messages_to(STAFF_CHAT)}")


WORDS: dict[Language, dict[str, str]] = {
    "nl": {"follow_up": "vervolgvraag", "due": "reactie uiterlijk vrijdag 27 november 2026 om 14:00",
           "recorded": "reactie op de vervolgvraag vastgelegd", "breach": "verstreken"},
    "en": {"follow_up": "follow-up question", "due": "response due Friday 27 November 2026 at 14:00",
           "recorded": "response to the follow-up question recorded", "breach": "has passed"},
}


@pytest.mark.parametrize("language", ["nl", "en"])
def test_a_follow_up_on_whatsapp_gets_a_deadline_staff_are_told_and_a_staff_reply_stops_its_reminders(
        db: Database, config: Path, language: Language) -> None:
    world = Desk24(db)
    standin = TelegramStandIn()
    words = WORDS[language]

    async def main() -> None:
        await world.message("SM1", "De verzendknop werkt niet")
        (ref,) = [t["ref"] for t in listed(config)]
        world.now = MONDAY_10 + timedelta(hours=1)
        world.reply(ref, "We kijken ernaar, Piet.")
        assert planned(db, ref) == []
        async with staff_chat(db, standin, language, lambda: world.now) as bot:
            await bot.announce_new()  # the first round sets the checkpoint: what happened before is not posted
            world.now = TUESDAY_14
            await world.message("SM2", "En kunnen jullie ook naar de bijlage kijken?")
            assert await bot.announce_new() == 1
            (notice,) = await chat_texts(standin, 1)
            assert notice.startswith(f"💬 {ref}") and "Bakkerij Jansen" in notice and "@anna" in notice
            assert words["follow_up"] in notice and words["due"] in notice
            assert "naar de bijlage kijken" in notice and "De verzendknop" not in notice
            assert "reply:" in str(standin.messages_to(STAFF_CHAT)[0].reply_markup)
            assert await bot.announce_new() == 0  # once

            data = show(config, ref)
            assert data["first_response_due"] == local(at(2026, 11, 26, 10))  # stays the first one
            assert data["response_due"] == local(FRIDAY_14)
            assert data["first_responded_at"] == local(MONDAY_10 + timedelta(hours=1))
            assert purposes_out(data) == ["accepted", "reply"]  # no second acknowledgement
            assert "follow_up" in [e["kind"] for e in data["events"]]
            terms = SlaTerms.from_dict(ticket(db, ref).terms or {})
            assert first_response_due(TUESDAY_14, terms) == FRIDAY_14
            due = planned(db, ref)
            assert [r.spec.split("@")[0] for r in due] == ["75%", "1h before", "breach"]
            assert due[-1].due_at == FRIDAY_14 and due[-1].escalate and due[0].due_at > TUESDAY_14

            standin.push_message(STAFF_CHAT, ANNA, f"/reply {ref} Ja, de bijlage is te groot.", username="anna",
                                 language_code=language)
            answer = (await chat_texts(standin, 2))[-1]
            assert words["recorded"] in answer

        data = show(config, ref)
        assert purposes_out(data) == ["accepted", "reply", "reply"]
        assert data["response_due"] == local(FRIDAY_14) and data["followup_at"] is None
        assert planned(db, ref) == []
        late = ReminderService(db, lambda notice: asyncio.sleep(0), now=lambda: FRIDAY_14 + timedelta(days=3))
        assert await late.run_due() == 0

    asyncio.run(main())


@pytest.mark.parametrize("language", ["nl", "en"])
def test_the_follow_ups_reminders_reach_the_staff_chat_and_the_breach_escalates(
        db: Database, language: Language) -> None:
    world = Desk24(db)
    standin = TelegramStandIn()
    words = WORDS[language]

    async def main() -> None:
        await world.message("SM1", "De verzendknop werkt niet")
        ref = ticket(db, "MC-10001").ref
        world.now = MONDAY_10 + timedelta(hours=1)
        world.reply(ref, "We kijken ernaar, Piet.")
        world.now = TUESDAY_14
        await world.message("SM2", "En kunnen jullie ook naar de bijlage kijken?")
        now = [FRIDAY_14 + timedelta(minutes=1)]
        async with staff_chat(db, standin, language, lambda: now[0]) as bot:
            service = ReminderService(db, bot.notify, now=lambda: now[0])
            assert await service.run_due() == 3
            texts = await chat_texts(standin, 3)
        assert all(ref in t and "@anna" in t and words["follow_up"] in t for t in texts), texts
        assert words["breach"] in texts[-1] and "@lotte" in texts[-1]
        assert "14:00" in texts[-1]

    asyncio.run(main())


# -- e-mail: slabot ingest email, piped ------------------------------------------------------------------------


def mail(message_id: str, body: str, *, subject: str = "De verzendknop werkt niet", sender: str = PIET_MAIL,
         **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SUPPORT
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<{message_id}>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return bytes(msg)


def pipe(config: Path, monkeypatch: pytest.MonkeyPatch, raw: bytes) -> str:
    """``slabot ingest email -`` with ``raw`` on stdin, as an MTA's pipe delivers it; the outcome printed."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    code, out, err = run_cli("--config", str(config), "ingest", "email", "-")
    assert code == 0, err
    return out


def cli_reply(config: Path, ref: str, text: str) -> dict[str, Any]:
    code, out, err = run_cli("--config", str(config), "tickets", "reply", ref, text, "--staff", "anna", "--json")
    assert code == 0, err
    return dict(json.loads(out))


def test_a_follow_up_by_mail_gets_a_deadline_without_an_acknowledgement_and_tickets_reply_answers_it(
        db: Database, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "new_ticket" in pipe(config, monkeypatch, mail("q1@bakkerij-jansen.nl", "Hij doet niets."))
    (ref,) = [t["ref"] for t in listed(config)]
    first = show(config, ref)
    assert first["response_due"] == first["first_response_due"] is not None  # the first question's deadline
    assert cli_reply(config, ref, "We kijken ernaar.")["first_response"] is True
    assert planned(db, ref) == []

    # an automatic mail (an out-of-office) on the answered ticket is no question
    assert "reply" in pipe(config, monkeypatch, mail("auto1@bakkerij-jansen.nl", "Ik ben afwezig.",
                                                     subject=f"Re: [{ref}] De verzendknop werkt niet",
                                                     Auto_Submitted="auto-replied"))
    assert show(config, ref)["response_due"] == first["first_response_due"] and planned(db, ref) == []

    question = mail("r1@bakkerij-jansen.nl", "Moet ik de cache legen?", subject=f"Re: [{ref}] De verzendknop",
                    In_Reply_To="<q1@bakkerij-jansen.nl>")
    assert "reply" in pipe(config, monkeypatch, question)
    data = show(config, ref)
    (asked,) = [m_ for m_ in data["messages"] if m_["text"].startswith("Moet ik de cache legen?")]
    received = datetime.fromisoformat(asked["at"])
    terms = SlaTerms.from_dict(ticket(db, ref).terms or {})
    assert data["first_response_due"] == first["first_response_due"]
    expected = first_response_due(received, terms)
    assert expected is not None and data["response_due"] == local(expected)
    assert data["followup_at"] == local(received)
    assert purposes_out(data) == ["accepted", "reply"]  # no second acknowledgement
    due = planned(db, ref)
    assert [r.spec.split("@")[0] for r in due] == ["75%", "1h before", "breach"] and due[-1].due_at == expected
    (row,) = [t for t in listed(config) if t["ref"] == ref]
    assert row["response_due"] == local(expected)

    assert "duplicate" in pipe(config, monkeypatch, question)  # the same mail again changes nothing
    assert show(config, ref)["response_due"] == local(expected) and len(planned(db, ref)) == 3

    answered = cli_reply(config, ref, "Ja, leeg de cache.")
    assert answered["first_response"] is False and answered["follow_up"] is True
    code, out, _ = run_cli("--config", str(config), "tickets", "reply", ref, "Nog een tip.", "--staff", "anna")
    assert code == 0 and "response recorded" not in out  # nothing was waiting for it
    data = show(config, ref)
    assert data["followup_at"] is None and data["response_due"] == local(expected)
    assert {r.state for r in reminders(db, ticket(db, ref).id) if r.due_at >= received} == {"cancelled"}


def test_a_plan_without_a_guaranteed_response_is_queued_and_told_without_a_deadline(
        db: Database, config: Path) -> None:
    """Pay.nl Professional: no guaranteed times; a follow-up still goes back in the queue and staff hear of it."""
    add_account(db, "Pro BV", "professional", contact("Pim", email=PIM_MAIL))
    now = [MONDAY_10]
    intake = IntakePipeline(db, preset("paynl"), now=lambda: now[0])
    ref = intake.ingest(email("p1", PIM_MAIL, "Hoe koppel ik de webhook?")).ticket_ref
    assert ref is not None
    Desk(db, now=lambda: now[0] + timedelta(hours=1)).reply(ref, "Zie de handleiding.", "anna")
    now[0] = TUESDAY_14
    result = intake.ingest(email("p2", PIM_MAIL, "Welke handleiding?", received_at=TUESDAY_14,
                                 subject=f"Re: [{ref}] Vraag"))
    assert result.outcome == "reply"
    record = ticket(db, ref)
    assert record.response_due is None and record.followup_at == TUESDAY_14
    assert planned(db, ref) == []
    standin = TelegramStandIn()

    async def main() -> None:
        async with staff_chat(db, standin, "nl", lambda: now[0]) as bot:
            assert await bot.announce_new() == 0  # the checkpoint
            intake.ingest(email("p3", PIM_MAIL, "Nog iets: de sleutel?", received_at=TUESDAY_14,
                                subject=f"Re: [{ref}] Vraag"))
            assert await bot.announce_new() == 1
            (notice,) = await chat_texts(standin, 1)
            assert notice.startswith(f"💬 {ref}") and "geen reactietermijn" in notice and "de sleutel" in notice

    asyncio.run(main())
    assert ref in [t.ref for t in _queue(db)]


def _queue(db: Database) -> list[Any]:
    return db.run(lambda s: TicketRepository(s).queue(TicketState.OPEN))


def test_the_queue_sorts_by_the_current_response_deadline(db: Database, config: Path) -> None:
    """An answered ticket whose customer asked again ranks by the new deadline, in tickets list and /queue."""
    add_account(db, "Drukkerij", "ondersteuning", contact("Dirk", email="dirk@drukkerij.example"))
    early = IntakePipeline(db, preset("mailcampaigns"), now=lambda: MONDAY_10).ingest(
        email("e1", PIET_MAIL, "Vraag een")).ticket_ref
    later = IntakePipeline(db, preset("mailcampaigns"), now=lambda: MONDAY_10).ingest(
        email("d1", "dirk@drukkerij.example", "Vraag twee", received_at=MONDAY_10 + timedelta(hours=2))).ticket_ref
    assert early is not None and later is not None
    assert [t["ref"] for t in listed(config)] == [early, later]
    Desk(db, now=lambda: MONDAY_10 + timedelta(hours=3)).reply(early, "Antwoord.", "anna")
    IntakePipeline(db, preset("mailcampaigns"), now=lambda: TUESDAY_14).ingest(
        email("e2", PIET_MAIL, "Nog een vraag", received_at=TUESDAY_14, subject=f"Re: [{early}] Vraag"))
    rows = listed(config)
    assert [t["ref"] for t in rows] == [later, early]
    assert rows[1]["response_due"] == local(FRIDAY_14) and rows[1]["first_response_due"] == local(
        at(2026, 11, 26, 10))
    standin = TelegramStandIn()

    async def main() -> None:
        async with staff_chat(db, standin, "nl", lambda: TUESDAY_14):
            standin.push_message(STAFF_CHAT, ANNA, "/queue", username="anna")
            (queue,) = await chat_texts(standin, 1)
        lines = queue.splitlines()
        assert lines[0].startswith(later) and lines[1].startswith(early)
        assert "vrijdag 27 november 2026 om 14:00" in lines[1]

    asyncio.run(main())


def test_the_dashboard_shows_and_sorts_by_the_current_response_deadline(db: Database) -> None:
    add_account(db, "Drukkerij", "ondersteuning", contact("Dirk", email="dirk@drukkerij.example"))
    early = IntakePipeline(db, preset("mailcampaigns"), now=lambda: MONDAY_10).ingest(
        email("e1", PIET_MAIL, "Vraag een")).ticket_ref
    later = IntakePipeline(db, preset("mailcampaigns"), now=lambda: MONDAY_10).ingest(
        email("d1", "dirk@drukkerij.example", "Vraag twee", received_at=MONDAY_10 + timedelta(hours=2))).ticket_ref
    Desk(db, now=lambda: MONDAY_10 + timedelta(hours=3)).reply(str(early), "Antwoord.", "anna")
    IntakePipeline(db, preset("mailcampaigns"), now=lambda: TUESDAY_14).ingest(
        email("e2", PIET_MAIL, "Nog een vraag", received_at=TUESDAY_14, subject=f"Re: [{early}] Vraag"))
    dashboard = make_dashboard(db, hash_password(PASSWORD), "mailcampaigns")

    async def body(b: Browser) -> None:
        await b.login()
        api = (await b.get("/api/queue")).json()
        assert [t["ref"] for t in api["tickets"]] == [later, early]
        row = api["tickets"][1]
        assert row["response_due"] == FRIDAY_14.astimezone(UTC).isoformat()
        assert row["first_response_due"] == at(2026, 11, 26, 10).astimezone(UTC).isoformat()
        assert row["responded_at"] is None and row["due_state"] == "ok"
        page = (await b.get("/")).text
        assert page.index(f'data-ref="{later}"') < page.index(f'data-ref="{early}"')
        assert f'data-due="{FRIDAY_14.astimezone(UTC).isoformat()}"' in page
        shown = (await b.get(f"/tickets/{early}")).text
        assert "vrijdag 27 november 2026 om 14:00" in shown and "Reactie op de vervolgvraag uiterlijk" in shown

    serve(dashboard, body)


def test_a_call_staff_make_to_the_contact_answers_a_waiting_follow_up_question(
        db: Database, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R8 with R24: a call between staff and the contact person is a response, to a follow-up question too."""
    assert "new_ticket" in pipe(config, monkeypatch, mail("c1@bakkerij-jansen.nl", "Hij doet niets."))
    (ref,) = [t["ref"] for t in listed(config)]
    assert cli_reply(config, ref, "We kijken ernaar.")["first_response"] is True
    question = mail("c2@bakkerij-jansen.nl", "Moet ik de cache legen?", subject=f"Re: [{ref}] De verzendknop",
                    In_Reply_To="<c1@bakkerij-jansen.nl>")
    assert "reply" in pipe(config, monkeypatch, question)
    asked = show(config, ref)
    assert asked["followup_at"] is not None and len(planned(db, ref)) == 3

    called = (datetime.now(UTC) + timedelta(minutes=1)).isoformat(timespec="seconds")
    code, out, err = run_cli("--config", str(config), "calls", "log", "--outbound", "--ticket", ref, "--agent", "anna",
                             "--duration", "120", "--at", called, "Cache", "samen", "geleegd", "--json")
    assert code == 0, err
    assert json.loads(out)["response"] is True
    data = show(config, ref)
    assert data["followup_at"] is None and data["response_due"] == asked["response_due"]
    assert planned(db, ref) == []  # the follow-up question's reminders stop
