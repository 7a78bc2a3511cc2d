"""The outage line on Twilio Voice (R17): ``POST /webhooks/twilio/voice`` over real HTTP on loopback.

Each test starts slabot's ``Application`` (SQLite file, uvicorn on a free loopback port) with only
``[twilio] auth_token`` set (the voice webhook needs nothing more) and, where paging is checked, ``[telegram]``
pointed at the local Bot API stand-in. Calls are posted with httpx and signed as Twilio signs them, over the
configured public URL. Time is a settable clock injected as the application's ``now``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from helpers import MONDAY_10, app_running, free_port, until
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_telegram_standin import serving
from twilio.request_validator import RequestValidator

from bot.app import Application
from bot.config import load_config
from bot.demo.standins.telegram import TelegramStandIn
from storage import models as m
from storage.records import AccountInput, ContactInput, ReminderRecord, TicketRecord
from storage.repositories import AccountRepository, ReminderRepository, TicketRepository
from storage.staffchat import StaffChatRepository

T = TypeVar("T")

TOKEN = "test-auth-token"
SID = "AC0123456789abcdef0123456789abcdef"
PUBLIC = "https://support.example.nl"
VOICE = "/webhooks/twilio/voice"
DIALLED = "/webhooks/twilio/voice/dialled"
OUTAGE_NUMBER = "+31201234567"
PIET = "+31612345678"  # Bakkerij de Vries: paynl business / mailcampaigns licentie
KLEIN = "+31687654321"  # Webshop Klein: paynl pioneer (chat only)
AGENCY = "+31655555555"  # Bureau Web: a third party of Bakkerij de Vries, not authorised
STRANGER = "+31699999999"  # no account
STAFF_CHAT, ONCALL_CHAT, ANNA = -1001234567890, -100777, 501
NIGHT = MONDAY_10.replace(hour=23)  # Monday 23:00 in Amsterdam: the office is closed, the outage line is not


class Clock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at


def call_form(sid: str, caller: str = PIET) -> dict[str, str]:
    """What Twilio posts to the voice URL when a call comes in."""
    return {"CallSid": sid, "AccountSid": SID, "From": caller, "To": OUTAGE_NUMBER, "Caller": caller,
            "Called": OUTAGE_NUMBER, "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}


def sign(params: dict[str, str], url: str = PUBLIC + VOICE) -> str:
    return str(RequestValidator(TOKEN).compute_signature(url, params))


@dataclass
class Line:
    app: Application
    http: httpx.AsyncClient
    clock: Clock
    standin: TelegramStandIn | None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.app._port()}"

    async def call(self, params: dict[str, str], *, signature: str | None = "auto") -> httpx.Response:
        headers = {}
        if signature == "auto":
            signature = sign(params)
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        return await self.http.post(self.base + VOICE, data=params, headers=headers)

    async def db(self, work: Callable[[Session], T]) -> T:
        assert self.app.db is not None
        return await asyncio.to_thread(self.app.db.run, work)

    async def tickets(self) -> list[TicketRecord]:
        return await self.db(lambda s: [TicketRepository(s).get(t.id, with_messages=True)
                                        for t in TicketRepository(s).queue()])

    async def reminders(self, ticket_id: int) -> list[ReminderRecord]:
        return await self.db(lambda s: ReminderRepository(s).for_ticket(ticket_id))

    async def count(self, model: Any) -> int:
        return int(await self.db(lambda s: s.scalar(select(func.count()).select_from(model))))


@asynccontextmanager
async def outage_line(tmp_path: Path, preset: str, *, start: datetime = NIGHT, telegram: bool = False,
                      twilio_extra: str = "", db_url: str | None = None) -> AsyncIterator[Line]:
    """slabot on loopback with the voice webhook (and the staff chat on the stand-in when ``telegram``); on
    ``db_url`` when given, else a SQLite file."""
    standin = TelegramStandIn() if telegram else None
    async with telegram_standin(standin) as telegram_url:
        config = tmp_path / "slabot.toml"
        url = db_url or f"sqlite:///{tmp_path / 'slabot.db'}"
        text = (f'preset = "{preset}"\n[database]\nurl = "{url}"\n'
                f'[http]\nhost = "127.0.0.1"\nport = {free_port()}\npublic_url = "{PUBLIC}"\n'
                f'[twilio]\nauth_token = "{TOKEN}"\n{twilio_extra}')
        if telegram_url:
            text += (f'[telegram]\ntoken = "123:TEST"\nstaff_chat_id = {STAFF_CHAT}\nstaff_user_ids = [{ANNA}]\n'
                     f'oncall_chat_id = {ONCALL_CHAT}\napi_base_url = "{telegram_url}"\n')
        config.write_text(text, encoding="utf-8")
        clock = Clock(start)
        async with app_running(Application(load_config(str(config)), now=clock)) as app:
            assert app.db is not None
            plans = ("business", "pioneer") if preset == "paynl" else ("licentie", "licentie")
            piet = (ContactInput("Piet", phones=(PIET,)),
                    ContactInput("Bureau Web", phones=(AGENCY,), role="third_party", authorised=False))
            for account in (AccountInput("Bakkerij de Vries", plans[0], contacts=piet),
                            AccountInput("Webshop Klein", plans[1], contacts=(ContactInput("Kees", phones=(KLEIN,)),))):
                await asyncio.to_thread(app.db.run, lambda s, a=account: AccountRepository(s).upsert(a, clock()))
            async with httpx.AsyncClient(timeout=10) as http:
                yield Line(app, http, clock, standin)


@asynccontextmanager
async def telegram_standin(standin: TelegramStandIn | None) -> AsyncIterator[str | None]:
    if standin is None:
        yield None
        return
    async with serving(standin.app()) as url:
        yield url


def test_an_unsigned_or_wrongly_signed_call_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    async def main() -> None:
        async with outage_line(tmp_path, "paynl") as line:
            form = call_form("CA-forged")
            refused = [
                await line.call(form, signature=None),
                await line.call(form, signature="bm90IGEgc2lnbmF0dXJl"),
                await line.call(form, signature=RequestValidator("other-token").compute_signature(PUBLIC + VOICE, form)),
                await line.call({**form, "From": STRANGER}, signature=sign(form)),  # tampered
                await line.call(form, signature=sign(form, line.base + VOICE)),  # the URL the app sees, not the public one
                await line.call(form, signature=sign(form, PUBLIC + "/webhooks/twilio/whatsapp")),  # another route
            ]
            assert [r.status_code for r in refused] == [403] * len(refused)
            assert "<Response" not in refused[0].text
            assert await line.count(m.Ticket) == 0 and await line.count(m.Message) == 0
            assert await line.count(m.Event) == 0

    asyncio.run(main())


def test_a_call_to_the_outage_line_opens_one_critical_ticket_on_the_24_7_clock_and_pages_on_call(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with outage_line(tmp_path, "paynl", telegram=True) as line:
            answer = await line.call(call_form("CA100"))
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/xml")
            assert '<Say language="nl-NL">U belt met de storingslijn van Pay.nl.' in answer.text
            assert "dienstdoende engineer wordt nu opgeroepen" in answer.text
            assert "binnen uw eigen domein" in answer.text  # R17: the outage service may be charged
            assert "<Hangup" in answer.text and "<Dial" not in answer.text
            # Twilio posts the same call again, one after the other and twice at once: one ticket
            again = await line.call(call_form("CA100"))
            both = await asyncio.gather(line.call(call_form("CA100")), line.call(call_form("CA100")))
            assert [r.status_code for r in (again, *both)] == [200, 200, 200]
            assert again.text == answer.text
            (ticket,) = await line.tickets()
            assert ticket.priority == "critical" and ticket.channel == "phone" and ticket.state == "open"
            assert ticket.account == "Bakkerij de Vries" and ticket.plan == "business"
            # the calendar clock of the outage line: 24 hours around the clock, not 24 business hours
            assert ticket.first_response_due == NIGHT + timedelta(hours=24)
            (call,) = [msg for msg in ticket.messages if msg.direction == "in"]
            assert call.external_id == "call:CA100" and call.sender == PIET and call.recipient == OUTAGE_NUMBER
            assert call.text.startswith(f"Storingslijn: Gemiste oproep van {PIET}")
            assert await line.reminders(ticket.id) == []  # no callback: on-call is paged instead

            assert line.standin is not None
            standin = line.standin

            def pages() -> list[str]:
                return [s.text or "" for s in standin.messages_to(ONCALL_CHAT) if (s.text or "").startswith("🚨")]

            await until(lambda: len(pages()) == 1, timeout=10, what="the page to on-call")
            assert ticket.ref in pages()[0] and "Bakkerij de Vries" in pages()[0] and PIET in pages()[0]

            # a caller matching no account: an unverified critical ticket, paged all the same
            await line.call(call_form("CA101", STRANGER))
            await until(lambda: len(pages()) == 2, timeout=10, what="the page for the unknown caller")
            stranger = [t for t in await line.tickets() if t.thread_key == STRANGER]
            assert [(t.priority, t.state) for t in stranger] == [("critical", "unverified")]
            assert stranger[0].ref in pages()[1]

    asyncio.run(main())


def test_the_outage_line_puts_the_caller_through_and_refuses_what_it_cannot_take(tmp_path: Path) -> None:
    async def main() -> None:
        async with outage_line(tmp_path, "paynl", twilio_extra='oncall_number = "06 11 22 33 44"\n') as line:
            answer = await line.call(call_form("CA200"))
            assert "U wordt nu doorverbonden." in answer.text
            assert f'<Dial action="{PUBLIC}{DIALLED}" timeout="30">+31611223344</Dial>' in answer.text
            # a withheld number cannot be logged; the caller is still put through to on-call
            hidden = await line.call(call_form("CA201", "anonymous"))
            assert hidden.status_code == 200 and "afgeschermd" in hidden.text and "<Dial" in hidden.text
            # a third party not authorised on the account (R2): no ticket, no page, no one put through
            agency = await line.call(call_form("CA202", AGENCY))
            assert "niet als storing worden aangenomen" in agency.text and "<Dial" not in agency.text
            tickets = await line.tickets()
            assert [(t.thread_key, t.priority) for t in tickets] == [(PIET, "critical")]
            assert await line.count(m.Message) >= 2  # the agency's call is kept for staff, the withheld one is not
            missing = await line.call({"From": PIET, "To": OUTAGE_NUMBER})
            assert missing.status_code == 400 and "CallSid" in missing.text

    asyncio.run(main())


def test_a_pioneer_caller_on_the_outage_line_is_taken_paged_and_warned_of_the_charge(tmp_path: Path,
                                                                                     db_url: str) -> None:
    """R5/R17: the outage line is open to every plan, plans without an SLA included (Pioneer: chat only)."""
    async def main() -> None:
        async with outage_line(tmp_path, "paynl", telegram=True, db_url=db_url,
                               twilio_extra='oncall_number = "06 11 22 33 44"\n') as line:
            answer = await line.call(call_form("CA400", KLEIN))
            assert answer.status_code == 200
            assert "dienstdoende engineer wordt nu opgeroepen" in answer.text
            assert "binnen uw eigen domein" in answer.text and "kosten van de storingsdienst" in answer.text
            assert f'<Dial action="{PUBLIC}{DIALLED}" timeout="30">+31611223344</Dial>' in answer.text
            assert "niet als storing" not in answer.text
            (ticket,) = await line.tickets()
            assert (ticket.priority, ticket.plan, ticket.state, ticket.account) == ("critical", "pioneer", "open",
                                                                                  "Webshop Klein")
            assert ticket.first_response_due is None  # no SLA, so no time; the page is what happens
            (told,) = [msg for msg in ticket.messages if msg.direction == "out"]
            assert (told.purpose, told.channel, told.recipient) == ("critical", "whatsapp", KLEIN)
            assert "gealarmeerd" in told.text and "eigen domein" in told.text and "uiterlijk" not in told.text
            assert line.standin is not None
            standin = line.standin

            def pages() -> list[str]:
                return [s.text or "" for s in standin.messages_to(ONCALL_CHAT) if (s.text or "").startswith("🚨")]

            await until(lambda: len(pages()) == 1, timeout=10, what="the page to on-call")
            assert ticket.ref in pages()[0] and "Webshop Klein" in pages()[0]

    asyncio.run(main())


def test_without_an_outage_line_a_call_is_an_ordinary_missed_call(tmp_path: Path) -> None:
    async def main() -> None:
        async with outage_line(tmp_path, "mailcampaigns", start=MONDAY_10) as line:
            answer = await line.call(call_form("CA300"))
            assert answer.status_code == 200
            assert "U belt met MailCampaigns" in answer.text and "geen storingsdienst" in answer.text
            assert "kosten" not in answer.text and "<Dial" not in answer.text
            (ticket,) = await line.tickets()
            assert ticket.priority == "normal" and ticket.plan == "licentie"
            # during opening hours: staff are reminded to call back, at once
            callbacks = [r for r in await line.reminders(ticket.id) if r.spec.startswith("callback:")]
            assert [(r.due_at, r.state) for r in callbacks] == [(MONDAY_10, "planned")]
            line.clock.at = NIGHT  # outside opening hours: the call waits for the first-response deadline
            await line.call(call_form("CA301", KLEIN))
            klein = [t for t in await line.tickets() if t.thread_key == KLEIN]
            assert [r.spec for r in await line.reminders(klein[0].id) if r.spec.startswith("callback:")] == []

    asyncio.run(main())


def test_a_missed_call_in_opening_hours_reaches_the_staff_chat_at_once(tmp_path: Path) -> None:
    """The callback reminder is due at once: the reminder rounds are woken, not left to their 15-second poll."""
    async def main() -> None:
        async with outage_line(tmp_path, "mailcampaigns", start=MONDAY_10, telegram=True) as line:
            assert line.standin is not None
            standin = line.standin
            await line.call(call_form("CA310"))

            def pinged() -> bool:
                return any((s.text or "").startswith("📞") for s in standin.messages_to(STAFF_CHAT))

            await until(pinged, timeout=5, what="the callback ping, well before the reminders' poll")
            (ping,) = [s.text for s in standin.messages_to(STAFF_CHAT) if (s.text or "").startswith("📞")]
            assert PIET in (ping or "")

    asyncio.run(main())



def dial_form(sid: str, status: str, duration: int | None = None) -> dict[str, str]:
    """What Twilio posts to the ``<Dial>``'s action URL when the dialled leg (on-call's phone) ends."""
    form = {"CallSid": sid, "AccountSid": SID, "From": PIET, "To": OUTAGE_NUMBER, "CallStatus": "in-progress",
            "DialCallSid": "CA-leg-" + sid, "DialCallStatus": status, "Direction": "inbound"}
    if duration is not None:
        form["DialCallDuration"] = str(duration)
    return form


def test_a_call_on_call_answered_is_the_response_and_stops_the_pages(tmp_path: Path, db_url: str) -> None:
    """R8/R17: the ``<Dial>``'s action tells slabot whether on-call answered; an answered call is the ticket's
    response (its time the moment on-call picked up) and on-call's acknowledgement, so the re-paging stops."""
    async def main() -> None:
        async with outage_line(tmp_path, "paynl", telegram=True, db_url=db_url,
                               twilio_extra='oncall_number = "06 11 22 33 44"\n') as line:
            answer = await line.call(call_form("CA500"))
            assert f'<Dial action="{PUBLIC}{DIALLED}" timeout="30">+31611223344</Dial>' in answer.text
            await line.call(call_form("CA501", KLEIN))
            assert line.app.db is not None
            db = line.app.db

            def due(at: datetime) -> list[str]:
                return [p.ref for p in db.run_direct(lambda d: StaffChatRepository(d).pages_due(
                    at, timedelta(minutes=15)))]

            async def dialled(form: dict[str, str], signature: str | None = "auto",
                              content: bytes | None = None) -> httpx.Response:
                headers = {} if signature is None else {
                    "X-Twilio-Signature": sign(form, PUBLIC + DIALLED) if signature == "auto" else signature}
                if content is not None:
                    return await line.http.post(line.base + DIALLED, content=content, headers={
                        **headers, "Content-Type": "application/x-www-form-urlencoded"})
                return await line.http.post(line.base + DIALLED, data=form, headers=headers)

            answered = dial_form("CA500", "completed", 125)
            # refused like every Twilio webhook: unsigned, signed for another route, too big, not UTF-8
            assert (await dialled(answered, signature=None)).status_code == 403
            assert (await dialled(answered, signature=sign(answered))).status_code == 403
            assert (await dialled(answered, content=b"x" * (70 * 1024))).status_code == 413
            assert (await dialled(answered, content=b"CallSid=\xff\xfe")).status_code == 400
            missing = {k: v for k, v in answered.items() if k != "CallSid"}
            assert (await dialled(missing)).status_code == 400
            assert len(await line.tickets()) == 2 and all(t.first_responded_at is None for t in await line.tickets())

            line.clock.at = NIGHT + timedelta(minutes=3)
            ok = await dialled(answered)
            assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/xml")
            assert "<Response" in ok.text and "<Say" not in ok.text and "<Dial" not in ok.text
            again = await dialled(answered)  # Twilio retries: the same response, nothing more
            assert again.status_code == 200
            # on-call did not pick up the second caller: no response, still paged
            assert (await dialled(dial_form("CA501", "no-answer", 0))).status_code == 200
            (piet,) = [t for t in await line.tickets() if t.thread_key == PIET]
            (klein,) = [t for t in await line.tickets() if t.thread_key == KLEIN]
            assert piet.first_responded_at == NIGHT + timedelta(minutes=3) - timedelta(seconds=125)
            assert klein.first_responded_at is None
            (call,) = [msg for msg in piet.messages if msg.direction == "in"]
            assert call.staff == "on-call"
            later = NIGHT + timedelta(hours=1)
            assert due(later) == [klein.ref]  # on-call spoke to Piet: no more pages for his outage
            acks = await line.db(lambda s: s.scalars(select(m.Event).where(
                m.Event.kind == "critical_acknowledged")).all())
            assert [(e.ticket_id, e.actor) for e in acks] == [(piet.id, "on-call")]

    asyncio.run(main())
