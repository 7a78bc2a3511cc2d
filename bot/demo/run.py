"""``slabot demo``: the whole flow on this machine, with no accounts anywhere, told in the terminal.

How it works
------------
The real application (:class:`bot.app.Application`) runs in this process, twice on one SQLite file: first as
the MailCampaigns desk, then as the Pay.nl desk (each with its preset, its config file and its accounts file,
imported on start as ``[accounts] file`` is). Its outside world is local:

- Twilio's REST API and Telegram's Bot API are the stand-ins of :mod:`bot.demo.standins`, served on loopback, and
  outgoing mail goes to an SMTP sink (:mod:`bot.demo.standins.smtp`): the real twilio, python-telegram-bot and
  aiosmtplib clients talk to them;
- a customer's WhatsApp message is posted to the application's own webhook, signed as Twilio signs it;
  e-mail comes in as an MTA pipe delivers it (:meth:`bot.mail.MailIntake.ingest_raw`, as ``slabot ingest
  email``); phone calls come from a PBX call log (:func:`bot.calls.import_calls`, as ``slabot calls import``);
- staff act in the stand-in's Telegram groups (``/reply``, ``/quote``, ``/hours``, ``/incident``, buttons),
  handled by the real staff bot.

Time is a :class:`DemoClock` passed as ``now`` to everything, moved forward by the script. The staff chat's
rounds (announcements, reminders, on-call pages) are run by the script right after each move
(``Application(staff_rounds=None)``), so three days pass in milliseconds and nothing happens behind its back.
Every fact told is read back from where it arrived (the stand-ins, the sink, the database) and returned as a
:class:`Fact`, which the tests check.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from importlib import resources
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Generic, TextIO, TypeVar

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.app import Application
from bot.billing import Billing, Statement, statement_text
from bot.calls import import_calls
from bot.config import HttpConfig, load_config
from bot.demo.standins.loopback import free_port, serving
from bot.demo.standins.smtp import SmtpSink, smtp_sink
from bot.demo.standins.telegram import Sent, TelegramStandIn
from bot.demo.standins.twilio import TwilioStandIn
from bot.errors import SlabotError
from bot.i18n import AMSTERDAM, format_when
from bot.mail import MailIntake, MailResult
from bot.outbox import OutboxDispatcher
from bot.platform import ApiKeys
from bot.presets import load_preset
from bot.web.dashboard.auth import hash_password
from bot.web.dashboard.web import PREFIX as DASHBOARD_PREFIX
from bot.web.twilio import WEBHOOK_PATH
from channels.email.smtp import SmtpSender, SmtpSettings
from channels.messages import DeliveryState
from channels.whatsapp import sign_request
from storage.billing import BillingRepository
from storage.database import Database, open_database
from storage.records import MessageRecord, TicketRecord
from storage.repositories import AccountRepository, ReminderRepository, TicketRepository

T = TypeVar("T")

MARKER = "# written by `slabot demo`"  # the first line of the config file the demo leaves next to its database
START = datetime(2026, 11, 23, 9, 55, tzinfo=AMSTERDAM)  # Monday 23 November 2026, just before ten
MONTH = "2026-11"
DASHBOARD_USER = "demo"
PUBLIC = "https://slabot.demo.invalid"  # the public URL the demo's Twilio "signs" its webhooks for
TWILIO_SID = "AC" + "d3m0" * 8
TWILIO_TOKEN = "demo-auth-token"
TELEGRAM_TOKEN = "4242:DEMO"
_REF = re.compile(r"\b[A-Z]{1,5}-\d{3,}\b")  # a ticket reference in the staff bot's answer
WAIT = 15.0  # seconds to wait for anything to arrive before the demo gives up

# the two desks' Telegram groups and staff (user ids as Telegram gives them)
MC_STAFF_CHAT, PN_STAFF_CHAT, PN_ONCALL_CHAT = -1001000000001, -1001000000002, -1001000000003
STAFF = {"anna": 501, "bram": 502, "lotte": 503, "ruud": 601, "eva": 602, "sofie": 603}
# the customers' numbers and addresses (as in the accounts files in bot/demo/data), and two who are not
PIET, KAREL, STRANGER = "+31612345678", "+31687654321", "+31611122233"
KAREL_MAIL = "karel@drukkerij-peters.example"
SANNE, AGENCY = "sanne@fietsenmaker-jansen.example", "info@reclamebureau-zon.example"
FATIMA, ROOS = "+31620000001", "+31620000003"
JOOST, KEES = "joost@fietsenwinkel-veldman.example", "kees@startup-kees.example"


class DemoError(SlabotError):
    """The demo could not go on (something did not arrive in time, or its database path is taken)."""


class DemoClock:
    """The ``now`` of everything in the demo: it stands still until the script moves it forward."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        if at < self.at:
            raise ValueError(f"the demo's clock only moves forward ({at} < {self.at})")
        self.at = at

    def local(self, hour: int, minute: int = 0) -> datetime:
        """An Amsterdam time on the clock's day."""
        return self.at.astimezone(AMSTERDAM).replace(hour=hour, minute=minute, second=0, microsecond=0)


@dataclass(frozen=True)
class Fact:
    """One thing the demo told, as it arrived.

    ``kind``: desk_opened, customer (someone writes or calls), acknowledgement, third_party_refused, unknown_sender, channel_not_in_plan,
    announced, resolved, punch_card_bought, staff_reply, quote_sent, quote_agreed, staff_told, hours_billed,
    punch_card_renewed, follow_up, follow_up_announced, reminder, breach, incident_logged, page, page_acknowledged,
    paging_stopped, statement, platform_request.
    ``channel`` is where it arrived (whatsapp, email, phone, platform, telegram, billing) and ``recipient`` who got it;
    ``text`` is the message as received.
    """

    kind: str
    at: datetime
    desk: str  # the preset: mailcampaigns or paynl
    summary: str
    channel: str | None = None
    recipient: str | None = None
    ref: str | None = None
    text: str = ""
    due: datetime | None = None  # the first-response deadline the ticket got, where one applies
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoResult:
    """What ``slabot demo`` did: its facts, where it left its database, and how long it took."""

    facts: tuple[Fact, ...]
    left: Leftovers
    seconds: float
    statement: Statement

    @property
    def database(self) -> Path:
        return self.left.database

    @property
    def config(self) -> Path:
        return self.left.config

    def of(self, kind: str, desk: str | None = None) -> list[Fact]:
        return [f for f in self.facts if f.kind == kind and (desk is None or f.desk == desk)]


class _Feed(Generic[T]):
    """What arrives in a growing list (a stand-in's outbox, a chat), read in order from where it stood."""

    def __init__(self, items: Callable[[], Sequence[T]]) -> None:
        self.items = items
        self.seen = len(items())

    async def next(self, matching: Callable[[T], bool], what: str) -> T:
        async def found() -> T | None:
            items = self.items()
            for index in range(self.seen, len(items)):
                if matching(items[index]):
                    self.seen = index + 1
                    return items[index]
            return None

        return await _until(found, what)

    async def take(self, count: int, what: str) -> list[T]:
        """The next ``count`` items, waiting for them to arrive."""
        async def enough() -> list[T] | None:
            items = self.items()
            if len(items) - self.seen < count:
                return None  # (nothing to wait for when count is 0)
            taken = list(items[self.seen:self.seen + count])
            self.seen += count
            return taken

        return await _until(enough, what)


async def _until(check: Callable[[], Awaitable[T | None] | T | None], what: str, timeout: float = WAIT) -> T:
    """Wait for ``check`` (sync or async) to return something."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value is not None:
            return value
        if loop.time() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)


def _mail_text(content: bytes) -> tuple[EmailMessage, str]:
    mail = message_from_bytes(content, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    body = mail.get_body(("plain",))
    return mail, (body.get_content() if body is not None else "").strip()


_HOW = {"whatsapp": "on WhatsApp", "email": "by e-mail"}


def _when(instant: datetime | None) -> str:
    return format_when(instant, "en") if instant is not None else "none guaranteed"


# -- narration -------------------------------------------------------------------------------------------


ICONS = {"desk_opened": "🏢", "acknowledgement": "📨", "third_party_refused": "🚫", "unknown_sender": "❓",
         "channel_not_in_plan": "🔀", "announced": "🆕", "resolved": "✅", "punch_card_bought": "💳",
         "staff_reply": "💬", "quote_sent": "🧾", "quote_agreed": "🤝", "staff_told": "📣", "hours_billed": "⌛",
         "punch_card_renewed": "💳", "reminder": "⏰", "breach": "🚨", "incident_logged": "📞", "page": "📟",
         "page_acknowledged": "🙋", "paging_stopped": "🔕", "statement": "📊", "invoice_sent": "🧾", "customer": "👤",
         "platform_request": "🖥️"}
STYLES = {"breach": "bold red", "page": "bold red", "reminder": "yellow", "third_party_refused": "magenta",
          "unknown_sender": "magenta", "channel_not_in_plan": "magenta", "statement": "bold green",
          "desk_opened": "bold cyan", "staff_reply": "green", "page_acknowledged": "green",
          "paging_stopped": "green", "customer": "bold"}
# what the staff chat hears, by the mark its message starts with
_TOLD = {"✅": "hears that the customer agreed to the quote on", "❌": "hears that the customer declined the quote on",
         "💳": "hears of the punch card of", "🧾": "hears of the invoice of", "⚠": "is alerted: staff must act on"}
_SKIP = ("Beste ", "Met vriendelijke groet", "Hallo ", "Dear ", "Kind regards")


# the rules the demo shows, in words: said once, where a rule first comes up
RULES = {
    "R2": "only the contact person, or a party the customer authorised, may file requests",
    "R4": "a sender that matches no account is told so, and staff link the ticket",
    "R5": "each plan has its own channels",
    "R7": "an outage on the 24/7 line gets no first-response deadline: on-call is paged at once",
    "R8": "a staff answer, on the ticket's own channel, is the first response and stops the clock",
    "R11": "every question answered within 24 business hours",
    "R12": "Premium within 8 business hours, Business within 24",
    "R16": "reminders at 75% of the window and before it lapses, then the breach escalates",
    "R17": "critical incidents on the outage line page on-call every 15 minutes until acknowledged",
    "R19": "paid work is quoted first and starts when the customer agrees",
    "R20": "rates: 130 an hour, urgent 176.80, punch card 117; monthly hours and the card come first",
    "R21": "jobs up to 1,000 go on the monthly invoice, sent by e-mail as a PDF",
    "R24": "a follow-up question gets its own response deadline",
}
_RULE = re.compile(r"\bR\d+\b")


def _excerpt(text: str, lines: int = 12) -> str:
    """The paragraphs of a message that carry its facts (no greeting, no signature), whole; a long message
    shows its first ``lines`` lines and says how many more there are."""
    kept = [p.strip() for p in text.strip().splitlines() if p.strip() and not p.strip().startswith(_SKIP)]
    while kept and kept[-1].endswith((" support", " storingsdienst")):  # the signature
        kept.pop()
    if len(kept) > lines:
        kept = [*kept[:lines], f"(… {len(kept) - lines} more lines)"]
    return "\n".join(kept)


class _Narrator:
    """Prints facts as they happen (nothing with ``console=None``)."""

    def explained(self, summary: str) -> str:
        """``summary`` with each rule code said in words the first time the demo names it."""
        def words(found: re.Match[str]) -> str:
            code = found.group()
            if code in self.said or code not in RULES:
                return code
            self.said.add(code)
            return f"{code}: {RULES[code]}"

        return _RULE.sub(words, summary)

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self.said: set[str] = set()  # the rule codes said in words already

    def block(self, text: str) -> None:
        """Lines as they are (a table): indented, not wrapped."""
        if self.console is not None:
            for line in text.rstrip().splitlines():
                self.console.print(Text("    " + line, style="dim"), soft_wrap=True)

    def act(self, title: str, subtitle: str) -> None:
        if self.console is not None:
            self.console.print()
            self.console.rule(f"[bold]{title}[/bold]")
            self.console.print(Text(self.explained(subtitle), style="dim"), justify="center")

    def fact(self, fact: Fact, *, quote: bool = True) -> None:
        """One fact: its time, what happened, and (dimmed) an excerpt of the message that arrived."""
        if self.console is None:
            return
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=16, style="dim", no_wrap=True)
        grid.add_column(width=2, no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_row(fact.at.astimezone(AMSTERDAM).strftime("%a %d %b %H:%M"), ICONS.get(fact.kind, "•"),
                     Text(self.explained(fact.summary), style=STYLES.get(fact.kind, ""), overflow="fold"))
        shown = _excerpt(fact.text) if quote else ""
        if shown:
            grid.add_row("", "", Text(shown, style="dim italic", overflow="fold"))
        self.console.print(grid)


# -- the stage -------------------------------------------------------------------------------------------


@dataclass
class _Desk:
    """One desk's running application, with what it needs to be written to."""

    app: Application
    port: int
    whatsapp_number: str
    from_address: str
    staff_chat: int

    @property
    def db(self) -> Database:
        assert self.app.db is not None
        return self.app.db


class _Stage:
    """The stand-ins, the clock and the facts; the script's acts are its methods."""

    def __init__(self, database: Path, work: Path, sink: SmtpSink, smtp_port: int, narrator: _Narrator) -> None:
        self.database = database
        self.url = f"sqlite:///{database}"
        self.work = work
        self.sink = sink
        self.smtp_port = smtp_port
        self.narrator = narrator
        self.clock = DemoClock(START)
        self.twilio = TwilioStandIn(now=self.clock)
        self.telegram = TelegramStandIn(token=TELEGRAM_TOKEN, now=self.clock)
        self.twilio_url = self.telegram_url = ""
        self.facts: list[Fact] = []
        self.whatsapp_out = _Feed(lambda: self.twilio.sent)
        self.mail_out = _Feed(lambda: self.sink.envelopes)
        self.chats: dict[int, _Feed[Sent]] = {}
        self.http = httpx.AsyncClient(timeout=WAIT)
        self.desk_name = ""

    def tell(self, kind: str, summary: str, **fields: Any) -> Fact:
        fact = Fact(kind, self.clock(), self.desk_name, summary, **fields)
        self.facts.append(fact)
        self.narrator.fact(fact)
        return fact

    def chat(self, chat_id: int) -> _Feed[Sent]:
        if chat_id not in self.chats:
            self.chats[chat_id] = _Feed(lambda: self.telegram.messages_to(chat_id))
        return self.chats[chat_id]

    # -- a desk ---------------------------------------------------------------------------------------

    @asynccontextmanager
    async def desk(self, preset: str, number: str, address: str, company: str,
                   staff_chat: int, staff: Sequence[str], team_lead: str,
                   oncall_chat: int | None = None) -> AsyncIterator[_Desk]:
        """The application as ``slabot run`` starts it from a config file, on the demo's clock and stand-ins."""
        self.desk_name = preset
        accounts_file = self.work / f"{preset}-accounts.toml"
        accounts_file.write_text(resources.files("bot").joinpath("demo", "data", accounts_file.name).read_text(
            encoding="utf-8"), encoding="utf-8")
        port = free_port()
        oncall = f"oncall_chat_id = {oncall_chat}\n" if oncall_chat is not None else ""
        config = self.work / f"{preset}.toml"
        config.write_text(
            f'preset = "{preset}"\n[database]\nurl = "{self.url}"\n'
            f'[http]\nhost = "127.0.0.1"\nport = {port}\npublic_url = "{PUBLIC}"\n'
            f'[twilio]\naccount_sid = "{TWILIO_SID}"\nauth_token = "{TWILIO_TOKEN}"\n'
            f'whatsapp_from = "whatsapp:{number}"\napi_base_url = "{self.twilio_url}"\n'
            f'[email]\nsmtp_host = "127.0.0.1"\nsmtp_port = {self.smtp_port}\nsmtp_security = "none"\n'
            f'from_address = "{address}"\nfrom_name = "{company} support"\n'
            f'[telegram]\ntoken = "{TELEGRAM_TOKEN}"\nstaff_chat_id = {staff_chat}\n'
            f'staff_user_ids = [{", ".join(str(STAFF[s]) for s in staff)}]\nteam_lead = "{team_lead}"\n'
            f'{oncall}api_base_url = "{self.telegram_url}"\n'
            f'[accounts]\nfile = "{accounts_file}"\n', encoding="utf-8")
        app = Application(load_config(config, environ={}), now=self.clock, dispatch_interval=0.02,
                          staff_rounds=None)
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop), name=f"slabot-{preset}")
        started = asyncio.create_task(app.started.wait())
        await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            started.cancel()
            await task
            raise DemoError(f"the {preset} desk stopped while starting")
        try:
            desk = _Desk(app, port, number, address, staff_chat)
            for chat in (staff_chat, oncall_chat):
                if chat is not None:
                    self.chat(chat)  # read from here on
            assert app.staffbot is not None
            await app.staffbot.announce_new()  # the first round sets the announcement checkpoint
            plans = app.loaded.preset.plan_names
            names = await asyncio.to_thread(desk.db.run, lambda s: [
                a.name for a in AccountRepository(s).all() if a.plan in plans])
            self.tell("desk_opened", f"the {company} desk opens (`slabot run`, preset {preset}): {len(names)} "
                      f"customer accounts imported from its accounts file; WhatsApp {number}, e-mail {address}, "
                      "staff chat on Telegram", data={"accounts": ", ".join(names)})
            yield desk
        finally:
            stop.set()
            await task

    # -- customers writing in ----------------------------------------------------------------------------

    async def whatsapp_in(self, desk: _Desk, number: str, name: str, body: str) -> str:
        """A WhatsApp message to the desk, posted to its webhook as Twilio posts it; its MessageSid."""
        sid = f"SM{uuid.uuid4().hex}"
        params = {"MessageSid": sid, "SmsMessageSid": sid, "AccountSid": TWILIO_SID, "From": f"whatsapp:{number}",
                  "To": f"whatsapp:{desk.whatsapp_number}", "Body": body, "ProfileName": name, "NumMedia": "0"}
        signature = sign_request(TWILIO_TOKEN, PUBLIC + WEBHOOK_PATH, params)
        self.tell("customer", f"{name} writes on WhatsApp from {number}", text=body)
        answer = await self.http.post(f"http://127.0.0.1:{desk.port}{WEBHOOK_PATH}", data=params,
                                      headers={"X-Twilio-Signature": str(signature)})
        if answer.status_code != 200:
            raise DemoError(f"the WhatsApp webhook answered {answer.status_code}: {answer.text}")
        return sid

    async def whatsapp_to(self, number: str, what: str) -> dict[str, Any]:
        """The next WhatsApp message the Twilio stand-in was asked to send to ``number``."""
        return await self.whatsapp_out.next(lambda r: r["to"] == f"whatsapp:{number}", what)

    async def email_in(self, desk: _Desk, name: str, address: str, subject: str, body: str) -> MailResult:
        """A mail to the desk, handed over as an MTA pipe does (``slabot ingest email``)."""
        mail = EmailMessage()
        mail["From"] = f"{name} <{address}>"
        mail["To"] = desk.from_address
        mail["Subject"] = subject
        mail["Date"] = format_datetime(self.clock())
        mail["Message-ID"] = make_msgid(domain=address.split("@")[1])
        mail.set_content(body)
        self.tell("customer", f"{name} e-mails {desk.from_address}: “{subject}”", text=body)
        assert desk.app.pipeline is not None
        intake = MailIntake(desk.db, desk.app.pipeline, own_addresses=(desk.from_address,), now=self.clock)
        return await asyncio.to_thread(intake.ingest_raw, mail.as_bytes(), source="pipe")

    async def mail_to(self, address: str, what: str) -> tuple[EmailMessage, str]:
        envelope = await self.mail_out.next(lambda e: address in e.rcpt_tos, what)
        return _mail_text(envelope.content)

    async def call_in(self, desk: _Desk, number: str, name: str, notes: str, agent: str) -> str:
        """An answered call, from the PBX's call log (``slabot calls import``); its message's id."""
        call_id = f"CA{uuid.uuid4().hex}"
        log = self.work / f"calls-{call_id}.csv"
        log.write_text("call_id,time,caller,duration,status,agent,notes\n"
                       f'{call_id},{self.clock().isoformat()},{number},240,answered,{agent},"{notes}"\n',
                       encoding="utf-8")
        self.tell("customer", f"{name} calls from {number}; {agent} takes the call and it is logged", text=notes)
        assert desk.app.pipeline is not None
        report = await asyncio.to_thread(import_calls, desk.app.pipeline, log)
        if not report.ok:
            raise DemoError(f"the call log was refused: {report.summary()}")
        return f"call:{call_id}"  # as channels.calls.call_message stores it

    async def platform_request(self, desk: _Desk, name: str, address: str, subject: str, body: str) -> None:
        """The host product files a request for its logged-in user through the platform API (a key made as
        ``slabot api-keys create`` makes it), then reads the ticket's deadline back."""
        key = await asyncio.to_thread(ApiKeys(desk.db, self.clock).create, "mailcampaigns-platform")
        api = f"http://127.0.0.1:{desk.port}/api/v1"
        headers = {"Authorization": f"Bearer {key}"}
        self.tell("customer", f"{name} files a request in the MailCampaigns platform (menu > support)", text=body)
        filed = await self.http.post(f"{api}/requests", headers=headers, json={
            "contact": {"email": address}, "subject": subject, "text": body, "external_id": "platform-ticket-1"})
        if filed.status_code != 201:
            raise DemoError(f"the platform API answered {filed.status_code}: {filed.text}")
        answer = filed.json()
        shown = (await self.http.get(f"{api}/tickets/{answer['ref']}", headers=headers)).json()
        due = datetime.fromisoformat(shown["first_response_due"])
        self.tell("platform_request", f"the platform files it through the API (POST /api/v1/requests): "
                  f"{answer['ref']}, {answer['decision']}, first response due {_when(due)}, read back with GET "
                  f"/api/v1/tickets/{answer['ref']}; the acknowledgement comes back in the API's answer",
                  channel="platform", recipient=address, ref=answer["ref"], text=answer["acknowledgement"]["text"],
                  due=due)

    # -- a request and its acknowledgement -----------------------------------------------------------------

    async def whatsapp_request(self, desk: _Desk, number: str, name: str, body: str) -> tuple[TicketRecord, str]:
        """A WhatsApp message in: its ticket, and what the Twilio stand-in was asked to send back."""
        sid = await self.whatsapp_in(desk, number, name, body)
        sent = await self.whatsapp_to(number, f"the answer to {name}")
        return await self.ticket_of(desk, "whatsapp", sid), str(sent["body"])

    async def email_request(self, desk: _Desk, name: str, address: str, subject: str,
                            body: str) -> tuple[TicketRecord, str]:
        """A mail in: its ticket, and the answer that reached the SMTP sink."""
        result = await self.email_in(desk, name, address, subject, body)
        _, text = await self.mail_to(address, f"the answer to {name}")
        if result.ticket_ref is None:
            raise DemoError(f"{name}'s mail opened no ticket: {result.outcome}")
        return await self.ticket(desk, result.ticket_ref), text

    async def call_request(self, desk: _Desk, number: str, name: str, agent: str,
                           notes: str) -> tuple[TicketRecord, MessageRecord, str]:
        """A logged call: its ticket, its acknowledgement (a phone cannot be written to: it goes by e-mail to the
        caller's address, else by WhatsApp to the calling number), and that acknowledgement's text as received."""
        message = await self.call_in(desk, number, name, notes, agent)
        ticket = await self.ticket_of(desk, "phone", message)
        told = await self.delivered(desk, ticket.ref)
        return ticket, told, await self.received(told)

    async def received(self, told: MessageRecord) -> str:
        """An outbound message's text as the stand-in or the sink got it (as stored, when it was not sent)."""
        if told.delivery_state != "sent" or told.recipient is None:
            return told.text
        if told.channel == "email":
            return (await self.mail_to(told.recipient, f"the mail to {told.recipient}"))[1]
        if told.channel == "whatsapp":
            return str((await self.whatsapp_to(told.recipient, f"the WhatsApp message to {told.recipient}"))["body"])
        return told.text

    def acknowledged(self, who: str, ticket: TicketRecord, channel: str, recipient: str, text: str,
                     delivery_state: str = "sent", *, call: bool = False) -> Fact:
        """The acknowledgement ``who`` got, with the deadline the ticket got (R7)."""
        how = _HOW[channel]
        if call:
            how = f"for the call {how} ({recipient})"
        due = (f"first response due {_when(ticket.first_response_due)}" if ticket.first_response_due
               else "no response time guaranteed on this plan")
        if call and ticket.first_responded_at is not None:  # R8: the answered call was the response
            due = f"the answered call is the first response ({_when(ticket.first_responded_at)}), no deadline promised"
        held = ("; that number has not written on WhatsApp in the last 24 hours, so only an approved template may "
                "go, and none is configured: it waits for staff" if delivery_state == DeliveryState.NEEDS_STAFF else "")
        return self.tell("acknowledgement", f"{who} gets {ticket.ref} {how}: {due} ({ticket.plan}, "
                         f"{ticket.kind}){held}", channel=channel, recipient=recipient, ref=ticket.ref, text=text,
                         due=ticket.first_response_due, data={
                             "plan": ticket.plan or "", "kind": ticket.kind, "delivery_state": delivery_state,
                             "request_channel": "phone" if call else channel})

    async def staff_round(self, desk: _Desk) -> None:
        """The staff chat's round: new tickets announced, billing news (an agreed quote, a renewed card)."""
        assert desk.app.staffbot is not None
        posted = await desk.app.staffbot.announce_new()
        for text in await self.posted(desk.staff_chat, posted, "the staff chat's round"):
            found = _REF.search(text)
            ref = found.group() if found else None
            if text.startswith("🆕"):
                self.tell("announced", f"the staff chat is told of {ref}, with buttons to take or resolve it",
                          channel="telegram", ref=ref, text=text)
            elif text.startswith("💬"):
                self.tell("follow_up_announced", f"the staff chat is told of the follow-up question on {ref}, with "
                          "its new response deadline (R24)", channel="telegram", ref=ref, text=text)
            else:
                what = next((label for mark, label in _TOLD.items() if text.startswith(mark)), "is alerted about")
                self.tell("staff_told", f"the staff chat {what} {ref}", channel="telegram", ref=ref, text=text)

    # -- reading back --------------------------------------------------------------------------------------

    async def ticket_of(self, desk: _Desk, channel: str, external_id: str) -> TicketRecord:
        """The ticket an inbound message went to."""
        def work(db: Database) -> TicketRecord | None:
            def read(s: Any) -> TicketRecord | None:
                tickets = TicketRepository(s)
                message_id, _ = tickets.stored_as(channel, external_id)
                if message_id is None:
                    return None
                ticket_id = tickets.message(message_id).ticket_id
                return None if ticket_id is None else tickets.get(ticket_id, with_messages=True)
            return db.run(read)

        return await _until(lambda: asyncio.to_thread(work, desk.db), f"the ticket of {channel} {external_id}")

    async def ticket(self, desk: _Desk, ref: str) -> TicketRecord:
        found = await asyncio.to_thread(desk.db.run, lambda s: TicketRepository(s).by_ref(ref, with_messages=True))
        if found is None:
            raise DemoError(f"no ticket {ref}")
        return found

    async def delivered(self, desk: _Desk, ref: str, purpose: str | None = None) -> MessageRecord:
        """The ticket's newest automatic outbound message (of ``purpose``) once the outbox has handled it."""
        async def handled() -> MessageRecord | None:
            ticket = await self.ticket(desk, ref)
            out = [m for m in ticket.messages if m.direction == "out" and (purpose is None or m.purpose == purpose)]
            return out[-1] if out and out[-1].delivery_state not in (DeliveryState.QUEUED, DeliveryState.SENDING) else None

        return await _until(handled, f"the outbox to handle {ref}'s {purpose or 'reply'}")

    # -- staff on Telegram ----------------------------------------------------------------------------------

    async def staff_says(self, chat: int, who: str, text: str) -> str:
        """A staff member writes in a Telegram group; the staff bot's answer."""
        feed = self.chat(chat)
        self.telegram.push_message(chat, STAFF[who], text, username=who, first_name=who.title())
        answer = await feed.next(lambda s: True, f"the staff bot's answer to {text!r}")
        return answer.text or ""

    async def posted(self, chat: int, count: int, what: str) -> list[str]:
        return [s.text or "" for s in await self.chat(chat).take(count, what)]


# -- the script ------------------------------------------------------------------------------------------


async def _mailcampaigns(stage: _Stage) -> None:
    """Act 1: three customers of MailCampaigns, a third party, a stranger, billing, reminders and a breach."""
    clock = stage.clock
    stage.narrator.act("Act 1 · MailCampaigns", "plans licentie, ondersteuning and project · opening hours "
                       "Mon-Fri 09:00-17:00 · first response within 24 business hours (R11)")
    async with stage.desk("mailcampaigns", "+31850000001", "support@mailcampaigns.example",
                          "MailCampaigns", MC_STAFF_CHAT, ("anna", "bram", "lotte"), "lotte") as desk:
        chat = MC_STAFF_CHAT
        clock.set(clock.local(10))  # the SPEC's worked example: Monday 10:00 -> Thursday 10:00
        piet, text = await stage.whatsapp_request(desk, PIET, "Piet de Vries",
                                                  "Hoi! Kunnen jullie de opmaak van onze kerstnieuwsbrief verzorgen?")
        stage.acknowledged("Piet", piet, "whatsapp", PIET, text)
        await stage.staff_round(desk)  # the staff chat hears of it at once
        clock.set(clock.local(10, 5))
        sanne, text = await stage.email_request(desk, "Sanne Jansen", SANNE, "Verzendknop werkt niet",
                                                "Goedemorgen,\n\nDe verzendknop in de editor werkt niet sinds "
                                                "vanochtend; we krijgen een foutmelding.\n\nGroet, Sanne")
        stage.acknowledged("Sanne", sanne, "email", SANNE, text)
        await stage.staff_round(desk)  # the staff chat hears of it at once
        clock.set(clock.local(10, 10))
        karel, told, text = await stage.call_request(desk, KAREL, "Karel Peters", "bram", "Campagne van vanochtend "
                                                     "is niet verstuurd; samen gekeken en opnieuw ingepland.")
        stage.acknowledged("Karel", karel, told.channel, told.recipient or "", text, told.delivery_state, call=True)
        await stage.staff_round(desk)  # the staff chat hears of it at once

        clock.set(clock.local(10, 15))
        result = await stage.email_in(desk, "Reclamebureau Zon", AGENCY, "Cijfers Bakkerij de Vries",
                                      "Hallo, kunnen jullie ons de open rates van Bakkerij de Vries van afgelopen "
                                      "maand sturen?")
        _, text = await stage.mail_to(AGENCY, "the agency's refusal")
        stage.tell("third_party_refused", "the agency is not authorised on the account: refused politely, nothing "
                   "revealed, no ticket opened (R2)", channel="email", recipient=AGENCY,
                   text=text, data={"outcome": result.outcome})
        clock.set(clock.local(10, 20))
        stranger, text = await stage.whatsapp_request(desk, STRANGER, "Sam Visser",
                                                      "Hallo, mijn nieuwsbrief komt niet aan?")
        stage.tell("unknown_sender", f"an unknown number is told it matches no customer account; kept as "
                   f"{stranger.ref} ({stranger.state}) for staff to link (R4)", channel="whatsapp",
                   recipient=STRANGER, ref=stranger.ref, text=text, data={"state": stranger.state})
        await stage.staff_round(desk)

        clock.set(clock.local(10, 30))
        answer = await stage.staff_says(chat, "bram", f"/resolve {karel.ref}")
        stage.tell("resolved", f"@bram solved Karel's problem during the call: /resolve {karel.ref} (no reminders "
                   f"for it)", channel="telegram", ref=karel.ref, text=answer)

        # paid service (R19-R20): a punch card, a staff reply that stops the clock, a quote, "Akkoord", hours
        billing = Billing(desk.db, desk.app.loaded.preset, now=clock)
        clock.set(clock.local(10, 45))
        invoice, price = await asyncio.to_thread(billing.buy_punch_card, "Bakkerij de Vries", "5", "anna")
        stage.tell("punch_card_bought", f"Bakkerij de Vries buys a punch card of 5 hours at EUR 117.00: invoice "
                   f"{invoice}, EUR {price}, prepaid (R20; `slabot billing punchcard`)", channel="billing",
                   data={"invoice": invoice, "price": str(price)})
        clock.set(clock.local(11))
        answer = await stage.staff_says(chat, "anna", f"/reply {piet.ref} Dag Piet, dat doen we graag! Ik stuur je "
                                        "zo een urenindicatie.")
        sent = await stage.whatsapp_to(PIET, "Anna's reply to Piet")
        piet = await stage.ticket(desk, piet.ref)
        states = await asyncio.to_thread(desk.db.run, lambda s: sorted(
            {r.state for r in ReminderRepository(s).for_ticket(piet.id)}))
        stage.tell("staff_reply", f"@anna answers Piet from the staff chat (/reply): it goes out on WhatsApp and "
                   f"stops the clock: first response {_when(piet.first_responded_at)}, reminders "
                   f"{', '.join(states)} (R8, R16)", channel="whatsapp", recipient=PIET, ref=piet.ref,
                   text=sent["body"], data={"staff_chat": answer, "reminders": ",".join(states)})
        clock.set(clock.local(11, 5))
        answer = await stage.staff_says(chat, "anna", f"/quote {piet.ref} 6")
        sent = await stage.whatsapp_to(PIET, "the quote")
        quote = await asyncio.to_thread(desk.db.run, lambda s: BillingRepository(s).current_quote(piet.id))
        assert quote is not None
        stage.tell("quote_sent", f"@anna: /quote {piet.ref} 6 → Piet gets the estimate before work starts: "
                   f"{quote.card_hours} h from his punch card (5 left: a new block of 5 h, EUR {quote.block_price}, "
                   f"is bought on the way), nothing more to pay for the work (R19, R20)",
                   channel="whatsapp", recipient=PIET, ref=piet.ref, text=sent["body"],
                   data={"staff_chat": answer, "total": str(quote.total), "rate": str(quote.rate),
                         "card_hours": str(quote.card_hours), "new_blocks": str(quote.new_blocks)})
        clock.set(clock.local(11, 30))
        await stage.whatsapp_in(desk, PIET, "Piet de Vries", "Akkoord!")
        sent = await stage.whatsapp_to(PIET, "the confirmation of the agreement")
        stage.tell("quote_agreed", "Piet's “Akkoord!” is taken as his agreement: the work may start",
                   channel="whatsapp", recipient=PIET, ref=piet.ref, text=sent["body"])
        await stage.staff_round(desk)
        clock.set(clock.local(15))
        answer = await stage.staff_says(chat, "anna", f"/hours {piet.ref} 6 opmaak kerstnieuwsbrief")
        stage.tell("hours_billed", f"@anna logs the 6 hours: /hours {piet.ref} 6 (5 h use up the card, 1 h goes on "
                   f"a new block)", channel="telegram", ref=piet.ref, text=answer)
        sent = await stage.whatsapp_to(PIET, "the punch card renewal notice")
        stage.tell("punch_card_renewed", "Piet is told his card was used up and a new block of 5 hours was "
                   "invoiced automatically (R20)", channel="whatsapp", recipient=PIET, ref=piet.ref,
                   text=sent["body"])
        await stage.staff_round(desk)
        clock.set(clock.local(15, 30))  # Piet asks again: a new response deadline, no second acknowledgement (R24)
        await stage.whatsapp_in(desk, PIET, "Piet de Vries", "Kunnen jullie ook de mailing van volgende week bekijken?")
        piet = await stage.ticket(desk, piet.ref)
        stage.tell("follow_up", f"Piet's follow-up question puts {piet.ref} back in the queue, response due "
                   f"{_when(piet.response_due)}; he gets no second acknowledgement", ref=piet.ref,
                   due=piet.response_due)
        await stage.staff_round(desk)
        clock.set(clock.local(15, 45))
        answer = await stage.staff_says(chat, "anna", f"/reply {piet.ref} Ja Piet, stuur hem maar op.")
        await stage.whatsapp_to(PIET, "Anna's answer to the follow-up question")
        stage.tell("staff_reply", "@anna answers the follow-up question: response recorded, its reminders stopped",
                   channel="whatsapp", recipient=PIET, ref=piet.ref, data={"staff_chat": answer})
        # the mailing must go out tomorrow: urgent work, ad hoc at 176.80 although Piet has a card (R20)
        clock.set(clock.local(16))
        answer = await stage.staff_says(chat, "anna", f"/quote {piet.ref} 1.5 urgent")
        sent = await stage.whatsapp_to(PIET, "the urgent quote")
        quote = await asyncio.to_thread(desk.db.run, lambda s: BillingRepository(s).current_quote(piet.id))
        assert quote is not None
        stage.tell("quote_sent", f"@anna: /quote {piet.ref} 1.5 urgent → {quote.paid_hours} h urgent ad hoc at EUR "
                   f"{quote.rate} = EUR {quote.total}; the punch card buys normal hours and is left alone (R20)",
                   channel="whatsapp", recipient=PIET, ref=piet.ref, text=sent["body"],
                   data={"staff_chat": answer, "total": str(quote.total), "rate": str(quote.rate),
                         "card_hours": str(quote.card_hours), "new_blocks": str(quote.new_blocks)})
        clock.set(clock.local(16, 10))
        await stage.whatsapp_in(desk, PIET, "Piet de Vries", "Akkoord")
        await stage.whatsapp_to(PIET, "the confirmation of the urgent agreement")
        clock.set(clock.local(17, 30))
        answer = await stage.staff_says(chat, "anna", f"/hours {piet.ref} 1.5 mailing volgende week")
        stage.tell("hours_billed", f"@anna logs the urgent work: /hours {piet.ref} 1.5 (EUR {quote.total}, on the "
                   f"month's invoice)", channel="telegram", ref=piet.ref, text=answer)
        await stage.staff_round(desk)

        # nobody answers Sanne: 75% of the window, one hour before, then the breach and its escalation (R16)
        assert desk.app.reminders is not None
        planned = await asyncio.to_thread(desk.db.run, lambda s: ReminderRepository(s).for_ticket(sanne.id))
        for reminder in sorted(planned, key=lambda r: r.due_at):
            clock.set(reminder.due_at)
            count = await desk.app.reminders.run_due()
            for text in await stage.posted(chat, count, f"the {reminder.spec} reminder"):
                if reminder.escalate:
                    stage.tell("breach", "nobody answered Sanne: the breach is posted and escalated to the team "
                               "lead @lotte", channel="telegram", ref=sanne.ref, text=text,
                               due=sanne.first_response_due, data={"spec": reminder.spec})
                else:
                    stage.tell("reminder", f"staff chat reminder at {reminder.spec}, naming Sanne's campaign "
                               f"specialist @anna", channel="telegram", ref=sanne.ref, text=text,
                               due=sanne.first_response_due, data={"spec": reminder.spec})
        await stage.platform_request(desk, "Sanne Jansen", SANNE, "Statistieken in het dashboard",
                                     "De klikstatistieken van gisteren ontbreken in het dashboard.")
        await stage.staff_round(desk)  # the staff chat hears of it at once


async def _paynl(stage: _Stage) -> None:
    """Act 2: Pay.nl's plans from Pioneer to Premium, and an outage at night paged until acknowledged."""
    clock = stage.clock
    clock.set(datetime(2026, 11, 30, 9, 25, tzinfo=AMSTERDAM))
    stage.narrator.act("Act 2 · Pay.nl", "plans pioneer, professional, business and premium · opening hours "
                       "Mon-Fri 09:00-17:30 · Premium 8 h, Business 24 h (R12) · outage line 24/7 (R17)")
    async with stage.desk("paynl", "+31850000002", "support@paynl.example", "Pay.nl",
                          PN_STAFF_CHAT, ("ruud", "eva", "sofie"), "sofie", PN_ONCALL_CHAT) as desk:
        clock.set(clock.local(9, 30))
        fatima, text = await stage.whatsapp_request(desk, FATIMA, "Fatima El Amrani", "Goedemorgen, onze iDEAL-"
                                                    "betalingen blijven sinds vanochtend op 'pending' staan.")
        stage.acknowledged("Fatima", fatima, "whatsapp", FATIMA, text)
        await stage.staff_round(desk)  # the staff chat hears of it at once
        clock.set(clock.local(9, 35))
        joost, text = await stage.email_request(desk, "Joost Veldman", JOOST, "Vraag over uitbetaling",
                                                "Hallo,\n\nWanneer wordt de omzet van vrijdag uitbetaald?\n\nJoost")
        stage.acknowledged("Joost", joost, "email", JOOST, text)
        await stage.staff_round(desk)  # the staff chat hears of it at once
        clock.set(clock.local(9, 40))
        roos, told, text = await stage.call_request(desk, ROOS, "Roos Bakker", "ruud",
                                                    "Vraagt hoe ze een terugbetaling doet.")
        stage.acknowledged("Roos", roos, told.channel, told.recipient or "", text, told.delivery_state, call=True)
        await stage.staff_round(desk)  # the staff chat hears of it at once
        clock.set(clock.local(9, 45))
        result = await stage.email_in(desk, "Kees Smit", KEES, "Koppeling",
                                      "Hoi, hoe koppel ik jullie plugin aan mijn webshop?")
        _, text = await stage.mail_to(KEES, "the answer to Kees")
        stage.tell("channel_not_in_plan", "Kees's plan (pioneer) has chat only: he is told to use WhatsApp; the "
                   "mail is kept, no clock starts (R5)", channel="email", recipient=KEES,
                   text=text, data={"outcome": result.outcome})
        await stage.staff_round(desk)
        clock.set(clock.local(10, 30))
        answer = await stage.staff_says(PN_STAFF_CHAT, "ruud", f"/reply {fatima.ref} Dag Fatima, we zien het: een "
                                        "vertraging bij de bank. We houden je op de hoogte.")
        sent = await stage.whatsapp_to(FATIMA, "Ruud's reply")
        fatima = await stage.ticket(desk, fatima.ref)
        stage.tell("staff_reply", f"@ruud answers Fatima: first response {_when(fatima.first_responded_at)}, well "
                   f"within her Premium deadline", channel="whatsapp", recipient=FATIMA, ref=fatima.ref,
                   text=sent["body"], data={"staff_chat": answer})
        await _outage(stage, desk)


async def _outage(stage: _Stage, desk: _Desk) -> None:
    """The outage line at night (R17): a call logged by on-call, paged every 15 minutes until acknowledged."""
    clock, staffbot = stage.clock, desk.app.staffbot
    assert staffbot is not None
    clock.set(clock.local(23))
    answer = await stage.staff_says(PN_ONCALL_CHAT, "eva", f"/incident {FATIMA} Betaalpagina geeft een 500-fout; "
                                    "er komen geen betalingen meer binnen")
    logged = _REF.search(answer)
    if logged is None:
        raise DemoError(f"the incident was not logged: {answer}")
    incident = await stage.ticket(desk, logged.group())
    told = await stage.delivered(desk, incident.ref)
    text = await stage.received(told)
    stage.tell("incident_logged", f"23:00, Fatima calls the outage line; @eva logs it (/incident): {incident.ref}, "
               f"{incident.priority}, on the 24/7 clock (first response due {_when(incident.first_response_due)}); "
               f"Fatima is told {_HOW[str(told.channel)]}, with the warning that the outage service may be charged if the cause "
               f"is on her side", channel=told.channel, recipient=told.recipient, ref=incident.ref, text=text,
               due=incident.first_response_due, data={"priority": incident.priority, "staff_chat": answer,
                                                      "delivery_state": told.delivery_state})
    pages: list[Sent] = []
    for minutes in (0, 10, 15, 30):
        clock.set(clock.local(23, minutes))
        for page in await stage.chat(PN_ONCALL_CHAT).take(await staffbot.page_oncall(), "the page"):
            pages.append(page)
            stage.tell("page", f"on-call is paged (page {len(pages)})", channel="telegram", ref=incident.ref,
                       text=page.text or "", data={"page": str(len(pages))})
    clock.set(clock.local(23, 32))
    button = (pages[-1].reply_markup or {})["inline_keyboard"][0][0]
    stage.telegram.push_callback(PN_ONCALL_CHAT, STAFF["eva"], button["callback_data"], pages[-1].message_id)
    (acked,) = await stage.posted(PN_ONCALL_CHAT, 1, "the acknowledgement of the page")
    stage.tell("page_acknowledged", f"@eva presses “{button['text']}” under the last page", channel="telegram",
               ref=incident.ref, text=acked)
    for minutes in (45, 59):
        clock.set(clock.local(23, minutes))
        if await staffbot.page_oncall():
            raise DemoError("on-call was paged after the acknowledgement")
    stage.tell("paging_stopped", f"23:45 and 23:59 pass without a page: {len(pages)} pages in all, at 23:00, 23:15 "
               f"and 23:30", channel="telegram", ref=incident.ref, data={"pages": str(len(pages))})


async def _month_end(stage: _Stage) -> Statement:
    """The first working day after the month: its invoices issued, mailed as PDF through the outbox to the SMTP
    sink (R21), and the month's statement as ``slabot billing statement`` prints it."""
    stage.desk_name = "mailcampaigns"
    stage.clock.set(datetime(2026, 12, 1, 9, 0, tzinfo=AMSTERDAM))  # Tuesday 1 December
    db = open_database(stage.url)
    try:
        billing = Billing(db, load_preset("mailcampaigns"), now=stage.clock)
        issued = await asyncio.to_thread(billing.issue_due)
        sender = SmtpSender(SmtpSettings(host="127.0.0.1", port=stage.smtp_port, security="none",
                                         from_address="facturen@mailcampaigns.example"), now=stage.clock)
        await OutboxDispatcher(db, {"email": sender}, now=stage.clock).run_once()
        for invoice in issued:
            mail, _ = await stage.mail_to(invoice.recipient or "", f"invoice {invoice.number}")
            files = [str(part.get_filename()) for part in mail.iter_attachments()]
            stage.tell("invoice_sent", f"{invoice.account}'s invoice of {MONTH}, {invoice.number}: EUR "
                       f"{invoice.subtotal} + VAT {invoice.vat} = EUR {invoice.total}, due {invoice.due_on}, "
                       f"mailed with {', '.join(files)} to {invoice.recipient} (R21; `slabot billing invoices`)",
                       channel="email", recipient=invoice.recipient, text=str(mail["Subject"]),
                       data={"number": invoice.number, "total": str(invoice.total), "files": ",".join(files)})
        statement = billing.statement(MONTH)
    finally:
        db.dispose()
    fact = Fact("statement", stage.clock(), "mailcampaigns", f"the statement of {MONTH}: total EUR "
                f"{statement.total}", channel="billing", text=statement_text(statement),
                data={"total": str(statement.total)})
    stage.facts.append(fact)
    stage.narrator.fact(fact, quote=False)
    stage.narrator.block(fact.text)
    return statement


# -- the command ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leftovers:
    """What the demo leaves: its database and the config file next to it, with a dashboard login."""

    database: Path
    config: Path
    dashboard_user: str
    dashboard_password: str
    dashboard_url: str


def prepare(database: Path) -> Leftovers:
    """Clear the demo's database of an earlier run and write its config file; refuses a database it did not make.

    The config file names the database, and a dashboard login made up for this run (its password in a comment:
    the login is the demo's, for ``slabot run`` on this machine's loopback address).
    """
    config = database.with_suffix(".toml")
    made_by_demo = config.is_file() and config.read_text(encoding="utf-8").startswith(MARKER)
    if (database.exists() or config.exists()) and not made_by_demo:
        raise DemoError(f"{database if database.exists() else config} exists and was not made by slabot demo; "
                        "pick another --db or remove it")
    for leftover in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm", "-journal"))):
        leftover.unlink(missing_ok=True)
    database.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(9)
    http = HttpConfig()
    url = f"http://{http.host}:{http.port}{DASHBOARD_PREFIX}/"
    config.write_text(
        f"{MARKER}: its database, for `slabot --config {config} tickets list`,\n"
        f"# and its dashboard: `slabot --config {config} run`, then {url}\n"
        f"# with the login {DASHBOARD_USER} / {password} (made up by the demo for this machine)\n"
        f'preset = "mailcampaigns"\n[database]\nurl = "sqlite:///{database}"\n'
        f'[dashboard]\nsecret_key = "{secrets.token_urlsafe(32)}"\n'
        f'[[dashboard.users]]\nname = "{DASHBOARD_USER}"\npassword_hash = "{hash_password(password)}"\n'
        f'language = "en"\n', encoding="utf-8")
    return Leftovers(database, config, DASHBOARD_USER, password, url)


async def run_demo(database: Path, console: Console | None = None) -> DemoResult:
    """Run the demo on ``database`` (overwritten), telling it on ``console``; what happened."""
    started = time.perf_counter()
    database = database.resolve()
    left = prepare(database)
    narrator = _Narrator(console)
    if console is not None:
        console.print(Panel(
            "The real slabot, in this process, with no accounts anywhere: Twilio's and Telegram's APIs are local "
            "stand-ins, mail goes to a local SMTP sink, staff act in the stand-in's Telegram groups, and the clock "
            "is fast-forwarded.", title="[bold]slabot demo[/bold]"))
    with smtp_sink() as (sink, smtp_port), TemporaryDirectory(prefix="slabot-demo-") as work:
        stage = _Stage(database, Path(work), sink, smtp_port, narrator)
        try:
            async with serving(stage.twilio.app()) as twilio_url, serving(stage.telegram.app()) as telegram_url:
                stage.twilio_url, stage.telegram_url = twilio_url, telegram_url
                await _mailcampaigns(stage)
                await _paynl(stage)
        finally:
            await stage.http.aclose()
        statement = await _month_end(stage)
    seconds = time.perf_counter() - started
    result = DemoResult(tuple(stage.facts), left, seconds, statement)
    if console is not None:
        _where(console, result)
    return result


def _where(console: Console, result: DemoResult) -> None:
    """Where the demo left its database, and the commands that show it (not wrapped: they are copied)."""
    config = result.config
    tickets = len({f.ref for f in result.facts if f.ref})
    console.print()
    console.rule("[bold]where to look[/bold]")
    console.print(f"Done in {result.seconds:.1f} s: {tickets} tickets, {len(result.facts)} facts. The database "
                  f"is [bold]{result.database}[/bold] (the next run overwrites it), its config file {config}, "
                  f"the application's log {result.database.with_suffix('.log')}.")
    invoices = result.of("invoice_sent")
    for command in ("tickets list", f"tickets show {result.of('acknowledgement')[0].ref}",
                    f"billing statement --month {MONTH}", "billing invoices",
                    *(f"billing invoice {f.data['number']} --pdf {f.data['number']}.pdf" for f in invoices[:1])):
        console.print(Text(f"  slabot --config {config} {command}", style="bold"), soft_wrap=True)
    left = result.left
    console.print(f"The staff dashboard shows the same tickets: start slabot on the demo's database, open "
                  f"{left.dashboard_url} and log in as [bold]{left.dashboard_user}[/bold] with the password "
                  f"[bold]{left.dashboard_password}[/bold] (also in the config file; Ctrl-C stops it):")
    console.print(Text(f"  slabot --config {config} run", style="bold"), soft_wrap=True)
    console.print("Read more: docs/demo.md (what the demo shows), docs/presets.md (every rule and the SLA sentence "
                  "it comes from), README.md (setting up slabot for your own desk).")


def main(database: Path, out: TextIO, *, quiet: bool = False) -> DemoResult:
    """``slabot demo``: the demo told on ``out`` (only where it left its database with ``quiet``).

    The application's log goes to a file next to the database (``slabot-demo.log``), not between the lines.
    """
    console = Console(file=out, highlight=False)
    database.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(database.with_suffix(".log"), mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "apscheduler", "telegram.ext"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        result = asyncio.run(run_demo(database, None if quiet else console))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
    if quiet:
        left = result.left
        out.write(f"slabot demo: done in {result.seconds:.1f} s; database {result.database}; "
                  f"slabot --config {result.config} tickets list; the dashboard: slabot --config {result.config} "
                  f"run, then {left.dashboard_url} as {left.dashboard_user} / {left.dashboard_password}\n")
    return result


__all__ = ["DemoClock", "DemoError", "DemoResult", "Fact", "Leftovers", "main", "prepare", "run_demo"]
