"""The composition root: every component built once from the config, started from one table, stopped in reverse.

``Application.run(stop)`` opens (and migrates) the database, then :meth:`Application.build`
makes each part once: the intake pipeline, the senders, the serial writer,
the outbox dispatcher, the channels that are configured, the staff chat and its
reminders, the dashboard, and the HTTP server that carries their routes. Each is a
:class:`bot.lifecycle.Component` (``start``/``stop``); ``run`` starts them in the order
of the table and, on ``stop`` (or when a background part dies), stops them in reverse:
the HTTP server stops taking requests and finishes those in flight, the channels stop,
the staff chat and the dispatcher finish what they are sending, the writer drains, and
the database is closed last. Every background task has an owner here that awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from starlette.routing import BaseRoute

from bot import logs
from bot.billing import Billing
from bot.config import LoadedConfig, Masker, database_problem, shown_url
from bot.errors import StartupError
from bot.imap import ImapIntake
from bot.intake import IntakePipeline
from bot.leases import Lease, worker_name
from bot.lifecycle import Component, Health, StateLog, every, reason_of
from bot.outbox import OutboxDispatcher
from bot.pipeline import intake_pipeline, mail_intake
from bot.platform import ApiKeys, PlatformIntake, PlatformSender
from bot.privacy import Privacy
from bot.reminders import ReminderService
from bot.staffchat.staffbot import StaffBot
from bot.voice import VoiceLine
from bot.web.dashboard.off import REASON as DASHBOARD_OFF
from bot.web.dashboard.off import dashboard_off_routes
from bot.web.api import api_routes
from bot.webhooks import WebhookDispatcher
from bot.web.dashboard.web import Dashboard
from bot.web.server import HttpServer, allowed_hosts, health_route
from bot.web.telegram import telegram_webhook_route
from bot.web.twilio import STATUS_PATH, voice_routes, whatsapp_routes
from bot.whatsapp import WhatsAppChannel
from channels.email.smtp import SmtpSender, SmtpSettings
from channels.messages import Sender, utc_now
from storage.database import Database, StorageError, open_database, translate_errors
from storage.writer import SerialWriter

log = logging.getLogger(__name__)

STAFF_CHAT_LEASE = "telegram:staff-chat"  # the Telegram poller and the staff chat's rounds: one worker at a time



def channels_off_reasons(loaded: LoadedConfig) -> dict[str, str | None]:
    """Which channels have no credentials, and why (None: configured)."""
    cfg = loaded.config
    return {
        "whatsapp": None if cfg.twilio.configured else "no [twilio] account_sid, auth_token and whatsapp_from",
        "email": None if cfg.email.imap_configured or cfg.email.smtp_configured
        else "no [email] imap_host, imap_user and imap_password, nor smtp_host and from_address",
        "telegram": None if cfg.telegram.configured else "no [telegram] token and staff_chat_id",
    }


class Part:
    """A component made of plain callables: what to do on start and on stop (either may be left out)."""

    def __init__(self, name: str, start: Callable[[], Awaitable[None]] | None = None,
                 stop: Callable[[], Awaitable[None]] | None = None) -> None:
        self.name = name
        self._start = start
        self._stop = stop

    async def start(self) -> None:
        if self._start is not None:
            await self._start()

    async def stop(self) -> None:
        if self._stop is not None:
            await self._stop()


class Loop:
    """A component that runs ``work(stop)`` in a task of its own until it is stopped.

    ``died`` hears of the task ending with an error while slabot runs, so that the application stops
    instead of running on without it.
    """

    def __init__(self, name: str, work: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
                 died: Callable[[str, BaseException], None]) -> None:
        self.name = name
        self.work = work
        self.died = died
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.work(self._stop), name=self.name)
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not self._stop.is_set():
            self.died(self.name, task.exception())  # type: ignore[arg-type]

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


class StaffChat:
    """The staff chat and its reminders: Telegram down at start is reported and tried again with backoff
    (pauses doubling from ``retry[0]`` to ``retry[1]`` seconds) while the rest of slabot runs on."""

    name = "telegram"

    def __init__(self, staffbot: StaffBot, reminders: ReminderService, health: Health, *,
                 rounds: bool, retry: Callable[[], tuple[float, float]]) -> None:
        self.staffbot = staffbot
        self.reminders = reminders
        self.health = health
        self.rounds = rounds  # False: the caller runs the reminder rounds (slabot demo)
        self.retry = retry
        self._retrying: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.staffbot.start()
        except Exception as exc:  # noqa: BLE001 - slabot keeps taking in requests without its staff chat
            self.health.set("telegram", "down", reason_of(exc))
            log.warning("the Telegram staff chat could not start (%s); tried again with backoff, reminders and "
                        "announcements wait until it is up", exc)
            self._retrying = asyncio.create_task(self._retry(), name="telegram-retry")
        if self.rounds:
            self.reminders.start()

    async def _retry(self) -> None:
        pause, longest = self.retry()
        while True:
            await asyncio.sleep(pause)
            try:
                await self.staffbot.stop()  # what the failed attempt left half started
                await self.staffbot.start()
            except Exception as exc:  # noqa: BLE001 - still down: the next attempt after a longer pause
                self.health.set("telegram", "down", reason_of(exc))
                pause = min(pause * 2, longest)
                continue
            self.health.set("telegram", "up")
            log.info("the Telegram staff chat is up")
            return

    async def stop(self) -> None:
        await self.reminders.stop()
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        await self.staffbot.stop()


class Application:
    """slabot's running service."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        now: Callable[[], datetime] = utc_now,
        senders: dict[str, Sender] | None = None,
        dispatch_interval: float = 1.0,
        staff_rounds: float | None = 2.0,
        freeze_gc: bool = False,
    ) -> None:
        """``staff_rounds``: seconds between the staff chat's announcement and paging rounds; None leaves those
        and the reminder rounds to the caller (``staffbot.announce_new()``, ``staffbot.page_oncall()``,
        ``reminders.run_due()``), as ``slabot demo`` does on its fast-forwarded clock."""
        self.loaded = loaded
        self.now = now
        self.health = Health()
        self.senders: dict[str, Sender] = dict(senders or {})
        self.dispatch_interval = dispatch_interval
        self.staff_rounds = staff_rounds
        self.freeze_gc = freeze_gc  # slabot run: start-up's objects kept out of the garbage collector's passes
        self.staff_retry = (5.0, 300.0)  # the staff chat down at start: first and longest pause between attempts
        self.started = asyncio.Event()
        self.worker = worker_name()  # this process, as the holder of leases and claims
        # built once by build(), in this order
        self.db: Database | None = None
        self.pipeline: IntakePipeline | None = None
        self.writer: SerialWriter | None = None
        self.whatsapp: WhatsAppChannel | None = None
        self.voice: VoiceLine | None = None
        self.imap: ImapIntake | None = None
        self.staffbot: StaffBot | None = None
        self.reminders: ReminderService | None = None
        self.dashboard: Dashboard | None = None
        self.dispatcher: OutboxDispatcher | None = None
        self.server: HttpServer | None = None
        self.routes: list[BaseRoute] = []
        self.components: list[Component] = []
        self._died: asyncio.Future[tuple[str, BaseException]] | None = None

    # -- building -----------------------------------------------------------------------------------------------

    def build(self, db: Database) -> list[Component]:
        """Every part once, from the config: the table of components in the order they start."""
        cfg = self.loaded.config
        table: list[Component] = []
        self.db = db
        self.pipeline = intake_pipeline(self.loaded, db, self.now)
        if cfg.email.smtp_configured and "email" not in self.senders:
            self.senders["email"] = SmtpSender(SmtpSettings(
                host=cfg.email.smtp_host or "", port=cfg.email.smtp_port, username=cfg.email.smtp_user,
                password=cfg.email.smtp_password.get_secret_value() if cfg.email.smtp_password else None,
                from_address=cfg.email.from_address or "", from_name=cfg.email.from_name,
                security=cfg.email.smtp_security,
            ), now=self.now)
        # the webhooks' intake and the outbox dispatcher write in turn on one thread (storage.writer), in groups:
        # what queued up while one transaction ran commits in the next one, with one sync (SQLite) or one WAL
        # flush (PostgreSQL); on PostgreSQL a write that deadlocked with another worker's group runs again alone
        writer = self.writer = SerialWriter("db-writer", group=db.group, again=db.retry_alone)
        table.append(Part("writer", stop=lambda: asyncio.to_thread(writer.shutdown, True)))
        if cfg.twilio.configured:
            whatsapp = self.whatsapp = WhatsAppChannel(cfg.twilio, cfg.http, db, self.pipeline, now=self.now,
                                                       status_path=STATUS_PATH, writer=self.writer)
            self.routes.extend(whatsapp_routes(whatsapp.auth_token, whatsapp.public_url, whatsapp.ingest,
                                               whatsapp.apply_status_callback, self.now))
            self.senders.setdefault("whatsapp", whatsapp.start())
            table.append(Part("whatsapp-client", stop=whatsapp.aclose))  # closed after the dispatcher stops
            if not cfg.http.public_url:
                log.warning("http.public_url is not set: Twilio signatures are checked against the URL as "
                            "received, and no status callbacks are requested")
        staff_chat: StaffChat | None = None
        if cfg.telegram.configured:
            report = self.health.reporter("telegram")  # the staff chat failing after a good start shows in /healthz
            staffbot = self.staffbot = StaffBot(cfg.telegram, db, language=cfg.language, now=self.now,
                                                team_lead=cfg.telegram.team_lead, pipeline=self.pipeline,
                                                announce_every=self.staff_rounds, health=report,
                                                webhook_route=telegram_webhook_route,
                                                lease=self._lease(db, STAFF_CHAT_LEASE))
            self.routes.extend(staffbot.routes())  # POST /webhooks/telegram in webhook mode
            self.reminders = ReminderService(db, staffbot.notify, now=self.now, health=report)
            staff_chat = StaffChat(staffbot, self.reminders, self.health, rounds=self.staff_rounds is not None,
                                   retry=lambda: self.staff_retry)
        if cfg.twilio.voice_configured:  # the outage line: POST /webhooks/twilio/voice
            self.voice = VoiceLine(cfg.twilio, cfg.http, self.pipeline, language=cfg.language, now=self.now,
                                   on_callback=self.reminders.wake if self.reminders is not None else None)
            self.routes.extend(voice_routes(self.voice.auth_token, self.voice.public_url, self.voice.answer,
                                            self.voice.dialled))
        self._platform(db)  # the platform intake API at /api/v1/ and the platform channel's sender
        self.dispatcher = OutboxDispatcher(db, self.senders, now=self.now,
                                           writer=self.writer.urgent if self.writer is not None else None)
        dispatcher, interval = self.dispatcher, self.dispatch_interval
        table.append(Loop("outbox", lambda stop: dispatcher.run(stop, interval), self._part_died))
        if staff_chat is not None:
            # before the channels and the HTTP server in the table: stopped after the server has stopped taking
            # its webhook
            table.append(staff_chat)
        if self.whatsapp is not None:
            table.append(Loop("whatsapp", self.whatsapp.run, self._part_died))
        if cfg.email.imap_configured:
            self.imap = ImapIntake(cfg.email, mail_intake(self.loaded, db, self.pipeline, self.now), db, now=self.now, health=self.health.reporter("email"))
            # one reader per mailbox among the workers that share the database
            mailbox = self._lease(db, f"imap:{cfg.email.imap_user}@{cfg.email.imap_host}:{cfg.email.imap_port}/"
                                      f"{cfg.email.imap_folder}")
            table.append(Loop("imap", mailbox.leased(self.imap.run), self._part_died))
        if self.loaded.preset.billing is not None:  # the monthly invoices, issued and sent when due (R21)
            billing = Billing(db, self.loaded.preset, default_language=cfg.language, now=self.now,
                              issuer_lines=tuple(cfg.billing.invoice_lines))
            state = StateLog(log, "issuing the monthly invoices failed: %s", "monthly invoices are issued again")

            async def invoices(stop: asyncio.Event) -> None:
                await every(cfg.billing.check_minutes * 60, lambda: asyncio.to_thread(billing.issue_due), stop, state)

            # one worker issues them (a month's invoice exists once per account all the same)
            table.append(Loop("invoices", self._lease(db, "billing:invoices").leased(invoices), self._part_died))
        # outgoing webhooks: the endpoints mirrored on start (none: none queued), delivered by a loop of their own
        webhooks = WebhookDispatcher(db, cfg.webhooks, now=self.now)
        table.append(Part("webhooks-client", start=webhooks.start, stop=webhooks.stop))
        if cfg.webhooks:
            interval = self.dispatch_interval
            table.append(Loop("webhooks", lambda stop: webhooks.run(stop, interval), self._part_died))
        if cfg.privacy.keep_raw_days is not None:  # raw mail and media deleted after that many days, daily
            privacy, keep = Privacy(db, self.now), cfg.privacy.keep_raw_days
            expiring = StateLog(log, "deleting old raw mail and media failed: %s", "old raw mail and media are "
                                "deleted again")

            async def expire(stop: asyncio.Event) -> None:
                await every(24 * 3600, lambda: asyncio.to_thread(privacy.expire, keep), stop, expiring)

            table.append(Loop("privacy", self._lease(db, "privacy:expire").leased(expire), self._part_died))
        if cfg.dashboard.configured:  # the staff dashboard at /dashboard/
            self.dashboard = Dashboard(cfg.dashboard, db, self.loaded.preset, language=cfg.language, now=self.now,
                                       secure_cookies=(cfg.http.public_url or "").startswith("https://"),
                                       billing=Billing(db, self.loaded.preset, texts=self.pipeline.texts,
                                                       default_language=cfg.language, now=self.now),
                                       whatsapp_templates=cfg.twilio.templates)
            self.routes.extend(self.dashboard.routes())
            log.info("staff dashboard on /dashboard/ for %d staff login(s)", len(cfg.dashboard.users))
        else:  # /dashboard/ says it is off and how to turn it on
            self.routes.extend(dashboard_off_routes())
            log.info("dashboard: off (%s)", DASHBOARD_OFF)
        for name, reason in channels_off_reasons(self.loaded).items():
            if reason is not None and name not in self.senders:
                self.health.set(name, "off", reason)
            else:
                self.health.set(name, "up")
        # last in the table: serving once everything behind its routes runs, the first to stop taking requests
        self.server = HttpServer([health_route(self.health, self._ping, Masker.of(cfg)), *self.routes],
                                 cfg.http.host, cfg.http.port, died=self._part_died,
                                 trusted_proxies=cfg.http.trusted_proxies,
                                 allowed_hosts=allowed_hosts(cfg.http.public_url, cfg.telegram.webhook_url)
                                 if cfg.http.public_url else None)
        table.append(self.server)
        return table

    def _lease(self, db: Database, name: str) -> Lease:
        """The lease ``name`` for this worker (``[database] lease_seconds``), see :mod:`bot.leases`."""
        return Lease(db, name, holder=self.worker, seconds=self.loaded.config.database.lease_seconds)

    def _platform(self, db: Database) -> None:
        """The platform intake API (``/api/v1/``) and the sender of the replies on platform tickets."""
        cfg = self.loaded.config
        assert self.pipeline is not None
        intake = PlatformIntake(db, self.pipeline, self.now, writer=self.writer)
        keys = ApiKeys(db, self.now)
        self.routes.extend(api_routes(intake.submit, keys.authenticate, intake.ticket,
                                      requests_per_minute=cfg.api.requests_per_minute))
        by_webhook = any("message.created" in hook.events for hook in cfg.webhooks)
        self.senders.setdefault("platform", PlatformSender(db, self.senders.get("email"), by_webhook=by_webhook))

    async def _ping(self) -> None:
        assert self.db is not None
        await asyncio.to_thread(self.db.ping)

    def _part_died(self, name: str, exc: BaseException) -> None:
        if self._died is not None and not self._died.done():
            self._died.set_result((name, exc))

    # -- lifecycle ----------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, wait for ``stop``, stop everything in reverse order."""
        cfg = self.loaded.config
        db = await asyncio.to_thread(self._open_database)
        self._died = asyncio.get_running_loop().create_future()
        started: list[Component] = []
        try:
            if cfg.accounts.file:
                await asyncio.to_thread(self._import_accounts, db, cfg.accounts.file)
            self.components = self.build(db)
            for component in self.components:
                await component.start()
                started.append(component)
            log.info("slabot is running: http://%s:%s (preset %s, database %s)", cfg.http.host, self._port(),
                     self.loaded.preset.name, shown_url(cfg.database.url))
            if self.freeze_gc:  # what start-up made lives as long as the process: out of the full collections
                gc.freeze()
            self.started.set()
            stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            died: asyncio.Future[Any] = self._died
            await asyncio.wait([stopping, died], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            log.info("stopping: HTTP server, channels, staff chat, outbox dispatcher, then database")
        finally:
            for component in reversed(started):
                try:
                    await component.stop()
                except Exception:  # noqa: BLE001 - the others are stopped all the same
                    log.exception("%s did not stop cleanly", component.name)
            db.dispose()
            log.info("slabot stopped")
        if self._died.done():
            name, exc = self._died.result()
            raise RuntimeError(f"{name} stopped unexpectedly: {reason_of(exc)}") from exc

    def _open_database(self) -> Database:
        """The configured database, opened and migrated; a :class:`StartupError` in one line when it cannot be."""
        cfg = self.loaded.config
        try:
            with translate_errors():
                return open_database(cfg.database.url, synchronous=cfg.database.synchronous)
        except StorageError as exc:
            raise StartupError(database_problem(cfg.database.url, exc)) from exc

    def _import_accounts(self, db: Database, file: str) -> None:
        """The ``[accounts] file`` is imported on start (relative to the config file)."""
        from pathlib import Path

        from bot.accounts import import_accounts

        path = Path(file)
        if not path.is_absolute() and self.loaded.source != "embedded defaults":
            path = Path(self.loaded.source).parent / path
        report = import_accounts(db, path, self.loaded.preset, self.now())
        for problem in report.problems:
            log.warning("accounts file: rejected %s", problem)
        log.info("accounts file %s: %s", path, report.summary())

    def _port(self) -> int:
        """The port actually bound (useful with port 0 in tests)."""
        return self.server.port if self.server is not None else self.loaded.config.http.port


def run_until_signalled(loaded: LoadedConfig) -> int:
    """``slabot run``: serve until Ctrl-C or SIGTERM."""
    logs.configure(loaded.config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Application(loaded, freeze_gc=True).run(stop)

    asyncio.run(main())
    return 0
