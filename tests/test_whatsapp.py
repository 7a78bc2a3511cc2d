"""WhatsApp through Twilio, end to end over real HTTP on loopback.

Each test starts slabot's ``Application`` (SQLite file, uvicorn on a free
loopback port, the outbox dispatcher every 50 ms) with ``[twilio]`` pointed at
``TwilioStandIn``, a local stand-in of Twilio's REST API served by uvicorn in
the same event loop. Webhooks are posted with httpx and signed exactly as
Twilio signs them (``RequestValidator.compute_signature`` over the configured
public URL ``https://support.example.nl``). Time is a settable clock injected
as the application's ``now``; it starts on Monday 23 November 2026, 10:00 in
Amsterdam. Plain pytest functions run their scenario with ``asyncio.run``.

``slabot run`` without credentials is covered in test_app.py.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from twilio.request_validator import RequestValidator

from bot import cli
from bot.app import Application
from bot.web.server import QuietServer
from bot.config import load_config
from bot.desk import Desk
from bot.demo.standins.twilio import TwilioStandIn
from storage import models as m
from storage.records import AccountInput, ContactInput, TicketRecord
from storage.repositories import AccountRepository, TicketRepository

from helpers import MONDAY_10, app_running, free_port, table_locked, until

T = TypeVar("T")

TOKEN = "test-auth-token"
SID = "AC0123456789abcdef0123456789abcdef"
PUBLIC = "https://support.example.nl"
WEBHOOK = "/webhooks/twilio/whatsapp"
STATUS = "/webhooks/twilio/status"
OUR_NUMBER = "whatsapp:+31634890878"
PIET = "+31612345678"  # contact person of Bakkerij de Vries (plan licentie)
ANNE = "+31687654321"  # contact person of Fietsenmaker Jansen (plan licentie)
# the SPEC's worked example: received Monday 10:00, 24 business hours -> Thursday 10:00
DEADLINE_TEXT = "uiterlijk donderdag 26 november 2026 om 10:00"


class Clock:
    """The application's ``now``: fixed until a test moves it."""

    def __init__(self, start: datetime = MONDAY_10) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


class CountingStandIn(TwilioStandIn):
    """The stand-in, also counting how often the message list was read (reconciliation)."""

    lists: int = 0

    async def list(self, request: Request) -> Response:
        self.lists += 1
        return await super().list(request)


def sign(params: dict[str, str], url: str = PUBLIC + WEBHOOK) -> str:
    return str(RequestValidator(TOKEN).compute_signature(url, params))


def webhook(sid: str, sender: str = PIET, body: str = "De verzendknop in de editor werkt niet", **extra: str
            ) -> dict[str, str]:
    return {"MessageSid": sid, "SmsMessageSid": sid, "AccountSid": SID, "From": f"whatsapp:{sender}",
            "To": OUR_NUMBER, "Body": body, "ProfileName": "Piet", "NumMedia": "0", **extra}


def bound_port(server: uvicorn.Server) -> int:
    for listener in server.servers:
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    raise AssertionError("server has no socket")


@dataclass
class Harness:
    app: Application
    standin: CountingStandIn
    standin_url: str
    clock: Clock
    http: httpx.AsyncClient
    config_path: Path
    standin_server: QuietServer
    standin_task: asyncio.Task[None]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.app._port()}"

    async def post(self, params: dict[str, str], path: str = WEBHOOK, *, signature: str | None = "auto",
                   headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        sent = dict(headers or {})
        if signature == "auto":
            signature = sign(params, PUBLIC + path)
        if signature is not None:
            sent["X-Twilio-Signature"] = signature
        return await self.http.post(self.base + path, data=params, headers=sent, **kwargs)

    async def status(self, sid: str, status: str, **extra: str) -> httpx.Response:
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": SID, "MessageStatus": status,
                  "From": OUR_NUMBER, "To": f"whatsapp:{PIET}", **extra}
        return await self.post(params, STATUS)

    async def db(self, work: Callable[[Session], T]) -> T:
        assert self.app.db is not None
        return await asyncio.to_thread(self.app.db.run, work)

    async def ticket(self, ref: str) -> TicketRecord:
        found = await self.db(lambda s: TicketRepository(s).by_ref(ref, with_messages=True))
        assert found is not None, ref
        return found

    async def tickets(self) -> list[TicketRecord]:
        return await self.db(lambda s: TicketRepository(s).queue())

    async def count(self, model: Any, *where: Any) -> int:
        return int(await self.db(lambda s: s.scalar(select(func.count()).select_from(model).where(*where))))

    async def outbox(self, message_id: int) -> m.Outbox:
        def work(s: Session) -> m.Outbox:
            row = s.scalar(select(m.Outbox).where(m.Outbox.message_id == message_id))
            assert row is not None
            s.expunge(row)
            return row

        return await self.db(work)

    async def events(self, kind: str, message_id: int) -> int:
        return await self.count(m.Event, m.Event.kind == kind, m.Event.message_id == message_id)

    async def reply(self, ref: str, text: str) -> int:
        assert self.app.db is not None
        desk = Desk(self.app.db, now=self.clock)
        result = await asyncio.to_thread(desk.reply, ref, text, "anna")
        assert result.message_id is not None
        return result.message_id


async def settle(seconds: float = 0.4) -> None:
    """Let the dispatcher run several rounds (it runs every 50 ms)."""
    await asyncio.sleep(seconds)


async def serve(app: Any, port: int = 0) -> tuple[QuietServer, asyncio.Task[None]]:
    server = QuietServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise AssertionError("server did not start")
        await asyncio.sleep(0.01)
    return server, task


async def stop_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await task


@asynccontextmanager
async def running(tmp_path: Path, *, templates: dict[str, str] | None = None,
                  db_url: str | None = None, twilio_extra: str = "") -> AsyncIterator[Harness]:
    """Stand-in and slabot on loopback, two known contacts; stopped in reverse order."""
    standin = CountingStandIn()
    st_server, st_task = await serve(standin.app())
    standin_url = f"http://127.0.0.1:{bound_port(st_server)}"
    template_line = ""
    if templates:
        template_line = "templates = { " + ", ".join(f'{k} = "{v}"' for k, v in templates.items()) + " }\n"
    config = tmp_path / "slabot.toml"
    config.write_text(
        f'preset = "mailcampaigns"\n'
        f'[database]\nurl = "{db_url or "sqlite:///" + str(tmp_path / "slabot.db")}"\n'
        f'[http]\nhost = "127.0.0.1"\nport = {free_port()}\npublic_url = "{PUBLIC}"\n'
        f'[twilio]\naccount_sid = "{SID}"\nauth_token = "{TOKEN}"\nwhatsapp_from = "{OUR_NUMBER}"\n'
        f'api_base_url = "{standin_url}"\n{template_line}{twilio_extra}',
        encoding="utf-8",
    )
    clock = Clock()
    standin.now = clock
    app = Application(load_config(str(config)), now=clock, dispatch_interval=0.05)
    try:
        async with app_running(app):
            accounts = (
                AccountInput("Bakkerij de Vries", "licentie", contacts=(ContactInput("Piet", phones=(PIET,)),)),
                AccountInput("Fietsenmaker Jansen", "licentie", contacts=(ContactInput("Anne", phones=(ANNE,)),)),
            )
            assert app.db is not None
            for account in accounts:
                await asyncio.to_thread(app.db.run, lambda s, a=account: AccountRepository(s).upsert(a, clock()))
            async with httpx.AsyncClient(timeout=10) as http:
                yield Harness(app, standin, standin_url, clock, http, config, st_server, st_task)
    finally:
        if not st_task.done():
            await stop_server(st_server, st_task)


def scenario(tmp_path: Path, body: Callable[[Harness], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        async with running(tmp_path, **options) as h:
            await body(h)

    asyncio.run(main())


async def new_ticket(h: Harness, sid: str = "SM1", sender: str = PIET) -> TicketRecord:
    """A signed message from a known contact; returns its ticket once the acknowledgement went out."""
    answer = await h.post(webhook(sid, sender))
    assert answer.status_code == 200, answer.text
    tickets = [t for t in await h.tickets() if t.thread_key == sender]
    assert len(tickets) == 1
    ticket = await h.ticket(tickets[0].ref)

    async def sent() -> bool:
        out = [msg for msg in (await h.ticket(ticket.ref)).messages if msg.direction == "out"]
        return bool(out) and out[0].delivery_state == "sent"

    await until(sent, what="the acknowledgement to be sent")
    return await h.ticket(ticket.ref)


def outbound(ticket: TicketRecord) -> list[Any]:
    return [msg for msg in ticket.messages if msg.direction == "out"]


# -- 1: a signed message becomes a ticket and an acknowledgement ---------------------------------------


def test_signed_message_opens_ticket_and_acknowledgement_reaches_twilio(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        answer = await h.post(webhook("SM1"))
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/xml")
        assert "<Response></Response>" in answer.text
        await until(lambda: len(h.standin.sent) == 1, what="the acknowledgement at the stand-in")

        ack = h.standin.sent[0]
        assert ack["to"] == f"whatsapp:{PIET}"
        assert ack["from"] == OUR_NUMBER
        assert ack["status_callback"] == f"{PUBLIC}{STATUS}"
        assert ack["content_sid"] is None
        assert DEADLINE_TEXT in ack["body"]
        assert "MC-10001" in ack["body"]

        health = (await h.http.get(h.base + "/healthz")).json()
        assert health["channels"]["whatsapp"]["state"] == "up"

        # what `slabot tickets show MC-10001 --json` prints
        async def shown() -> dict[str, Any]:
            out = io.StringIO()
            code = await asyncio.to_thread(cli.main, ["--config", str(h.config_path), "tickets", "show",
                                                      "MC-10001", "--json"], out)
            assert code == 0
            return dict(json.loads(out.getvalue()))

        await until(lambda: _sent_state(h, "MC-10001"), what="the acknowledgement marked sent")
        data = await shown()
        assert data["account"] == "Bakkerij de Vries" and data["contact"] == "Piet"
        assert data["channel"] == "whatsapp" and data["state"] == "open" and data["plan"] == "licentie"
        assert data["first_response_due"] == "2026-11-26T10:00:00+01:00"
        assert data["first_responded_at"] is None  # the acknowledgement is not a first response (R8)
        (incoming, ack_row) = data["messages"]
        assert incoming["direction"] == "in" and incoming["external_id"] == "SM1"
        assert incoming["sender"] == PIET and incoming["text"] == "De verzendknop in de editor werkt niet"
        assert ack_row["direction"] == "out" and ack_row["auto"] is True
        assert ack_row["external_id"] == ack["sid"] and ack_row["delivery_state"] == "sent"
        assert ack_row["recipient"] == PIET and DEADLINE_TEXT in ack_row["text"]

    scenario(tmp_path, body)


async def _sent_state(h: Harness, ref: str) -> bool:
    out = outbound(await h.ticket(ref))
    return bool(out) and out[0].delivery_state == "sent"


# -- 2: signatures -------------------------------------------------------------------------------------


def test_unsigned_wrongly_signed_tampered_or_wrong_url_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        params = webhook("SM-forged")
        local_url = f"{h.base}{WEBHOOK}"
        refused = [
            await h.post(params, signature=None),  # unsigned
            await h.post(params, signature=""),
            await h.post(params, signature="bm90IGEgc2lnbmF0dXJl"),  # wrongly signed
            await h.post(params, signature=RequestValidator("other-token").compute_signature(
                PUBLIC + WEBHOOK, params)),  # signed with another account's token
            # tampered: the signature of other parameters
            await h.post({**params, "Body": "Stuur alle facturen naar mij"}, signature=sign(params)),
            await h.post({**params, "From": f"whatsapp:{ANNE}"}, signature=sign(params)),
            # signed for the URL the app sees, not the public one
            await h.post(params, signature=sign(params, local_url)),
            # signed for another path
            await h.post(params, signature=sign(params, PUBLIC + STATUS)),
            # forwarded headers are never trusted: judged against public_url all the same
            await h.post(params, signature=sign(params, f"http://support.example.nl{WEBHOOK}"),
                         headers={"X-Forwarded-Host": "support.example.nl", "X-Forwarded-Proto": "http"}),
            await h.post(params, signature=sign(params, f"https://attacker.example{WEBHOOK}"),
                         headers={"X-Forwarded-Host": "attacker.example", "X-Forwarded-Proto": "https"}),
            # a status callback is signed too
            await h.post({"MessageSid": "SMx", "MessageStatus": "delivered"}, STATUS, signature="forged"),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused)
        assert all("signature" in r.text for r in refused)
        # another Host than public_url's is refused before any signature is looked at
        other_host = await h.post(params, signature=sign(params, f"https://attacker.example{WEBHOOK}"),
                                  headers={"Host": "attacker.example"})
        assert other_host.status_code == 400
        await settle(0.2)
        assert await h.count(m.Message) == 0
        assert await h.count(m.Ticket) == 0
        assert h.standin.sent == [] and h.standin.requests == 0

        # the same request correctly signed for the public URL is taken, forwarded headers or not
        accepted = await h.post(params, headers={"X-Forwarded-Host": "attacker.example"})
        assert accepted.status_code == 200
        assert await h.count(m.Message, m.Message.direction == "in") == 1

    scenario(tmp_path, body)


# -- 3: size and required fields -------------------------------------------------------------------------


def test_oversized_or_incomplete_webhook_is_refused_with_a_clear_answer(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        big = webhook("SM-big", body="x" * 70_000)
        answer = await h.post(big)
        assert answer.status_code == 413
        assert "larger than 65536 bytes" in answer.text

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"Body=" + b"y" * 8192 + b"&"

        streamed = await h.http.post(h.base + WEBHOOK, content=chunks(),
                                     headers={"Content-Type": "application/x-www-form-urlencoded",
                                              "X-Twilio-Signature": "irrelevant"})
        assert streamed.status_code == 413  # no Content-Length: counted while reading

        long_text = await h.post(webhook("SM-long", body="z" * 5000))  # under 64 KB, over WhatsApp's limit
        assert long_text.status_code == 413 and "Body" in long_text.text

        no_from = {k: v for k, v in webhook("SM-nofrom").items() if k != "From"}
        answer = await h.post(no_from)
        assert answer.status_code == 400 and "From" in answer.text

        no_sid = {k: v for k, v in webhook("SM-nosid").items() if k not in ("MessageSid", "SmsMessageSid")}
        answer = await h.post(no_sid)
        assert answer.status_code == 400 and "MessageSid" in answer.text

        bad_from = await h.post(webhook("SM-badfrom", sender="not-a-number"))
        assert bad_from.status_code == 400 and "From" in bad_from.text

        await settle(0.2)
        assert await h.count(m.Message) == 0
        assert await h.count(m.Ticket) == 0
        assert h.standin.requests == 0

    scenario(tmp_path, body)


# -- 4: duplicates ------------------------------------------------------------------------------------------


def test_same_message_sid_twice_and_ten_at_once_is_one_ticket_and_one_acknowledgement(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        first = await h.post(webhook("SM-twice"))
        second = await h.post(webhook("SM-twice"))
        assert (first.status_code, second.status_code) == (200, 200)

        together = await asyncio.gather(*(h.post(webhook("SM-ten", sender=ANNE)) for _ in range(10)))
        assert [r.status_code for r in together] == [200] * 10

        await until(lambda: len(h.standin.sent) == 2, what="two acknowledgements")
        await settle()
        assert sorted(r["to"] for r in h.standin.sent) == sorted([f"whatsapp:{PIET}", f"whatsapp:{ANNE}"])
        assert h.standin.requests == 2
        assert await h.count(m.Ticket) == 2
        for sid in ("SM-twice", "SM-ten"):
            assert await h.count(m.Message, m.Message.external_id == sid, m.Message.direction == "in") == 1
        assert await h.count(m.Message, m.Message.direction == "out") == 2
        assert await h.count(m.Outbox) == 2

        # Twilio redelivering an old webhook later still changes nothing
        assert (await h.post(webhook("SM-twice"))).status_code == 200
        await settle(0.2)
        assert len(h.standin.sent) == 2 and await h.count(m.Message) == 4

    scenario(tmp_path, body)


# -- 5: status callbacks ---------------------------------------------------------------------------------------


def test_status_callbacks_out_of_order_duplicated_or_unknown_only_move_forward(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        ticket = await new_ticket(h)
        ack = outbound(ticket)[0]
        sid = h.standin.sent[0]["sid"]
        assert ack.external_id == sid and ack.delivery_state == "sent"

        async def state() -> str:
            return outbound(await h.ticket(ticket.ref))[0].delivery_state

        steps = [("delivered", "delivered"), ("sent", "delivered"), ("delivered", "delivered"),
                 ("queued", "delivered"), ("read", "read"), ("delivered", "read"), ("sent", "read"),
                 ("read", "read")]
        for status, expected in steps:
            answer = await h.status(sid, status)
            assert 200 <= answer.status_code < 300, (status, answer.status_code, answer.text)
            assert await state() == expected, status

        unknown = await h.status("SM00000000000000000000000000000000", "delivered")
        assert 200 <= unknown.status_code < 300
        unknown_failed = await h.status("SMdoesnotexist", "failed", ErrorCode="30008")
        assert 200 <= unknown_failed.status_code < 300
        assert await state() == "read"
        assert await h.count(m.Message) == 2  # nothing was created for the unknown sids

    scenario(tmp_path, body)


# -- 6: the 24-hour window -----------------------------------------------------------------------------------


def test_staff_reply_after_24_hours_without_template_goes_to_staff_not_to_twilio(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        ticket = await new_ticket(h)
        h.clock.advance(hours=25)
        message_id = await h.reply(ticket.ref, "We hebben het probleem in de editor opgelost.")

        async def done() -> bool:
            return (await h.outbox(message_id)).state != "pending"

        await until(done, what="the reply to be handled")
        await settle()
        row = await h.outbox(message_id)
        assert row.state == "needs_staff" and row.attempts == 1
        assert "24-hour window" in (row.last_error or "")
        assert [r["to"] for r in h.standin.sent] == [f"whatsapp:{PIET}"]  # the acknowledgement only
        assert h.standin.requests == 1
        reply = [msg for msg in outbound(await h.ticket(ticket.ref)) if msg.id == message_id][0]
        assert reply.delivery_state == "needs_staff"
        assert await h.events("message_needs_staff", message_id) == 1

    scenario(tmp_path, body)


def test_staff_reply_after_24_hours_with_template_sends_the_template(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        ticket = await new_ticket(h)
        h.clock.advance(hours=25)
        # a free-form send would now fail at Twilio with 63016: only the template may go
        h.standin.window_closed.add(PIET)
        text = "We hebben het probleem in de editor opgelost."
        message_id = await h.reply(ticket.ref, text)
        await until(lambda: len(h.standin.sent) == 2, what="the template send")
        await settle()
        template = h.standin.sent[1]
        assert template["content_sid"] == "HX123"
        assert json.loads(template["content_variables"]) == {"1": ticket.ref, "2": text}
        assert template["body"] == ""  # no Body parameter
        assert template["to"] == f"whatsapp:{PIET}"
        assert template["status_callback"] == f"{PUBLIC}{STATUS}"
        assert h.standin.requests == 2
        row = await h.outbox(message_id)
        assert row.state == "sent"

        # inside the window a staff reply is free-form
        assert (await h.post(webhook("SM-again", body="Dank, werkt weer"))).status_code == 200
        h.standin.window_closed.clear()
        message_id = await h.reply(ticket.ref, "Fijn om te horen!")
        await until(lambda: len(h.standin.sent) == 3, what="the free-form reply")
        assert h.standin.sent[2]["body"] == "Fijn om te horen!" and h.standin.sent[2]["content_sid"] is None

    scenario(tmp_path, body, templates={"default": "HX123"})


# -- 7: 63016 -------------------------------------------------------------------------------------------------


def test_63016_from_the_api_needs_staff_once_without_retries(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        h.standin.window_closed.add(PIET)  # Twilio knows better than our clock
        assert (await h.post(webhook("SM1"))).status_code == 200
        (ticket,) = await h.tickets()
        ack = outbound(await h.ticket(ticket.ref))[0]

        async def handled() -> bool:
            return (await h.outbox(ack.id)).state != "pending"

        await until(handled, what="the acknowledgement to be handled")
        await settle()
        h.clock.advance(hours=2)  # far past any backoff
        await settle()
        row = await h.outbox(ack.id)
        assert row.state == "needs_staff" and row.attempts == 1 and "63016" in (row.last_error or "")
        assert h.standin.requests == 1 and h.standin.sent == []
        assert outbound(await h.ticket(ticket.ref))[0].delivery_state == "needs_staff"
        assert await h.events("message_needs_staff", ack.id) == 1

    scenario(tmp_path, body)


def test_63016_in_a_status_callback_needs_staff_once(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        ticket = await new_ticket(h)
        ack = outbound(ticket)[0]
        sid = h.standin.sent[0]["sid"]
        for _ in range(2):  # Twilio may call back twice
            answer = await h.status(sid, "undelivered", ErrorCode="63016")
            assert 200 <= answer.status_code < 300
        assert outbound(await h.ticket(ticket.ref))[0].delivery_state == "needs_staff"
        assert await h.events("message_needs_staff", ack.id) == 1
        await settle()
        assert h.standin.requests == 1  # nothing is re-sent

    scenario(tmp_path, body)


# -- 8: Twilio failing, then back ---------------------------------------------------------------------------------


def test_twilio_500_then_201_sends_exactly_once_after_the_backoff(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        h.standin.fail_next(500)
        assert (await h.post(webhook("SM1"))).status_code == 200
        (ticket,) = await h.tickets()
        ack = outbound(await h.ticket(ticket.ref))[0]
        await until(lambda: h.standin.requests == 1, what="the first attempt")

        async def retried_later() -> bool:
            row = await h.outbox(ack.id)
            return row.state == "pending" and row.attempts == 1

        await until(retried_later, what="the row back in pending")
        await settle()
        assert h.standin.requests == 1 and h.standin.sent == []  # waits for its backoff
        row = await h.outbox(ack.id)
        assert "500" in (row.last_error or "")
        h.clock.advance(minutes=2)
        await until(lambda: len(h.standin.sent) == 1, what="the retry")
        await settle()
        assert h.standin.requests == 2 and len(h.standin.sent) == 1
        row = await h.outbox(ack.id)
        assert row.state == "sent" and row.attempts == 2
        sent = outbound(await h.ticket(ticket.ref))[0]
        assert sent.delivery_state == "sent" and sent.external_id == h.standin.sent[0]["sid"]

    scenario(tmp_path, body)


async def sent_once(h: Harness, outbox_message: int) -> None:
    """The row is sent, with one request to Twilio: the first attempts did not reach it."""
    await until(lambda: len(h.standin.sent) == 1, what="the send")
    await settle()
    assert len(h.standin.sent) == 1 and h.standin.requests == 1
    assert (await h.outbox(outbox_message)).state == "sent"


def test_twilio_unreachable_then_back_sends_exactly_once(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        port = int(h.standin_url.rsplit(":", 1)[1])
        # Twilio is down: nothing listens on the stand-in's port for a while
        await stop_server(h.standin_server, h.standin_task)
        assert (await h.post(webhook("SM1"))).status_code == 200  # intake is unaffected
        (ticket,) = await h.tickets()
        ack = outbound(await h.ticket(ticket.ref))[0]

        async def retried_later() -> bool:
            row = await h.outbox(ack.id)
            return row.state == "pending" and row.attempts >= 1 and bool(row.last_error)

        await until(retried_later, what="a failed attempt put back")
        assert "cannot reach Twilio" in ((await h.outbox(ack.id)).last_error or "")
        server, task = await serve(h.standin.app(), port)
        try:
            h.clock.advance(minutes=2)
            await sent_once(h, ack.id)
        finally:
            await stop_server(server, task)

    scenario(tmp_path, body)


# -- 9: reconciliation ----------------------------------------------------------------------------------------


def test_reconciliation_ingests_a_message_whose_webhook_never_arrived_once(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        assert h.app.whatsapp is not None
        await until(lambda: h.standin.lists >= 1, what="the start-up reconciliation round")
        h.standin.receive(f"whatsapp:{PIET}", OUR_NUMBER, "Mijn bericht kwam niet aan", sid="SMlost1",
                          when=h.clock())
        assert await h.app.whatsapp.reconcile() == 1
        assert await h.app.whatsapp.reconcile() == 0
        assert await h.count(m.Message, m.Message.external_id == "SMlost1") == 1
        (ticket,) = await h.tickets()
        assert ticket.account == "Bakkerij de Vries"
        assert ticket.received_at == h.clock()
        await until(lambda: len(h.standin.sent) == 1, what="its acknowledgement")
        # the late webhook for the same message changes nothing
        assert (await h.post(webhook("SMlost1", body="Mijn bericht kwam niet aan"))).status_code == 200
        assert await h.app.whatsapp.reconcile() == 0
        await settle()
        assert await h.count(m.Message, m.Message.direction == "in") == 1
        assert len(h.standin.sent) == 1

    scenario(tmp_path, body)


async def _show(h: Harness, *args: str) -> dict[str, Any]:
    """``slabot ARGS --json`` against the running application's database."""
    out = io.StringIO()
    code = await asyncio.to_thread(cli.main, ["--config", str(h.config_path), *args, "--json"], out)
    assert code == 0
    return dict(json.loads(out.getvalue()))


def test_a_webhook_is_received_when_it_arrives(tmp_path: Path, db_url: str) -> None:
    async def body(h: Harness) -> None:
        ticket = await new_ticket(h, "SMnow")
        shown = await _show(h, "tickets", "show", ticket.ref)
        assert shown["received_at"] == "2026-11-23T10:00:00+01:00"
        assert shown["first_response_due"] == "2026-11-26T10:00:00+01:00"
        assert DEADLINE_TEXT in h.standin.sent[0]["body"]

    scenario(tmp_path, body, db_url=db_url)


def test_reconciliation_starts_the_clock_at_twilios_time_of_receipt(tmp_path: Path, db_url: str) -> None:
    async def body(h: Harness) -> None:
        assert h.app.whatsapp is not None
        await until(lambda: h.standin.lists >= 1, what="the start-up reconciliation round")
        lost = h.standin.receive(f"whatsapp:{PIET}", OUR_NUMBER, "Mijn bericht kwam niet aan", sid="SMlost2",
                                 when=h.clock() - timedelta(hours=2))
        webhook_try = (h.clock() - timedelta(minutes=1)).astimezone(timezone.utc)
        lost["date_sent"] = format_datetime(webhook_try, usegmt=True)  # when Twilio tried the webhook
        ahead = h.standin.receive(f"whatsapp:{ANNE}", OUR_NUMBER, "Ook bij mij", sid="SMahead",
                                  when=h.clock() + timedelta(hours=3))  # Twilio's clock ahead: not later
        assert ahead["date_created"]
        assert await h.app.whatsapp.reconcile() == 2
        await until(lambda: len(h.standin.sent) == 2, what="both acknowledgements")
        refs = {t.thread_key: t.ref for t in await h.tickets()}
        shown = await _show(h, "tickets", "show", refs[PIET])
        assert shown["received_at"] == "2026-11-23T08:00:00+01:00"
        expected = await _show(h, "sla", "deadline", "--plan", "licentie", "--at", shown["received_at"])
        assert shown["first_response_due"] == expected["first_response_due"] == "2026-11-25T17:00:00+01:00"
        assert "uiterlijk woensdag 25 november 2026 om 17:00" in next(
            s["body"] for s in h.standin.sent if s["to"] == f"whatsapp:{PIET}")
        shown = await _show(h, "tickets", "show", refs[ANNE])
        assert shown["received_at"] == "2026-11-23T10:00:00+01:00"
        assert shown["first_response_due"] == "2026-11-26T10:00:00+01:00"

    scenario(tmp_path, body, db_url=db_url)


# -- 10: media -----------------------------------------------------------------------------------------------------


def test_media_is_stored_unfetched_then_fetched(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        assert h.app.whatsapp is not None
        picture = b"\xff\xd8\xff\xe0 a photo of the error message"
        h.standin.media["x"] = (picture, "image/jpeg")
        params = webhook("SM-media", body="Zie foto", NumMedia="1", MediaUrl0=f"{h.standin_url}/media/x",
                         MediaContentType0="image/jpeg")
        assert (await h.post(params)).status_code == 200

        def attachment(s: Session) -> tuple[bool, bytes | None, int | None, str, str | None]:
            row = s.scalar(select(m.Attachment))
            assert row is not None
            return row.fetched, row.data, row.size, row.content_type, row.url

        fetched, data, _, content_type, url = await h.db(attachment)
        assert (fetched, data, content_type, url) == (False, None, "image/jpeg", f"{h.standin_url}/media/x")
        assert await h.app.whatsapp.fetch_media() == 1
        fetched, data, size, content_type, _ = await h.db(attachment)
        assert (fetched, data, size, content_type) == (True, picture, len(picture), "image/jpeg")
        assert await h.app.whatsapp.fetch_media() == 0

    scenario(tmp_path, body)


def test_one_failing_media_url_does_not_hold_up_the_others_and_staff_are_told_when_it_is_given_up(
        tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        from bot.whatsapp import MEDIA_ATTEMPTS

        assert h.app.whatsapp is not None
        h.standin.media["good"] = (b"%PDF-1.4 invoice", "application/pdf")
        params = webhook("SM-two-media", body="Twee bijlagen", NumMedia="2",
                         MediaUrl0=f"{h.standin_url}/media/missing", MediaContentType0="image/png",
                         MediaUrl1=f"{h.standin_url}/media/good", MediaContentType1="application/pdf")
        assert (await h.post(params)).status_code == 200

        def rows(s: Session) -> list[tuple[str, bool, bool, int]]:
            found = s.scalars(select(m.Attachment).order_by(m.Attachment.id)).all()
            return [(str(a.url).rsplit("/", 1)[1], a.fetched, a.fetch_failed, a.fetch_attempts) for a in found]

        assert await h.app.whatsapp.fetch_media() == 1  # the good one, although the first URL fails
        assert await h.db(rows) == [("missing", False, False, 1), ("good", True, False, 0)]
        assert await h.app.whatsapp.fetch_media() == 0  # the failing one waits for its backoff
        assert await h.db(rows) == [("missing", False, False, 1), ("good", True, False, 0)]
        for attempt in range(2, MEDIA_ATTEMPTS + 1):
            h.clock.advance(hours=1)
            assert await h.app.whatsapp.fetch_media() == 0
            assert (await h.db(rows))[0][3] == attempt
        assert await h.db(rows) == [("missing", False, True, MEDIA_ATTEMPTS), ("good", True, False, 0)]
        h.clock.advance(hours=2)
        assert await h.app.whatsapp.fetch_media() == 0
        assert (await h.db(rows))[0][3] == MEDIA_ATTEMPTS  # given up: not tried again
        assert await h.count(m.Event, m.Event.kind == "attachment_failed") == 1

    scenario(tmp_path, body)


# -- 11: a timeout after the request went out -------------------------------------------------------------------


async def acknowledgement_timed_out(h: Harness) -> tuple[TicketRecord, Any]:
    """A new ticket whose acknowledgement Twilio creates but answers too late: the row is marked uncertain."""
    assert h.app.whatsapp is not None and h.app.whatsapp.sender is not None
    h.app.whatsapp.sender.timeout = 0.3
    h.standin.slow_next(1.5)
    assert (await h.post(webhook("SM1"))).status_code == 200
    (ticket,) = await h.tickets()
    ack = outbound(await h.ticket(ticket.ref))[0]

    async def uncertain() -> bool:
        row = await h.outbox(ack.id)
        return row.state == "pending" and row.uncertain_since is not None

    await until(uncertain, what="the row marked uncertain")
    return ticket, ack


async def reconciled_once(h: Harness, ticket: TicketRecord, ack: Any) -> None:
    """The acknowledgement is recorded as sent from Twilio's record of the first attempt: asked, not sent again."""
    async def sent() -> bool:
        return (await h.outbox(ack.id)).state == "sent"

    await until(sent, what="the reconciled row")
    await settle()
    assert h.standin.requests == 1 and len(h.standin.sent) == 1
    message = outbound(await h.ticket(ticket.ref))[0]
    assert message.external_id == h.standin.sent[0]["sid"] and message.delivery_state == "sent"
    assert await h.count(m.Event, m.Event.kind == "message_sent") == 1


def test_timeout_after_twilio_accepted_the_message_is_reconciled_not_sent_twice(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        ticket, ack = await acknowledgement_timed_out(h)
        assert len(h.standin.sent) == 1 and "did not answer" in ((await h.outbox(ack.id)).last_error or "")
        h.clock.advance(minutes=2)
        await reconciled_once(h, ticket, ack)

    scenario(tmp_path, body)


def test_timeout_where_twilio_has_nothing_is_sent_again_once(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        ticket, ack = await acknowledgement_timed_out(h)
        await asyncio.sleep(1.5)  # the slow answer is over
        h.standin.sent.clear()  # as if Twilio had dropped it: the message list has nothing for this number
        h.clock.advance(minutes=2)
        await until(lambda: len(h.standin.sent) == 1, what="the second attempt")
        await settle()
        assert h.standin.requests == 2 and len(h.standin.sent) == 1
        assert (await h.outbox(ack.id)).state == "sent"
        assert outbound(await h.ticket(ticket.ref))[0].external_id == h.standin.sent[0]["sid"]

    scenario(tmp_path, body)


def test_status_callback_that_beats_the_send_commit_is_applied_when_the_sid_is_stored(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        first_sid = f"SM{1:032x}"  # the stand-in numbers its messages from 1
        early = await h.status(first_sid, "delivered")
        assert 200 <= early.status_code < 300
        assert await h.count(m.EarlyStatus) == 1
        assert (await h.post(webhook("SM1"))).status_code == 200
        (ticket,) = await h.tickets()

        async def delivered() -> bool:
            return outbound(await h.ticket(ticket.ref))[0].delivery_state == "delivered"

        await until(delivered, what="the kept status applied")
        assert h.standin.sent[0]["sid"] == first_sid
        assert await h.count(m.EarlyStatus) == 0

    scenario(tmp_path, body)


# -- the database failing around a send ----------------------------------------------------------------------


async def put_back(h: Harness, outbox_message: int, error: str) -> None:
    async def back() -> bool:
        row = await h.outbox(outbox_message)
        return row.state == "pending" and error in (row.last_error or "")

    await until(back, what=f"the row put back ({error})")


def test_a_send_whose_window_read_loses_its_connection_goes_later_once_not_never(tmp_path: Path,
                                                                                 pg_url: str) -> None:
    """Before it sends, the WhatsApp channel asks the database when the customer last wrote (the 24-hour window).
    PostgreSQL ends that read's connection (a restart): the read runs again on a new connection. It ends that one
    too: nothing has gone out, so the acknowledgement is put back and sent later, once; it is never marked
    ``unknown``, which no one sends."""

    async def body(h: Harness) -> None:
        port = int(h.standin_url.rsplit(":", 1)[1])
        await stop_server(h.standin_server, h.standin_task)  # the first attempt fails: the row waits for the clock
        assert (await h.post(webhook("SM1"))).status_code == 200
        (ticket,) = await h.tickets()
        ack = outbound(await h.ticket(ticket.ref))[0]
        await put_back(h, ack.id, "cannot reach Twilio")
        server, task = await serve(h.standin.app(), port)
        try:
            async with table_locked(h.app.db.engine.url.render_as_string(hide_password=False), "messages") as end_twice:
                h.clock.advance(minutes=2)
                await end_twice("SELECT MAX(at) FROM messages")
                await put_back(h, ack.id, "24-hour window")
                assert h.standin.requests == 0
            h.clock.advance(minutes=5)
            await sent_once(h, ack.id)
        finally:
            await stop_server(server, task)

    scenario(tmp_path, body, db_url=pg_url)


def test_a_send_of_unknown_outcome_whose_check_loses_its_connection_is_checked_again_not_given_up(
        tmp_path: Path, pg_url: str) -> None:
    """An acknowledgement Twilio accepted but answered too late: before any second send, slabot reads which other
    messages went to the number (the database) and asks Twilio. PostgreSQL ends that read's connection twice:
    the row is put back to be checked later, not given up as ``unknown``; then Twilio's record is found and
    nothing is sent twice."""

    async def body(h: Harness) -> None:
        ticket, ack = await acknowledgement_timed_out(h)
        await asyncio.sleep(1.5)  # the slow answer is over
        assert h.standin.requests == 1
        async with table_locked(h.app.db.engine.url.render_as_string(hide_password=False), "messages") as end_twice:
            h.clock.advance(minutes=2)
            await end_twice("SELECT msg.external_id FROM outbox o JOIN messages msg")
            await put_back(h, ack.id, "which messages went")
            assert (await h.outbox(ack.id)).uncertain_since is not None
        h.clock.advance(minutes=5)
        await reconciled_once(h, ticket, ack)

    scenario(tmp_path, body, db_url=pg_url)
