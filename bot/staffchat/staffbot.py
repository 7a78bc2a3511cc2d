"""The staff chat on Telegram (python-telegram-bot): the queue, answers to customers, reminders.

Only allow-listed staff act: every command checks the Telegram *user* id
(``[telegram] staff_user_ids``; a group's chat id would admit everyone in it),
an empty list refuses everyone, and a refusal is logged. Commands:

- ``/queue``: open tickets in R15 order (critical Premium, critical Business, other critical, Premium, then by
  deadline), an outage marked 🚨;
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
``POST /webhooks/telegram`` (:mod:`bot.web.telegram`) hands what Telegram posts
to :meth:`StaffBot.take_update`. The webhook is registered with
``max_connections=1`` so that Telegram posts updates one at a time, in the
order of their ids, which the once-per-update-id check relies on. Stopping
leaves the webhook set: Telegram keeps what arrives meanwhile and posts it
after the restart.

Several workers on one database (``slabot run`` N times on one PostgreSQL
URL): each sends reminders (claimed row by row, :mod:`bot.reminders`), but only
the worker that holds the lease ``telegram:staff-chat`` (:mod:`bot.leases`)
polls for updates and runs the rounds (announcements, pages, the weekly
summary). It renews the lease every round; when it dies, another worker takes
the lease within ``[database] lease_seconds`` and starts polling. In webhook
mode Telegram posts each update to one of the workers, and the once-per-update-id
check (one statement in the database) lets one handle it.

The Bot API itself is :class:`channels.telegram.TelegramTransport`; the
commands and buttons are :mod:`bot.staffchat.conversation`, what the chat
posts on its own :mod:`bot.staffchat.rounds`, and the sentences
:mod:`bot.staff_texts`.

The bot is also the notifier of :mod:`bot.reminders`: a reminder names the
ticket, its customer and deadline and mentions the assigned staff member; the
breach escalates to the team lead; a missed call during opening hours asks to
"call back NUMBER". When Telegram is down or rate limits, the send raises and
the reminder waits for the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.routing import BaseRoute
from telegram.ext import Application

from bot.config import TelegramConfig
from bot.i18n import Language
from bot.intake import IntakePipeline
from bot.leases import Lease
from bot.lifecycle import HealthReport, StateLog
from bot.reminders import ReminderNotice
from bot.staffchat.conversation import StaffConversation
from bot.staffchat.rounds import StaffRounds
from channels.messages import utc_now
from channels.telegram import TelegramTransport, UpdateSink
from storage.database import Database

log = logging.getLogger(__name__)

ANNOUNCE_EVERY = 2.0  # seconds between two rounds of announcements, pages and the weekly summary
WebhookRoute = Callable[[str | None, UpdateSink], BaseRoute]  # bot.web.telegram.telegram_webhook_route


class StaffBot:
    """The Telegram side of the staff desk; see the module docstring."""

    def __init__(self, config: TelegramConfig, db: Database, *, language: Language = "nl",
                 now: Callable[[], datetime] = utc_now, team_lead: str | None = None,
                 pipeline: IntakePipeline | None = None, announce_every: float | None = ANNOUNCE_EVERY,
                 health: HealthReport | None = None, webhook_route: WebhookRoute | None = None,
                 lease: Lease | None = None) -> None:
        """``announce_every``: seconds between announcement and paging rounds (None: the caller drives them);
        ``health``: told when the rounds fail and work again; ``webhook_route``: what builds
        ``POST /webhooks/telegram`` for :meth:`routes` in webhook mode; ``lease``: several workers share the
        database, and the one that holds this lease polls and runs the rounds (None: this one, always)."""
        assert config.token is not None and config.staff_chat_id is not None
        self.config = config
        self.db = db
        self.language = language
        self.now = now
        self.transport = TelegramTransport(config.token.get_secret_value(), base_url=config.api_base_url,
                                           webhook=config.webhook)
        self.conversation = StaffConversation(db, self.transport, staff_ids=frozenset(config.staff_user_ids),
                                              language=language, now=now, pipeline=pipeline)
        self.rounds = StaffRounds(db, self.transport, chat=config.staff_chat_id,
                                  oncall_chat=config.oncall_chat_id or config.staff_chat_id, language=language,
                                  now=now, team_lead=team_lead, pipeline=pipeline)
        self.transport.handle(messages=self.conversation.on_message, buttons=self.conversation.on_button)
        self.announce_every = announce_every
        self.webhook_route = webhook_route
        self.lease = lease if announce_every is not None else None  # the rounds renew it
        # told when posting fails and works again (the ``health`` report)
        self._posting = StateLog(log, "new tickets wait to be announced: %s", "new tickets are announced again",
                                 health=health)
        self._started = False
        self._announcer: asyncio.Task[None] | None = None

    @property
    def app(self) -> Application[Any, Any, Any, Any, Any, Any]:
        """The python-telegram-bot application under the transport."""
        return self.transport.application

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Take updates (webhook or long polling) and start the announcement rounds."""
        self._started = True
        secret = self.config.webhook_secret
        leading = self.lease is None or await self.lease.renew()
        await self.transport.start(webhook_url=self.config.webhook_url,
                                   webhook_secret=secret.get_secret_value() if secret is not None else None,
                                   poll=leading)
        if self.config.webhook_url is not None:
            log.info("telegram: updates arrive on the webhook %s", self.config.webhook_url)
        if self.announce_every is not None:
            self._announcer = asyncio.create_task(self._announce_loop(), name="telegram-announce")

    async def stop(self) -> None:
        """Stop the rounds, then the updates (idempotent)."""
        if not self._started:
            return
        if self._announcer is not None:
            self._announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._announcer
        await self.transport.stop()
        if self.lease is not None:  # another worker takes over at once
            await self.lease.release()

    # -- webhook ----------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The webhook route for slabot's HTTP app (none while updates come by long polling)."""
        if not self.config.webhook:
            return []
        if self.webhook_route is None:
            raise RuntimeError("webhook mode needs the route builder (bot.web.telegram.telegram_webhook_route)")
        secret = self.config.webhook_secret
        return [self.webhook_route(secret.get_secret_value() if secret is not None else None, self.take_update)]

    async def take_update(self, data: dict[str, Any]) -> None:
        """An update Telegram posted to the webhook, queued for the handlers (raises the transport's
        ``NotAnUpdateError`` and ``TelegramStoppedError``)."""
        await self.transport.put_update(data)

    # -- what the chat posts ------------------------------------------------------------

    async def notify(self, notice: ReminderNotice) -> None:
        """Post a reminder to the staff chat; raises when Telegram cannot take it (the reminder then waits)."""
        await self.rounds.notify(notice)

    async def announce_new(self) -> int:
        """Post every ticket opened, billing event and alert since the checkpoint; how many were posted."""
        return await self.rounds.announce_new()

    async def page_oncall(self) -> int:
        """Page every open, unacknowledged critical ticket whose last page is ``repage_every`` old; how many."""
        return await self.rounds.page_oncall()

    async def post_weekly_report_if_due(self) -> bool:
        """Post last week's summary once a week, from Monday 08:00 on; True when it was posted."""
        return await self.rounds.post_weekly_report_if_due()

    async def post_weekly_report(self) -> None:
        """Post last week's SLA summary with its chart to the staff chat."""
        await self.rounds.post_weekly_report()

    async def _leading(self) -> bool:
        """Whether this worker polls and runs the rounds: it holds the lease (renewed here), or there is none.
        Polling starts when the lease is gained and stops when it is lost."""
        if self.lease is None:
            return True
        held = await self.lease.renew()
        if self.config.webhook_url is None:
            await (self.transport.start_polling() if held else self.transport.stop_polling())
        return held

    async def _announce_loop(self) -> None:
        pause = self.announce_every or ANNOUNCE_EVERY
        if self.lease is not None:
            pause = min(pause, self.lease.renew_every)
        while True:
            try:
                if await self._leading():
                    await self.announce_new()
                    await self.page_oncall()
                    await self.post_weekly_report_if_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Telegram down: the checkpoint waits, nothing is lost
                self._posting.failed(exc)
            else:
                self._posting.worked()
            await asyncio.sleep(pause)


__all__ = ["StaffBot", "WebhookRoute"]
