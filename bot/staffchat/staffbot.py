"""The staff chat on Telegram (python-telegram-bot): the queue, answers to customers, reminders.

Only allow-listed staff act: every command checks the Telegram *user* id
(``[telegram] staff_user_ids``; a group's chat id would admit everyone in it),
an empty list refuses everyone, and a refusal is logged. Commands:

- ``/queue``: open tickets by deadline, Premium first (R15);
- ``/ticket REF``: one ticket, its deadlines and its last messages;
- ``/take REF``: the ticket is yours (recorded in its audit trail);
- ``/reply REF text`` (or a reply to the bot's message about a ticket): the
  customer gets ``text`` over the ticket's own channel through the outbox; the
  first staff reply records the first response (R8) and cancels the reminders;
- ``/clarify REF text``: a question to the customer; the resolution clock waits
  for the answer (R14);
- ``/resolve REF``, ``/note REF text``, ``/help``.

Each command runs once per Telegram update id, even when Telegram delivers an
update again after a restart. Answers are in the staff member's language
(Telegram's ``language_code``: Dutch or English).

Every new ticket is announced in the staff chat (reference, customer, plan,
channel, deadline, kind and an excerpt) with buttons to take or resolve it;
answering the announcement answers the customer. Announcements follow the
audit trail (``ticket_opened`` events) from a checkpoint kept in the
database, so none is lost across a restart (one may repeat if slabot stops
between posting it and moving the checkpoint).

Critical incidents (R17): ``/incident NUMBER what happened`` logs a call to
the outage line and opens a critical ticket (calendar clock); every open
critical ticket is paged to the on-call chat at once and again every
``repage_every`` (15 minutes) until someone presses "acknowledge" (or the
ticket gets its first response). Pages are events in the audit trail, so a
restart neither forgets a page nor repeats one early.

Updates arrive by long polling (the default; starting it deletes any webhook
Telegram still has) or, with ``[telegram] webhook_url`` and ``webhook_secret``,
on slabot's own HTTP app: start registers the webhook with its secret, and
``POST /webhooks/telegram`` takes an update only with that secret in
``X-Telegram-Bot-Api-Secret-Token`` (403 otherwise, nothing done), queues it
for the application and answers 200 at once. The webhook is registered with
``max_connections=1`` so that Telegram posts updates one at a time, in the
order of their ids, which the once-per-update-id check relies on. Stopping
leaves the webhook set: Telegram keeps what arrives meanwhile and posts it
after the restart.

The bot is also the notifier of :mod:`bot.reminders`: a reminder names the
ticket, its customer and deadline and mentions the assigned staff member; the
breach escalates to the team lead; a missed call during opening hours asks to
"call back NUMBER". When Telegram is down or rate limits, the send raises and
the reminder waits for the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import ForceReply, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.billing import Billing, HoursResult
from bot.config import TelegramConfig
from bot.desk import Desk, DeskError
from bot.i18n import AMSTERDAM, Language, format_span, format_when
from bot.texts import money_text
from bot.intake import IntakePipeline
from bot.reminders import ReminderNotice, assigned_staff
from bot.web.limits import PayloadTooLarge, read_limited
from channels.identity import IdentityError, phone_identity
from channels.messages import ChannelName, InboundMessage, utc_now
from sla_engine.errors import PolicyError
from sla_engine.policy import ReminderRule
from storage import models as m
from storage.billing import BillingRepository
from storage.database import Database
from storage.direct import Direct
from storage.records import TicketRecord
from storage.repositories import AccountRepository, TicketRepository, counter, raise_counter

log = logging.getLogger(__name__)

# PTB 22 reads time periods as timedelta only when asked to; otherwise RetryAfter warns while it is built
os.environ.setdefault("PTB_TIMEDELTA", "1")

ANNOUNCED = "telegram:announced"  # the last ticket_opened event announced
WEEKLY = "telegram:weekly_report"  # the ISO week (year * 100 + week) whose Monday summary was posted
WEEKLY_HOUR = 8  # the weekly SLA summary goes out on Monday from 08:00 Amsterdam time
WEBHOOK_PATH = "/webhooks/telegram"
MAX_UPDATE_BYTES = 256 * 1024  # an update is a few KB: a 4096-character message with the one it replies to
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_REF = re.compile(r"\b([A-Z]{1,5}-\d{3,})\b", re.IGNORECASE)
_CALLER = re.compile(r"^\s*(\+?\d[\d\s().-]{5,}\d)\s+(\S.*)$", re.DOTALL)  # "06 34 89 08 78 what happened"

TEXTS: dict[str, dict[str, str]] = {
    "nl": {
        "refused": "Je staat niet op de lijst van medewerkers; vraag een beheerder om je Telegram-id {user} toe "
                   "te voegen.",
        "help": "Opdrachten:\n/queue — open tickets op deadline\n/ticket REF — één ticket\n/take REF — oppakken\n/reply REF tekst — "
                "antwoord aan de klant\n/clarify REF vraag — vraag de klant om verduidelijking\n/resolve REF — "
                "afgehandeld\n/note REF tekst — interne notitie\n/classify REF support|service — gratis of betaald\n/cause REF "
                "platform|outside — oorzaak na diagnose\n/quote REF uren [spoed] — urenindicatie naar de klant\n"
                "/hours REF uren [diagnose] [notitie] — uren schrijven\n/release REF [uit] — wacht op een release "
                "(buiten de oplostermijn)\n/incident NUMMER wat er is — storing",
        "empty": "Geen open tickets.",
        "usage": "Gebruik: {usage}",
        "unknown": "Onbekend ticket {ref}.",
        "replied": "Verstuurd naar de klant van {ref}{first}.",
        "first": " (eerste reactie vastgelegd, herinneringen gestopt)",
        "clarified": "Vraag verstuurd; {ref} wacht op de klant.",
        "resolved": "{ref} is afgehandeld.",
        "noted": "Notitie bij {ref} vastgelegd.",
        "release_on": "{ref} wacht op een release: buiten de oplostermijn (R13).",
        "release_off": "{ref} wacht niet meer op een release: weer binnen de oplostermijn.",
        "release_kept": "{ref} wacht op een release; het plan houdt de oplostermijn toch aan (uiterlijk {when}).",
        "due": "eerste reactie uiterlijk {when}",
        "no_due": "geen reactietermijn",
        "reminder": "⏰ {ref} ({who}): {which}{due}{staff}",
        "breach": "🚨 {ref} ({who}): de termijn voor de eerste reactie is verstreken ({when}){staff}{lead}",
        "lead": " — escalatie naar {lead}",
        "new": "🆕 {ref} · {who} · {channel} · {kind}\n{due}{staff}\n{excerpt}",
        "take": "Oppakken",
        "reply_button": "Antwoorden",
        "reply_prompt": "{ref}: antwoord op dit bericht met de tekst voor de klant.",
        "resolve": "Afhandelen",
        "taken": "{ref} opgepakt door @{staff}.",
        "page": "🚨 STORING {ref} · {who}\n{excerpt}\nPagina {count}; bevestig met de knop.",
        "ack": "Bevestigen",
        "acked": "{ref}: storing bevestigd door @{staff}; het oproepen stopt.",
        "incident": "Storing vastgelegd als {ref}; on-call wordt opgeroepen.",
        "no_line": "Deze preset heeft geen storingslijn.",
        "classified": "{ref} is nu {kind}.",
        "caused": "{ref}: oorzaak {cause}, dus {kind}{billed}.",
        "caused_billed": "; diagnose-uren gefactureerd: {amount}",
        "quoted": "Urenindicatie voor {ref} verstuurd: {billed} uur à {rate} ({kind}) = {total}; wacht op akkoord.",
        "hours": "{hours} uur geschreven op {ref}: {status}.{extra}",
        "status_free": "gratis support", "status_not_agreed": "niet factureerbaar, de klant gaf nog geen akkoord",
        "status_awaiting_cause": "diagnose, wacht op de oorzaak (/cause)", "status_billed": "gefactureerd",
        "renewed": " Strippenkaart op: nieuw blok gefactureerd ({invoices}).",
        "separate": " Boven de drempel: direct apart gefactureerd ({invoice}).",
        "quote_state": "urenindicatie: {hours} uur, {total} — {state}",
        "quote_agreed": "✅ {ref} ({who}): de klant gaf akkoord op de urenindicatie ({hours} uur, {total}).",
        "quote_declined": "✖️ {ref} ({who}): de klant ziet af van de urenindicatie ({hours} uur).",
        "separate_invoice": "💶 {ref} ({who}): boven {threshold}: direct apart gefactureerd, factuur {invoice} "
                            "({amount}, te betalen uiterlijk {due_on}).",
        "punch_card_renewed": "💳 {ref} ({who}): strippenkaart op; nieuw blok {block} van {hours} uur gefactureerd "
                              "({invoice}, {price}). De klant is ingelicht.",
        "callback": "📞 {ref} ({who}): bel {number} terug — gemiste oproep op {when}{staff}",
        "message_needs_staff": "✋ {ref} ({who}): het bericht aan {recipient} kon niet automatisch verstuurd worden "
                               "({error}); neem zelf contact op.",
        "message_failed": "❌ {ref} ({who}): het bericht aan {recipient} is niet verstuurd ({error}).",
        "message_unknown": "❓ {ref} ({who}): onbekend of het bericht aan {recipient} aankwam ({error}); het is niet "
                           "opnieuw verstuurd, kijk het na.",
        "message_bounced": "↩️ {ref} ({who}): de mail aan {recipient} kwam terug ({status}); dat adres krijgt geen "
                           "automatische antwoorden meer tot het is vrijgegeven.",
        "attachment_failed": "📎 {ref} ({who}): een bijlage kon na {attempts} pogingen niet opgehaald worden ({error}).",
        "mail_kept_aside": "📥 Een mail ({source}) is apart gezet: {reason}. Niemand is beantwoord; zie "
                           "\"Re-processing a mail kept aside\" in docs/operations.md (kept_mail {kept_mail}).",
        "mail_skipped": "📥 Een mail ({source}) kon na {rounds} pogingen niet verwerkt worden ({error}); hij blijft "
                        "ongelezen in de mailbox, de mail erna gaat door.",
        "no_ticket": "geen ticket",
    },
    "en": {
        "refused": "You are not on the staff list; ask an administrator to add your Telegram id {user}.",
        "help": "Commands:\n/queue — open tickets by deadline\n/ticket REF — one ticket\n/take REF — take it\n/reply REF text — answer "
                "the customer\n/clarify REF question — ask the customer to clarify\n/resolve REF — resolved\n"
                "/note REF text — internal note\n/classify REF support|service — free or paid\n/cause REF "
                "platform|outside — root cause after diagnosis\n/quote REF hours [urgent] — estimate to the customer\n"
                "/hours REF hours [diagnosis] [note] — log time\n/release REF [off] — waits for a release (off the "
                "resolution clock)\n/incident NUMBER what happened — outage",
        "empty": "No open tickets.",
        "usage": "Usage: {usage}",
        "unknown": "Unknown ticket {ref}.",
        "replied": "Sent to the customer of {ref}{first}.",
        "first": " (first response recorded, reminders stopped)",
        "clarified": "Question sent; {ref} waits for the customer.",
        "resolved": "{ref} is resolved.",
        "noted": "Note on {ref} recorded.",
        "release_on": "{ref} waits for a release: off the resolution clock (R13).",
        "release_off": "{ref} no longer waits for a release: back on the resolution clock.",
        "release_kept": "{ref} waits for a release; the plan keeps its resolution target anyway (by {when}).",
        "due": "first response due {when}",
        "no_due": "no response deadline",
        "reminder": "⏰ {ref} ({who}): {which}{due}{staff}",
        "breach": "🚨 {ref} ({who}): the first-response deadline has passed ({when}){staff}{lead}",
        "lead": " — escalated to {lead}",
        "new": "🆕 {ref} · {who} · {channel} · {kind}\n{due}{staff}\n{excerpt}",
        "take": "Take",
        "reply_button": "Reply",
        "reply_prompt": "{ref}: reply to this message with the text for the customer.",
        "resolve": "Resolve",
        "taken": "{ref} taken by @{staff}.",
        "page": "🚨 OUTAGE {ref} · {who}\n{excerpt}\nPage {count}; acknowledge with the button.",
        "ack": "Acknowledge",
        "acked": "{ref}: outage acknowledged by @{staff}; paging stops.",
        "incident": "Outage logged as {ref}; on-call is being paged.",
        "no_line": "This preset has no outage line.",
        "classified": "{ref} is now {kind}.",
        "caused": "{ref}: root cause {cause}, so {kind}{billed}.",
        "caused_billed": "; diagnosis hours billed: {amount}",
        "quoted": "Estimate for {ref} sent: {billed} h at {rate} ({kind}) = {total}; waiting for agreement.",
        "hours": "{hours} h logged on {ref}: {status}.{extra}",
        "status_free": "free support", "status_not_agreed": "not billable, the customer has not agreed yet",
        "status_awaiting_cause": "diagnosis, waiting for the root cause (/cause)", "status_billed": "billed",
        "renewed": " Punch card used up: new block invoiced ({invoices}).",
        "separate": " Above the threshold: invoiced at once, separately ({invoice}).",
        "quote_state": "estimate: {hours} h, {total} — {state}",
        "quote_agreed": "✅ {ref} ({who}): the customer agreed to the estimate ({hours} h, {total}).",
        "quote_declined": "✖️ {ref} ({who}): the customer declined the estimate ({hours} h).",
        "separate_invoice": "💶 {ref} ({who}): above {threshold}: invoiced at once, separately, invoice {invoice} "
                            "({amount}, due {due_on}).",
        "punch_card_renewed": "💳 {ref} ({who}): punch card used up; new block {block} of {hours} h invoiced "
                              "({invoice}, {price}). The customer has been told.",
        "callback": "📞 {ref} ({who}): call back {number} — missed call on {when}{staff}",
        "message_needs_staff": "✋ {ref} ({who}): the message to {recipient} could not be sent automatically "
                               "({error}); contact them yourself.",
        "message_failed": "❌ {ref} ({who}): the message to {recipient} was not sent ({error}).",
        "message_unknown": "❓ {ref} ({who}): unknown whether the message to {recipient} arrived ({error}); it was "
                           "not sent again, check it.",
        "message_bounced": "↩️ {ref} ({who}): the mail to {recipient} bounced ({status}); that address gets no "
                           "automatic replies until it is cleared.",
        "attachment_failed": "📎 {ref} ({who}): an attachment could not be fetched after {attempts} attempts "
                             "({error}).",
        "mail_kept_aside": "📥 A mail ({source}) was kept aside: {reason}. Nobody was answered; see \"Re-processing "
                           "a mail kept aside\" in docs/operations.md (kept_mail {kept_mail}).",
        "mail_skipped": "📥 A mail ({source}) could not be processed after {rounds} rounds ({error}); it stays unread "
                        "in the mailbox, the mail after it goes on.",
        "no_ticket": "no ticket",
    },
}

USAGE = {"ticket": "/ticket REF", "take": "/take REF", "incident": "/incident NUMBER what happened",
         "reply": "/reply REF text", "clarify": "/clarify REF question",
         "resolve": "/resolve REF", "note": "/note REF text", "classify": "/classify REF support|service",
         "cause": "/cause REF platform|outside", "quote": "/quote REF hours [urgent]",
         "hours": "/hours REF hours [diagnosis] [note]", "release": "/release REF [off]"}
BILLING_EVENTS = ("quote_agreed", "quote_declined", "separate_invoice", "punch_card_renewed")  # staff are told
# events that say "staff_told": posted to the staff chat, with or without a ticket
ALERT_EVENTS = ("message_needs_staff", "message_failed", "message_unknown", "message_bounced", "attachment_failed",
                "mail_kept_aside", "mail_skipped")
_URGENT = {"urgent", "spoed"}
_OFF = {"off", "uit", "clear", "nee", "no"}
_DIAGNOSIS = {"diagnosis", "diagnose"}



def _language(update: Update, default: Language) -> Language:
    user = update.effective_user
    code = (user.language_code or "") if user else ""
    if code.startswith("en"):
        return "en"
    if code.startswith("nl"):
        return "nl"
    return default


class StaffBot:
    """The Telegram side of the staff desk; see the module docstring."""

    def __init__(self, config: TelegramConfig, db: Database, *, language: Language = "nl",
                 now: Callable[[], datetime] = utc_now, team_lead: str | None = None,
                 pipeline: IntakePipeline | None = None, announce_every: float | None = 2.0) -> None:
        """``announce_every``: seconds between announcement and paging rounds (None: the caller drives them)."""
        assert config.token is not None and config.staff_chat_id is not None
        self.config = config
        self.db = db
        self.desk = Desk(db, now)
        self.language = language
        self.now = now
        self.team_lead = team_lead
        self.staff_ids = frozenset(config.staff_user_ids)
        self.pipeline = pipeline
        self.billing = Billing(db, pipeline.preset, texts=pipeline.texts, now=now) if pipeline is not None else None
        line = pipeline.preset.critical if pipeline is not None else None
        self.repage_every = line.repage_every if line is not None else timedelta(minutes=15)
        builder = Application.builder().token(config.token.get_secret_value())
        if config.api_base_url:
            builder = builder.base_url(f"{config.api_base_url}/bot").base_file_url(f"{config.api_base_url}/file/bot")
        if config.webhook:
            builder = builder.updater(None)  # updates come through :meth:`webhook_update`, not PTB's own server
        self.app: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self.app.add_handler(MessageHandler(filters.COMMAND | filters.REPLY, self._on_message))
        self.app.add_handler(CallbackQueryHandler(self._on_button))
        self._started = False
        self._announcer: asyncio.Task[None] | None = None
        self.announce_every = announce_every
        self.health: Callable[[str, str | None], None] | None = None  # told when posting fails and works again
        self._announcing = asyncio.Lock()  # one round at a time: a checkpoint moved by two rounds posts twice

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Take updates (webhook or long polling) and start the announcement rounds."""
        self._started = True
        await self.app.initialize()
        await self.app.start()
        if self.config.webhook_url is not None:
            assert self.config.webhook_secret is not None
            await self.app.bot.set_webhook(self.config.webhook_url,
                                           secret_token=self.config.webhook_secret.get_secret_value(),
                                           max_connections=1, drop_pending_updates=False)
            log.info("telegram: updates arrive on the webhook %s", self.config.webhook_url)
        else:
            assert self.app.updater is not None
            # start_polling deletes the webhook first, so switching back to polling needs nothing more
            await self.app.updater.start_polling(poll_interval=0.2, timeout=timedelta(seconds=10),
                                                 drop_pending_updates=False)
        if self.announce_every is not None:
            self._announcer = asyncio.create_task(self._announce_loop(), name="telegram-announce")

    async def stop(self) -> None:
        if not self._started:
            return
        if self._announcer is not None:
            self._announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._announcer
        updater = self.app.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    # -- webhook ----------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The webhook route for slabot's HTTP app (none while updates come by long polling)."""
        return [Route(WEBHOOK_PATH, self.webhook_update, methods=["POST"])] if self.config.webhook else []

    async def webhook_update(self, request: Request) -> Response:
        """One update posted by Telegram: checked, queued for the handlers, answered at once."""
        secret = self.config.webhook_secret
        given = request.headers.get(SECRET_HEADER, "").encode("latin-1")  # the bytes as sent
        if secret is None or not hmac.compare_digest(given, secret.get_secret_value().encode("utf-8")):
            log.warning("telegram webhook: refused a request with a missing or wrong secret token")
            return PlainTextResponse("wrong secret token", status_code=403)
        try:
            body = await read_limited(request, MAX_UPDATE_BYTES)
        except PayloadTooLarge:
            return PlainTextResponse(f"update larger than {MAX_UPDATE_BYTES} bytes", status_code=413)
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("not an update")
            update = Update.de_json(data, self.app.bot)
        except (ValueError, TypeError, KeyError) as exc:  # json.JSONDecodeError and UnicodeDecodeError included
            log.warning("telegram webhook: not an update (%s)", exc)
            return PlainTextResponse("not a Telegram update", status_code=400)
        if not self.app.running:
            return PlainTextResponse("the staff chat is not running", status_code=503)  # Telegram posts it again
        await self.app.update_queue.put(update)
        return Response(status_code=200)

    # -- reminders (R16) ---------------------------------------------------------------

    async def notify(self, notice: ReminderNotice) -> None:
        """Post a reminder to the staff chat; raises when Telegram cannot take it (the reminder then waits)."""
        t = TEXTS[self.language]
        who = ", ".join(x for x in (notice.account, notice.plan) if x) or "?"
        staff = f" @{notice.staff}" if notice.staff else ""
        when = format_when(notice.deadline, self.language) if notice.deadline else ""
        if notice.callback:  # a missed call during opening hours
            text = t["callback"].format(ref=notice.ticket_ref, who=who, number=notice.callback, staff=staff,
                                        when=format_when(notice.due_at, self.language))
        elif notice.escalate:
            lead = t["lead"].format(lead=f"@{self.team_lead}") if self.team_lead else ""
            text = t["breach"].format(ref=notice.ticket_ref, who=who, when=when, staff=staff, lead=lead)
        else:
            due = t["due"].format(when=when) if notice.deadline else t["no_due"]
            text = t["reminder"].format(ref=notice.ticket_ref, who=who, due=due, staff=staff,
                                        which=_reminder_which(notice.spec, self.language))
        await self.app.bot.send_message(self.config.staff_chat_id, text)

    async def post_weekly_report_if_due(self) -> bool:
        """Post last week's summary once a week, from Monday WEEKLY_HOUR on; True when it was posted.

        The week posted is kept in the database (``telegram:weekly_report``), so a restart or a second process
        does not post it again (one may repeat if slabot stops between posting and recording it). The first
        start only records the current week: the first summary follows on the next Monday.
        """
        local = self.now().astimezone(AMSTERDAM)
        year, week, weekday = local.isocalendar()
        if weekday == 1 and local.hour < WEEKLY_HOUR:
            return False
        key = year * 100 + week
        last = await asyncio.to_thread(self.db.run_direct, lambda d: counter(d, WEEKLY))
        if last is not None and last < key:
            await self.post_weekly_report()
        await asyncio.to_thread(self.db.run_direct, lambda d: raise_counter(d, WEEKLY, key))
        return last is not None and last < key

    async def post_weekly_report(self) -> None:
        """Post last week's SLA summary with its chart to the staff chat (:func:`bot.reports.weekly_summary`)."""
        from bot.reports import weekly_summary  # matplotlib loads only when a report is made

        summary = await asyncio.to_thread(weekly_summary, self.db, self.now(), language=self.language)
        await self.app.bot.send_photo(self.config.staff_chat_id, summary.chart, caption=summary.caption,
                                      filename=summary.filename)
        if summary.rest:
            await self.app.bot.send_message(self.config.staff_chat_id, summary.rest)

    # -- announcements ----------------------------------------------------------------

    async def _announce_loop(self) -> None:
        failing = False
        while True:
            try:
                await self.announce_new()
                await self.page_oncall()
                await self.post_weekly_report_if_due()
                if failing and self.health is not None:
                    self.health("up", None)
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Telegram down: the checkpoint waits, nothing is lost
                if not failing:
                    log.warning("new tickets wait to be announced: %s: %s", exc.__class__.__name__, exc)
                    failing = True
                if self.health is not None:
                    self.health("down", f"{exc.__class__.__name__}: {exc}")
            await asyncio.sleep(self.announce_every or 2.0)

    async def announce_new(self) -> int:
        """Post every ticket opened, billing event and alert since the checkpoint; how many were posted."""
        async with self._announcing:
            return await self._announce_pending()

    async def _announce_pending(self) -> int:
        pending = await asyncio.to_thread(self.db.run_direct, _opened_since_checkpoint)
        posted = 0
        for event_id, ticket_id, kind, data in pending:
            record = None if ticket_id is None else await asyncio.to_thread(
                self.db.run, lambda s, i=ticket_id: TicketRepository(s).get(i, with_messages=True))
            if kind == "ticket_opened" and record is not None:
                text, buttons = self._announcement(record)
                await self.app.bot.send_message(self.config.staff_chat_id, text, reply_markup=buttons)
            elif kind in ALERT_EVENTS:
                await self.app.bot.send_message(self.config.staff_chat_id, self._alert(kind, record, data))
            elif record is not None:
                await self.app.bot.send_message(self.config.staff_chat_id, self._billing_notice(kind, record, data))
            await asyncio.to_thread(self.db.run_direct, lambda d, e=event_id: raise_counter(d, ANNOUNCED, e))
            posted += 1
        return posted

    def _alert(self, kind: str, ticket: TicketRecord | None, data: dict[str, Any]) -> str:
        """What staff are told about a message not sent, a bounce, a mail kept aside or skipped."""
        t = TEXTS[self.language]
        values: dict[str, Any] = {"ref": t["no_ticket"], "who": "?", "recipient": "?", "error": "?", "status": "?",
                                  "attempts": "?", "rounds": "?", "source": "?", "reason": "?", "kept_mail": "?"}
        values.update({k: v for k, v in data.items() if v is not None})
        if ticket is not None:
            values["ref"] = ticket.ref
            values["who"] = ", ".join(x for x in (ticket.account, ticket.contact) if x) or "?"
        values["error"] = " ".join(str(values["error"]).split())[:300]
        return t[kind].format(**values)

    async def page_oncall(self) -> int:
        """Page every open, unacknowledged critical ticket whose last page is ``repage_every`` old; how many."""
        now = self.now()
        due = await asyncio.to_thread(self.db.run_direct, lambda d: _pages_due(d, now, self.repage_every))
        chat = self.config.oncall_chat_id or self.config.staff_chat_id
        t = TEXTS[self.language]
        for ticket_id, ref, who, pages in due:
            record = await asyncio.to_thread(self.db.run, lambda s, i=ticket_id: TicketRepository(s).get(
                i, with_messages=True))
            first_in = next((msg for msg in record.messages if msg.direction == "in"), None)
            excerpt = " ".join((first_in.text if first_in else record.subject or "").split())[:300]
            button = InlineKeyboardMarkup([[InlineKeyboardButton(t["ack"], callback_data=f"ack:{ref}")]])
            await self.app.bot.send_message(chat, t["page"].format(ref=ref, who=who or "?", excerpt=excerpt,
                                                                   count=pages + 1), reply_markup=button)
            await asyncio.to_thread(self.db.run_direct, lambda d, i=ticket_id, n=pages + 1: d.insert(
                m.Event.__table__, {"kind": "critical_paged", "at": self.now(), "ticket_id": i, "actor": "slabot",
                                    "data": {"page": n, "chat": chat}}))
        return len(due)

    def _record(self, kind: str, ref: str, staff: str, language: Language, answer: str,
                data: dict[str, Any] | None = None) -> str:
        """An event on the ticket ``ref`` by ``staff`` (taken, acknowledged, a note); the answer to show."""
        def work(s: Session) -> str | None:
            tickets = TicketRepository(s)
            ticket = tickets.by_ref(ref)
            if ticket is None:
                return None
            tickets.add_event(kind, self.now(), ticket_id=ticket.id, actor=staff, data=data)
            return ticket.ref

        found = self.db.run(work)
        t = TEXTS[language]
        return t["unknown"].format(ref=ref) if found is None else t[answer].format(ref=found, staff=staff)

    def _incident(self, rest: str, update_id: int, language: Language) -> str:
        t = TEXTS[language]
        if self.pipeline is None or self.pipeline.preset.critical is None:
            return t["no_line"]
        found = _CALLER.match(rest)
        if found is None:
            return t["usage"].format(usage=USAGE["incident"])
        try:
            caller = phone_identity(found.group(1))
        except IdentityError:
            return t["usage"].format(usage=USAGE["incident"])
        what = found.group(2)
        message = InboundMessage(ChannelName.PHONE, f"telegram-incident-{update_id}", caller, self.now(),
                                 what.strip(), critical=True)
        result = self.pipeline.ingest(message)
        return t["incident"].format(ref=result.ticket_ref or "?")

    def _announcement(self, ticket: TicketRecord) -> tuple[str, InlineKeyboardMarkup]:
        t = TEXTS[self.language]
        due = (t["due"].format(when=format_when(ticket.first_response_due, self.language))
               if ticket.first_response_due else t["no_due"])
        first_in = next((msg for msg in ticket.messages if msg.direction == "in"), None)
        excerpt = " ".join((first_in.text if first_in else ticket.subject or "").split())[:300]
        staff = assigned_staff(ticket.terms, self.db.run(lambda s: _account_staff(s, ticket.account_id)))
        text = t["new"].format(ref=ticket.ref, who=", ".join(x for x in (ticket.account, ticket.plan) if x) or "?",
                               channel=ticket.channel, kind=ticket.kind, due=due,
                               staff=f" @{staff}" if staff else "", excerpt=excerpt)
        buttons = InlineKeyboardMarkup([[InlineKeyboardButton(t["take"], callback_data=f"take:{ticket.ref}"),
                                         InlineKeyboardButton(t["reply_button"], callback_data=f"reply:{ticket.ref}"),
                                         InlineKeyboardButton(t["resolve"], callback_data=f"resolve:{ticket.ref}")]])
        return text, buttons

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        user = update.effective_user
        if query is None or user is None or not query.data:
            return
        if not await asyncio.to_thread(self.db.run_direct, lambda d: _first_time(d, update.update_id)):
            return  # a button press delivered again: done once already
        language = _language(update, self.language)
        t = TEXTS[language]
        if user.id not in self.staff_ids:
            log.warning("telegram: %s (id %s) is not on the staff list; button refused", user.username, user.id)
            await query.answer(t["refused"].format(user=user.id), show_alert=True)
            return
        action, _, ref = query.data.partition(":")
        staff = user.username or str(user.id)
        answer: str | None = None
        try:
            if action == "take":
                answer = await asyncio.to_thread(self._record, "taken", ref, staff, language, "taken")
            elif action == "ack":
                answer = await asyncio.to_thread(self._record, "critical_acknowledged", ref, staff, language, "acked")
            elif action == "resolve":
                answer = await asyncio.to_thread(self._act, "resolve", ref, "", staff, language)
            elif action == "reply" and isinstance(query.message, Message):
                # the answer to this prompt names the ticket, so it goes to the customer like /reply
                await query.answer()
                await query.message.reply_text(t["reply_prompt"].format(ref=ref),
                                               reply_markup=ForceReply(selective=True))
                return
        except DeskError as exc:
            answer = str(exc)
        await query.answer(answer or "")
        if answer and isinstance(query.message, Message):
            await query.message.reply_text(answer)

    # -- commands -------------------------------------------------------------------

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        user = update.effective_user
        if message is None or user is None or not message.text:
            return
        if not await asyncio.to_thread(self.db.run_direct, lambda d: _first_time(d, update.update_id)):
            return  # delivered again after a restart: done once already
        language = _language(update, self.language)
        t = TEXTS[language]
        if user.id not in self.staff_ids:
            log.warning("telegram: %s (id %s) is not on the staff list; refused: %r", user.username or user.full_name,
                        user.id, message.text[:80])
            if message.text.startswith("/"):
                await message.reply_text(t["refused"].format(user=user.id))
            return
        staff = user.username or str(user.id)
        command, ref, rest = self._parse(message.text, message.reply_to_message.text
                                         if message.reply_to_message and message.reply_to_message.text else None)
        if command == "incident":
            await message.reply_text(await asyncio.to_thread(self._incident, rest, update.update_id, language))
            return
        answer: str | None
        try:
            answer = await asyncio.to_thread(self._act, command, ref, rest, staff, language)
        except DeskError as exc:
            answer = str(exc)
        if answer:
            await message.reply_text(answer)

    @staticmethod
    def _parse(text: str, replied_to: str | None) -> tuple[str, str | None, str]:
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

    def _act(self, command: str, ref: str | None, rest: str, staff: str, language: Language) -> str | None:
        t = TEXTS[language]
        if command in ("help", "start"):
            return t["help"]
        if command == "queue":
            return self._queue(language)
        if command not in USAGE:
            return t["help"] if command else None
        needs_text = command in ("reply", "clarify", "note", "classify", "cause", "quote", "hours")
        if ref is None or (needs_text and not rest):
            return t["usage"].format(usage=USAGE[command])
        if command in ("classify", "cause", "quote", "hours"):
            return self._billing_command(command, ref, rest.split(), staff, language)
        if command == "take":
            return self._record("taken", ref, staff, language, "taken")
        if command == "ticket":
            ticket = self.db.run(lambda s: TicketRepository(s).by_ref(ref, with_messages=True))
            return t["unknown"].format(ref=ref) if ticket is None else self._describe(ticket, language)
        if command in ("reply", "clarify"):
            result = self.desk.reply(ref, rest, staff, clarify=command == "clarify")
            if command == "clarify":
                return t["clarified"].format(ref=result.ref)
            return t["replied"].format(ref=result.ref, first=t["first"] if result.first_response else "")
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
        assert command == "note"
        return self._record("note", ref, staff, language, "noted", {"text": rest})

    def _billing_command(self, command: str, ref: str, words: list[str], staff: str, language: Language) -> str:
        """/classify, /cause, /quote and /hours (R18-R21), through :class:`bot.billing.Billing`."""
        t = TEXTS[language]
        if self.billing is None:
            raise DeskError("billing needs the intake pipeline")
        money = self._money(language)
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

    def _money(self, language: Language) -> Callable[[Decimal | str], str]:
        billing = self.pipeline.preset.billing if self.pipeline is not None else None
        currency = billing.currency if billing is not None else "EUR"
        return lambda amount: money_text(Decimal(amount), language, currency)

    def _billing_notice(self, kind: str, ticket: TicketRecord, data: dict[str, Any]) -> str:
        """What staff are told about a quote answered, a punch card renewed or a separate invoice."""
        money = self._money(self.language)
        values = {"ref": ticket.ref, "who": ", ".join(x for x in (ticket.account, ticket.plan) if x) or "?", **data}
        for key in ("total", "amount", "price", "threshold"):
            if key in values:
                values[key] = money(values[key])
        return TEXTS[self.language][kind].format(**values)

    def _queue(self, language: Language) -> str:
        t = TEXTS[language]
        tickets = self.db.run(lambda s: TicketRepository(s).queue("open"))
        if not tickets:
            return t["empty"]
        lines = []
        for ticket in tickets[:30]:
            due = format_when(ticket.first_response_due, language) if ticket.first_response_due else "—"
            lines.append(f"{ticket.ref} · {ticket.account or '?'} · {ticket.plan or '-'} · {due}")
        return "\n".join(lines)

    def _describe(self, ticket: TicketRecord, language: Language) -> str:
        t = TEXTS[language]
        due = (t["due"].format(when=format_when(ticket.first_response_due, language))
               if ticket.first_response_due else t["no_due"])
        lines = [f"{ticket.ref} · {ticket.state} · {ticket.account or '?'} ({ticket.contact or '?'}) · "
                 f"{ticket.plan or '-'} · {ticket.channel} · {ticket.kind}", due]
        if ticket.subject:
            lines.append(ticket.subject)
        if ticket.kind_reasons:
            lines.append(f"{ticket.kind}: {'; '.join(ticket.kind_reasons)}")
        quote = self.db.run(lambda s: BillingRepository(s).current_quote(ticket.id))
        if quote is not None:
            lines.append(t["quote_state"].format(hours=quote.estimated_hours, total=self._money(language)(quote.total),
                                                 state=quote.state))
        for msg in ticket.messages[-5:]:
            arrow = "←" if msg.direction == "in" else "→"
            lines.append(f"{arrow} {msg.text.strip()[:200]}")
        return "\n".join(lines)


def _reminder_which(spec: str, language: Language) -> str:
    """Which reminder this is, as the start of its text: "75% of the response time gone; ", "1 hour left; "."""
    try:
        rule = ReminderRule.parse(spec)
    except PolicyError:  # not a rule of today's preset (a reminder planned under an older one): no lead
        return ""
    if rule.fraction is not None:
        share = f"{rule.fraction * 100:.0f}%"
        return f"{share} van de reactietijd is om; " if language == "nl" else f"{share} of the response time gone; "
    if rule.before is not None:
        left = format_span(rule.before, language, "business")
        return f"nog {left} binnen openingstijden; " if language == "nl" else f"{left} of opening hours left; "
    return ""


def _opened_since_checkpoint(d: Direct) -> list[tuple[int, int | None, str, dict[str, Any]]]:
    """(event id, ticket id, kind, data) of tickets opened, billing events and alerts after the checkpoint, oldest
    first; an alert on a message has its ticket and, in its data, the message's recipient."""
    after = counter(d, ANNOUNCED)
    if after is None:  # the first start: from now on, not the whole history
        raise_counter(d, ANNOUNCED, int(d.scalar("SELECT max(id) FROM events") or 0))
        return []
    kinds = ", ".join(f"'{k}'" for k in ("ticket_opened", *BILLING_EVENTS))
    alerts = ", ".join(f"'{k}'" for k in ALERT_EVENTS)
    rows = d.execute(
        "SELECT e.id, coalesce(e.ticket_id, msg.ticket_id), e.kind, e.data, msg.recipient FROM events e "
        "LEFT JOIN messages msg ON msg.id = e.message_id "
        f"WHERE e.id > :after AND ((e.kind IN ({kinds}) AND e.ticket_id IS NOT NULL) OR e.kind IN ({alerts})) "
        "ORDER BY e.id LIMIT 20", {"after": after}).fetchall()
    pending = []
    for event_id, ticket_id, kind, data, recipient in rows:
        values = d.decode(m.Event.__table__, ("data",), (data,))["data"] or {}
        if recipient and "recipient" not in values:
            values["recipient"] = recipient
        pending.append((int(event_id), None if ticket_id is None else int(ticket_id), str(kind), values))
    return pending


def _account_staff(s: Session, account_id: int | None) -> str | None:
    return None if account_id is None else AccountRepository(s).get(account_id).staff


def _pages_due(d: Direct, now: datetime, every: timedelta) -> list[tuple[int, str, str | None, int]]:
    """(ticket id, ref, account, pages so far) of open critical tickets not acknowledged and due a page."""
    rows = d.execute(
        "SELECT t.id, t.ref, a.name, "
        "(SELECT count(*) FROM events e WHERE e.ticket_id = t.id AND e.kind = 'critical_paged'), "
        "(SELECT max(e.at) FROM events e WHERE e.ticket_id = t.id AND e.kind = 'critical_paged') "
        "FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id "
        "WHERE t.priority = 'critical' AND t.state IN ('open', 'waiting', 'unverified') "
        "AND t.first_responded_at IS NULL AND NOT EXISTS (SELECT 1 FROM events e WHERE e.ticket_id = t.id "
        "AND e.kind = 'critical_acknowledged') ORDER BY t.id").fetchall()
    due = []
    for ticket_id, ref, account, pages, last in rows:
        last_at = d.decode(m.Event.__table__, ("at",), (last,))["at"]
        if last_at is None or now - last_at >= every:
            due.append((int(ticket_id), str(ref), account, int(pages)))
    return due


def _first_time(d: Direct, update_id: int) -> bool:
    """Record ``update_id`` as handled; False when it (or a later one) was handled already.

    Telegram numbers updates in increasing order, so the highest handled id is enough.
    """
    return raise_counter(d, "telegram:update", update_id)


__all__ = ["StaffBot", "TEXTS"]
