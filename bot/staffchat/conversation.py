"""The staff conversation: commands, replies and buttons, each checked against the staff list and done once.

Only allow-listed staff act: every command checks the Telegram *user* id (a
group's chat id would admit everyone in it), an empty list refuses everyone,
and a refusal is logged. Each update is handled once by its update id (see
:meth:`storage.staffchat.StaffChatRepository.first_time`). Answers are in the
staff member's language (Telegram's ``language_code``: Dutch or English). The
work itself is :class:`bot.desk.Desk`'s and :class:`bot.billing.Billing`'s.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from telegram import Message, Update, User

from bot.billing import Billing, HoursResult
from bot.canned import CannedAnswers
from bot.desk import Desk, DeskError
from bot.i18n import Language, format_when
from bot.intake import IntakePipeline
from bot.staff_texts import CHAT_TEXTS, CHAT_USAGE
from bot.staffchat.wording import money_in
from channels.identity import IdentityError, phone_identity
from channels.messages import ChannelName, InboundMessage
from channels.telegram import TelegramTransport
from sla_engine.policy import Priority
from storage.billing import BillingRepository
from storage.database import Database
from storage.records import TicketRecord, TicketState
from storage.repositories import TicketRepository
from storage.staffchat import ACKNOWLEDGED, StaffChatRepository

log = logging.getLogger(__name__)

TAKEN, NOTE = "taken", "note"  # events of the audit trail
QUEUE_LINES = 30  # tickets /queue shows
_REF = re.compile(r"\b([A-Z]{1,5}-\d{3,})\b", re.IGNORECASE)
_CALLER = re.compile(r"^\s*(\+?\d[\d\s().-]{5,}\d)\s+(\S.*)$", re.DOTALL)  # "06 34 89 08 78 what happened"
_URGENT = {"urgent", "spoed"}
_OFF = {"off", "uit", "clear", "nee", "no"}
_DIAGNOSIS = {"diagnosis", "diagnose"}
_NEEDS_TEXT = ("reply", "clarify", "note", "classify", "cause", "quote", "hours", "priority", "canned")
_BILLING = ("classify", "cause", "quote", "hours")


def language_of_update(update: Update, default: Language) -> Language:
    """The language of the staff member who sent ``update`` (Telegram's ``language_code``), else ``default``."""
    user = update.effective_user
    code = (user.language_code or "") if user else ""
    if code.startswith("en"):
        return "en"
    if code.startswith("nl"):
        return "nl"
    return default


def parse_command(text: str, replied_to: str | None) -> tuple[str, str | None, str]:
    """(command, ticket ref, the rest) of a message; a plain reply to the bot's message about a ticket is
    ``reply`` to that ticket."""
    if not text.startswith("/"):
        # a plain reply to the bot's message about a ticket answers the customer
        found = _REF.search(replied_to or "")
        return ("reply" if found else "", found.group(1).upper() if found else None, text.strip())
    head, _, rest = text.partition(" ")
    command = head[1:].split("@", 1)[0].lower()
    rest = rest.strip()
    ref_text, _, more = rest.partition(" ")
    if ref_text and _REF.fullmatch(ref_text):
        return command, ref_text.upper(), more.strip()
    return command, None, rest


class StaffConversation:
    """Commands and button presses of the staff chat; see the module docstring."""

    def __init__(self, db: Database, transport: TelegramTransport, *, staff_ids: frozenset[int],
                 language: Language, now: Callable[[], datetime], pipeline: IntakePipeline | None) -> None:
        self.db = db
        self.transport = transport
        self.staff_ids = staff_ids
        self.language = language
        self.now = now
        self.pipeline = pipeline
        self.desk = Desk(db, now)
        self.billing = Billing(db, pipeline.preset, texts=pipeline.texts, now=now) if pipeline is not None else None

    async def _admitted(self, update: Update, user: User, refuse: Callable[[str], Awaitable[None]],
                        refused: str, name: str | None) -> tuple[Language, str] | None:
        """(language, staff name) for an update seen the first time from someone on the staff list; None
        otherwise (done once already, or a stranger: logged with ``refused`` and told through ``refuse``)."""
        if not await asyncio.to_thread(self.db.run_direct,
                                       lambda d: StaffChatRepository(d).first_time(update.update_id)):
            return None  # delivered again (a restart, a button pressed twice): done once already
        language = language_of_update(update, self.language)
        if user.id not in self.staff_ids:
            log.warning("telegram: %s (id %s) is not on the staff list; %s", name, user.id, refused)
            await refuse(CHAT_TEXTS[language]["refused"].format(user=user.id))
            return None
        return language, user.username or str(user.id)

    async def on_button(self, update: Update) -> None:
        """A button under an announcement or a page: take, reply, resolve, acknowledge."""
        query = update.callback_query
        user = update.effective_user
        if query is None or user is None or not query.data:
            return
        refuse = functools.partial(self.transport.answer_button, query, alert=True)
        admitted = await self._admitted(update, user, refuse, "button refused", user.username)
        if admitted is None:
            return
        language, staff = admitted
        t = CHAT_TEXTS[language]
        action, _, ref = query.data.partition(":")
        answer: str | None = None
        try:
            if action == "take":
                answer = await asyncio.to_thread(self.record, TAKEN, ref, staff, language, "taken")
            elif action == "ack":
                answer = await asyncio.to_thread(self.record, ACKNOWLEDGED, ref, staff, language, "acked")
            elif action == "resolve":
                answer = await asyncio.to_thread(self.act, "resolve", ref, "", staff, language)
            elif action == "reply" and isinstance(query.message, Message):
                # the answer to this prompt names the ticket, so it goes to the customer like /reply
                await self.transport.answer_button(query)
                await self.transport.reply(query.message, t["reply_prompt"].format(ref=ref), force_reply=True)
                return
        except DeskError as exc:
            answer = str(exc)
        await self.transport.answer_button(query, answer or "")
        if answer and isinstance(query.message, Message):
            await self.transport.reply(query.message, answer)

    async def on_message(self, update: Update) -> None:
        """A command, or a reply to the bot's message about a ticket."""
        message = update.effective_message
        user = update.effective_user
        if message is None or user is None or not message.text:
            return
        text = message.text

        async def refuse(answer: str) -> None:
            if text.startswith("/"):
                await self.transport.reply(message, answer)

        admitted = await self._admitted(update, user, refuse, f"refused: {text[:80]!r}",
                                        user.username or user.full_name)
        if admitted is None:
            return
        language, staff = admitted
        command, ref, rest = parse_command(message.text, message.reply_to_message.text
                                           if message.reply_to_message and message.reply_to_message.text else None)
        if command == "incident":
            await self.transport.reply(message, await asyncio.to_thread(self.incident, rest, update.update_id,
                                                                        language))
            return
        answer: str | None
        try:
            answer = await asyncio.to_thread(self.act, command, ref, rest, staff, language)
        except DeskError as exc:
            answer = str(exc)
        if answer:
            await self.transport.reply(message, answer)

    # -- the commands (in a worker thread) ----------------------------------------------

    def act(self, command: str, ref: str | None, rest: str, staff: str, language: Language) -> str | None:
        """Do ``command`` on the ticket ``ref`` for ``staff``; the answer to show (None: nothing to say)."""
        t = CHAT_TEXTS[language]
        if command in ("help", "start"):
            return t["help"]
        if command == "queue":
            return self.queue(language)
        if command not in CHAT_USAGE:
            return t["help"] if command else None
        if command == "canned" and ref is None:  # /canned alone: the names to choose from
            names = CannedAnswers(self.db, self.now).names()
            return ", ".join(names) if names else t["usage"].format(usage=CHAT_USAGE[command])
        if ref is None or (command in _NEEDS_TEXT and not rest):
            return t["usage"].format(usage=CHAT_USAGE[command])
        if command in _BILLING:
            return self.billing_command(command, ref, rest.split(), staff, language)
        if command == "take":
            return self.record(TAKEN, ref, staff, language, "taken")
        if command == "ticket":
            ticket = self.db.run(lambda s: TicketRepository(s).by_ref(ref, with_messages=True))
            return t["unknown"].format(ref=ref) if ticket is None else self.describe(ticket, language)
        if command == "canned":  # /canned REF NAME: the canned answer, filled in, goes as a reply
            return self.act("reply", ref, CannedAnswers(self.db, self.now).for_ticket(rest.split()[0], ref, staff),
                            staff, language)
        if command in ("reply", "clarify"):
            result = self.desk.reply(ref, rest, staff, clarify=command == "clarify")
            if command == "clarify":
                return t["clarified"].format(ref=result.ref)
            first = t["first"] if result.first_response else t["answered_follow_up"] if result.follow_up else ""
            return t["replied"].format(ref=result.ref, first=first)
        if command == "resolve":
            return t["resolved"].format(ref=self.desk.resolve(ref, staff).ref)
        if command == "release":
            needs = rest.strip().lower() not in _OFF
            result = self.desk.flag_release(ref, staff, needs_release=needs)
            flagged = self.db.run(lambda s: TicketRepository(s).by_ref(result.ref))
            latest = flagged.resolution_due_max if flagged is not None else None
            if needs and latest is not None:  # a plan whose resolution target does not exclude releases (MC)
                return t["release_kept"].format(ref=result.ref, when=format_when(latest, language))
            return t["release_on" if needs else "release_off"].format(ref=result.ref)
        if command == "priority":
            return self.prioritise(ref, rest.split()[0], staff, language)
        assert command == "note"
        return self.record(NOTE, ref, staff, language, "noted", {"text": rest})

    def prioritise(self, ref: str, name: str, staff: str, language: Language) -> str:
        """/priority REF NAME (R25): the same use case as ``slabot tickets priority``."""
        if self.pipeline is None:
            raise DeskError("a priority needs the intake pipeline (the preset)")
        change = self.desk.set_priority(ref, name, staff, self.pipeline.preset)

        def when(instant: datetime | None) -> str:
            return format_when(instant, language) if instant is not None else "-"

        return CHAT_TEXTS[language]["prioritised"].format(
            ref=change.ref, old=change.old or "-", new=change.new, note=f" ({change.note})" if change.note else "",
            due=when(change.response_due[1]), old_due=when(change.response_due[0]),
            resolution=when(change.resolution_due_max[1]), old_resolution=when(change.resolution_due_max[0]))

    def billing_command(self, command: str, ref: str, words: list[str], staff: str, language: Language) -> str:
        """/classify, /cause, /quote and /hours (R18-R21), through :class:`bot.billing.Billing`."""
        t = CHAT_TEXTS[language]
        if self.billing is None:
            raise DeskError("billing needs the intake pipeline")
        money = money_in(self.pipeline, language)
        if command == "classify":
            ticket = self.billing.classify(ref, words[0].lower(), staff)
            return t["classified"].format(ref=ticket.ref, kind=ticket.kind)
        if command == "cause":
            ticket, billed = self.billing.record_cause(ref, words[0].lower(), staff)
            amount = sum((x.amount for x in billed.lines), Decimal(0)) if billed else Decimal(0)
            return t["caused"].format(ref=ticket.ref, cause=ticket.root_cause, kind=ticket.kind,
                                      billed=t["caused_billed"].format(amount=money(amount)) if amount else "")
        hours = words[0].replace(",", ".")
        if command == "quote":
            quote = self.billing.quote(ref, hours, staff, urgent=any(w.lower() in _URGENT for w in words[1:])).quote
            return t["quoted"].format(ref=ref, billed=quote.billed_hours, rate=money(quote.rate), kind=quote.rate_kind,
                                      total=money(quote.total))
        diagnosis = len(words) > 1 and words[1].lower() in _DIAGNOSIS
        note = " ".join(words[2:] if diagnosis else words[1:]) or None
        result: HoursResult = self.billing.log_hours(ref, hours, staff, diagnosis=diagnosis, note=note)
        extra = t["renewed"].format(invoices=", ".join(result.renewed_blocks)) if result.renewed_blocks else ""
        if result.separate_invoice:
            extra += t["separate"].format(invoice=result.separate_invoice)
        return t["hours"].format(hours=hours, ref=result.ref, status=t[f"status_{result.status}"], extra=extra)

    def queue(self, language: Language) -> str:
        """/queue: open tickets in queue order (R15), one line each, with the current response deadline (R24);
        an outage marked as the pages are."""
        t = CHAT_TEXTS[language]
        tickets = self.db.run(lambda s: TicketRepository(s).queue(TicketState.OPEN))
        if not tickets:
            return t["empty"]
        lines = []
        for ticket in tickets[:QUEUE_LINES]:
            due = format_when(ticket.current_due, language) if ticket.current_due else "—"
            mark = "🚨 " if ticket.priority == Priority.CRITICAL else ""
            lines.append(f"{mark}{ticket.ref} · {ticket.account or '?'} · {ticket.plan or '-'} · {due}")
        return "\n".join(lines)

    def describe(self, ticket: TicketRecord, language: Language) -> str:
        """/ticket: the ticket, its deadline, its quote and its last messages."""
        t = CHAT_TEXTS[language]
        label = "due_follow_up" if ticket.asked_again else "due"
        due = t[label].format(when=format_when(ticket.current_due, language)) if ticket.current_due else t["no_due"]
        lines = [(f"{ticket.ref} · {ticket.state} · {ticket.account or '?'} ({ticket.contact or '?'}) · "
                  f"{ticket.plan or '-'} · {ticket.channel} · {ticket.kind}"), due]
        if ticket.subject:
            lines.append(ticket.subject)
        if ticket.kind_reasons:
            lines.append(f"{ticket.kind}: {'; '.join(ticket.kind_reasons)}")
        quote = self.db.run(lambda s: BillingRepository(s).current_quote(ticket.id))
        if quote is not None:
            lines.append(t["quote_state"].format(hours=quote.estimated_hours,
                                                 total=money_in(self.pipeline, language)(quote.total),
                                                 state=quote.state))
        for msg in ticket.messages[-5:]:
            arrow = "←" if msg.direction == "in" else "→"
            lines.append(f"{arrow} {msg.text.strip()[:200]}")
        return "\n".join(lines)

    def record(self, kind: str, ref: str, staff: str, language: Language, answer: str,
               data: dict[str, Any] | None = None) -> str:
        """An event on the ticket ``ref`` by ``staff`` (taken, acknowledged, a note); the answer to show."""
        t = CHAT_TEXTS[language]
        try:
            found = self.desk.event(ref, kind, staff, data)
        except DeskError:
            return t["unknown"].format(ref=ref)
        return t[answer].format(ref=found, staff=staff)

    def incident(self, rest: str, update_id: int, language: Language) -> str:
        """/incident NUMBER what happened: a call to the outage line, a critical ticket (R17)."""
        t = CHAT_TEXTS[language]
        if self.pipeline is None or self.pipeline.preset.critical is None:
            return t["no_line"]
        found = _CALLER.match(rest)
        if found is None:
            return t["usage"].format(usage=CHAT_USAGE["incident"])
        try:
            caller = phone_identity(found.group(1))
        except IdentityError:
            return t["usage"].format(usage=CHAT_USAGE["incident"])
        what = found.group(2)
        message = InboundMessage(ChannelName.PHONE, f"telegram-incident-{update_id}", caller, self.now(),
                                 what.strip(), critical=True)
        result = self.pipeline.ingest(message)
        return t["incident"].format(ref=result.ticket_ref or "?")


__all__ = ["StaffConversation", "language_of_update", "parse_command"]
