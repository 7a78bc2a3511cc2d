"""What the staff chat posts on its own: new tickets and follow-up questions (R24), billing notices and alerts,
on-call pages, reminders and the weekly summary.

Announcements follow the audit trail from a checkpoint kept in the database
(:meth:`storage.staffchat.StaffChatRepository.pending_posts`), so none is
lost across a restart (one may repeat if slabot stops between posting it and
moving the checkpoint). Every open critical ticket is paged to the on-call
chat at once and again every ``repage_every`` until someone acknowledges it
(or it gets its first response, R17); pages are events of the trail, so a
restart neither forgets a page nor repeats one early. Every post raises when
Telegram cannot take it (:mod:`channels.telegram.errors`): what was not
posted waits for the next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.i18n import AMSTERDAM, Language, format_span, format_when
from bot.intake import IntakePipeline
from bot.reminders import ReminderNotice, assigned_staff
from bot.staff_texts import ACTION_PHRASES, CHAT_TEXTS, DESK_CHAT_TEXTS
from bot.staffchat.wording import first_words, money_in, who
from channels.telegram import Buttons, TelegramTransport
from sla_engine.errors import PolicyError
from sla_engine.policy import ReminderRule
from storage.database import Database
from storage.records import TicketRecord
from storage.repositories import TicketRepository
from storage.staffchat import (
    ALERT_EVENTS,
    DASHBOARD_ACTION,
    FOLLOW_UP,
    OPENED,
    StaffChatRepository,
)

log = logging.getLogger(__name__)

WEEKLY_HOUR = 8  # the weekly SLA summary goes out on Monday from 08:00 Amsterdam time
REPAGE_EVERY = timedelta(minutes=15)  # without a preset's outage line
ALERT_FIELDS = ("recipient", "error", "status", "attempts", "rounds", "source", "reason", "kept_mail")


def reminder_lead(spec: str, language: Language, left: timedelta | None = None) -> str:
    """Which reminder this is, as the start of its text: "75% of the response time gone; ", "1 hour left; ".

    A reminder a share of the window before the deadline ("1h or 10% before") says the time ``left`` until it."""
    try:
        rule = ReminderRule.parse(spec)
    except PolicyError:  # not a rule of today's preset (a reminder planned under an older one): no lead
        return ""
    t = CHAT_TEXTS[language]
    if rule.fraction is not None:
        return t["reminder_share"].format(share=f"{rule.fraction * 100:.0f}%")
    if rule.share_before is not None and left is not None:
        minutes = timedelta(minutes=max(1, int(left.total_seconds() // 60)))
        return t["reminder_left"].format(left=format_span(minutes, language, "business"))
    if rule.before is not None:
        return t["reminder_left"].format(left=format_span(rule.before, language, "business"))
    return ""


class StaffRounds:
    """The staff chat's posts; see the module docstring."""

    def __init__(self, db: Database, transport: TelegramTransport, *, chat: int, oncall_chat: int,
                 language: Language, now: Callable[[], datetime], team_lead: str | None,
                 pipeline: IntakePipeline | None) -> None:
        self.db = db
        self.transport = transport
        self.chat = chat
        self.oncall_chat = oncall_chat
        self.language = language
        self.now = now
        self.team_lead = team_lead
        self.pipeline = pipeline
        line = pipeline.preset.critical if pipeline is not None else None
        self.repage_every = line.repage_every if line is not None else REPAGE_EVERY
        self._announcing = asyncio.Lock()  # one round at a time: a checkpoint moved by two rounds posts twice

    # -- reminders (R16) ---------------------------------------------------------------

    async def notify(self, notice: ReminderNotice) -> None:
        """Post a reminder to the staff chat; raises when Telegram cannot take it (the reminder then waits)."""
        t = CHAT_TEXTS[self.language]
        about = who(notice.account, notice.plan)
        staff = f" @{notice.staff}" if notice.staff else ""
        when = format_when(notice.deadline, self.language) if notice.deadline else ""
        if notice.callback:  # a missed call during opening hours
            text = t["callback"].format(ref=notice.ticket_ref, who=about, number=notice.callback, staff=staff,
                                        when=format_when(notice.due_at, self.language))
        elif notice.escalate:
            lead = t["lead"].format(lead=f"@{self.team_lead}") if self.team_lead else ""
            text = t["breach_follow_up" if notice.follow_up else "breach"].format(
                ref=notice.ticket_ref, who=about, when=when, staff=staff, lead=lead)
        else:
            due = t["due_follow_up" if notice.follow_up else "due"].format(when=when) if notice.deadline \
                else t["no_due"]
            text = t["reminder_follow_up" if notice.follow_up else "reminder"].format(
                ref=notice.ticket_ref, who=about, due=due, staff=staff, which=reminder_lead(
                    notice.spec, self.language, notice.deadline - notice.due_at if notice.deadline else None))
        await self.transport.send_message(self.chat, text)

    # -- the weekly summary -------------------------------------------------------------

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
        last = await asyncio.to_thread(self.db.run_direct, lambda d: StaffChatRepository(d).weekly_posted())
        if last is not None and last < key:
            await self.post_weekly_report()
        await asyncio.to_thread(self.db.run_direct, lambda d: StaffChatRepository(d).weekly_done(key))
        return last is not None and last < key

    async def post_weekly_report(self) -> None:
        """Post last week's SLA summary with its chart to the staff chat (:func:`bot.reports.weekly_summary`)."""
        from bot.reports import (
            weekly_summary,  # matplotlib loads only when a report is made
        )

        summary = await asyncio.to_thread(weekly_summary, self.db, self.now(), language=self.language)
        await self.transport.send_photo(self.chat, summary.chart, caption=summary.caption, filename=summary.filename)
        if summary.rest:
            await self.transport.send_message(self.chat, summary.rest)

    # -- announcements ------------------------------------------------------------------

    async def announce_new(self) -> int:
        """Post every ticket opened, follow-up question, billing event and alert since the checkpoint; how many were
        posted."""
        async with self._announcing:
            return await self._announce_pending()

    async def _announce_pending(self) -> int:
        pending = await asyncio.to_thread(self.db.run_direct, lambda d: StaffChatRepository(d).pending_posts())
        for post in pending:
            record = None if post.ticket_id is None else await asyncio.to_thread(
                self.db.run, lambda s, i=post.ticket_id: TicketRepository(s).get(i, with_messages=True))
            if post.kind == OPENED and record is not None:
                text, buttons = await self._announcement(record)
                await self.transport.send_message(self.chat, text, buttons=buttons)
            elif post.kind == FOLLOW_UP and record is not None:
                text, buttons = await self._announcement(record, post.data)
                await self.transport.send_message(self.chat, text, buttons=buttons)
            elif post.kind == DASHBOARD_ACTION and record is not None:
                await self.transport.send_message(self.chat, self.dashboard_notice(record, post.data))
            elif post.kind in ALERT_EVENTS:
                await self.transport.send_message(self.chat, self.alert(post.kind, record, post.data))
            elif record is not None:
                await self.transport.send_message(self.chat, self.billing_notice(post.kind, record, post.data))
            await asyncio.to_thread(self.db.run_direct, lambda d, p=post: StaffChatRepository(d).posted(p))
        return len(pending)

    async def _announcement(self, ticket: TicketRecord,
                            follow_up: dict[str, Any] | None = None) -> tuple[str, Buttons]:
        """A new ticket: reference, customer, plan, channel, kind, deadline, assigned staff and an excerpt; with
        ``follow_up`` (the event's data) the customer's follow-up question on it, with its response deadline
        (R24)."""
        t = CHAT_TEXTS[self.language]
        if follow_up is not None:
            deadline = follow_up.get("response_due")
            due = (t["due_follow_up"].format(when=format_when(datetime.fromisoformat(deadline), self.language))
                   if deadline else t["no_due"])
        else:
            due = (t["due"].format(when=format_when(ticket.first_response_due, self.language))
                   if ticket.first_response_due else t["no_due"])
        account_staff = await asyncio.to_thread(
            self.db.read_direct, lambda d: StaffChatRepository(d).account_staff(ticket.account_id))
        staff = assigned_staff(ticket.terms, account_staff)
        excerpt = first_words(ticket, None if follow_up is None else follow_up.get("message"))
        text = t["new" if follow_up is None else "follow_up"].format(
            ref=ticket.ref, who=who(ticket.account, ticket.plan), channel=ticket.channel, kind=ticket.kind, due=due,
            staff=f" @{staff}" if staff else "", excerpt=excerpt)
        return text, [[(t["take"], f"take:{ticket.ref}"), (t["reply_button"], f"reply:{ticket.ref}"),
                       (t["resolve"], f"resolve:{ticket.ref}")]]

    def alert(self, kind: str, ticket: TicketRecord | None, data: dict[str, Any]) -> str:
        """What staff are told about a message not sent, a bounce, a mail kept aside or skipped."""
        t = CHAT_TEXTS[self.language]
        values: dict[str, Any] = {"ref": t["no_ticket"], "who": "?", **{key: "?" for key in ALERT_FIELDS}}
        values.update({k: v for k, v in data.items() if v is not None})
        if ticket is not None:
            values["ref"] = ticket.ref
            values["who"] = who(ticket.account, ticket.contact)
        values["error"] = " ".join(str(values["error"]).split())[:300]
        if isinstance(data.get("due"), str):  # a deadline, as staff read one
            values["due"] = format_when(datetime.fromisoformat(data["due"]), self.language)
        return t[kind].format(**values)

    def dashboard_notice(self, ticket: TicketRecord, data: dict[str, Any]) -> str:
        """What staff are told about an action done in the dashboard (the action's own phrase)."""
        phrase = ACTION_PHRASES[self.language].get(str(data.get("action")), "{action}")
        values = {key: str(value) for key, value in data.items()}
        try:
            what = phrase.format(**values)
        except KeyError:  # an event of another version: its name is enough
            what = str(data.get("action"))
        return DESK_CHAT_TEXTS[self.language].format(staff=data.get("staff", "?"), ref=ticket.ref,
                                                     who=who(ticket.account, ticket.plan), what=what)

    def billing_notice(self, kind: str, ticket: TicketRecord, data: dict[str, Any]) -> str:
        """What staff are told about a quote answered, a punch card renewed or a separate invoice."""
        money = money_in(self.pipeline, self.language)
        values = {"ref": ticket.ref, "who": who(ticket.account, ticket.plan), **data}
        for key in ("total", "amount", "price", "threshold"):
            if key in values:
                values[key] = money(values[key])
        return CHAT_TEXTS[self.language][kind].format(**values)

    # -- on-call pages (R17) ------------------------------------------------------------

    async def page_oncall(self) -> int:
        """Page every open, unacknowledged critical ticket whose last page is ``repage_every`` old; how many."""
        now = self.now()
        due = await asyncio.to_thread(self.db.run_direct,
                                      lambda d: StaffChatRepository(d).pages_due(now, self.repage_every))
        t = CHAT_TEXTS[self.language]
        for page in due:
            record = await asyncio.to_thread(self.db.run, lambda s, i=page.ticket_id: TicketRepository(s).get(
                i, with_messages=True))
            text = t["page"].format(ref=page.ref, who=page.account or "?", excerpt=first_words(record),
                                    count=page.pages + 1)
            await self.transport.send_message(self.oncall_chat, text, buttons=[[(t["ack"], f"ack:{page.ref}")]])
            await asyncio.to_thread(self.db.run_direct, lambda d, p=page: StaffChatRepository(d).paged(
                p.ticket_id, p.pages + 1, self.oncall_chat, self.now()))
        return len(due)


__all__ = ["WEEKLY_HOUR", "StaffRounds", "reminder_lead"]
