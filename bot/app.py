"""The composition root: config, database, HTTP app, outbox dispatcher and channels in one lifecycle.

``Application.run(stop)`` opens (and migrates) the database, builds the intake
pipeline and the outbox dispatcher, starts the HTTP server (uvicorn) and every
configured channel, then waits for ``stop``. Stopping goes in reverse order:
the HTTP server stops taking requests and finishes those in flight, the
channels stop, the dispatcher finishes the row it is sending, and the database
is closed. Every background task has an owner here that awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import uvicorn
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot import logs
from bot.config import LoadedConfig, shown_url
from bot.web.dashboard.web import Dashboard
from bot.web.telegram import telegram_webhook_route
from bot.intake import IntakePipeline
from bot.imap import ImapIntake
from bot.mail import MailIntake, mail_reply_guards
from bot.outbox import OutboxDispatcher
from bot.reminders import ReminderService
from bot.staffchat.staffbot import StaffBot
from bot.texts import Texts
from bot.voice import VoiceLine
from bot.whatsapp import WhatsAppChannel
from storage.writer import SerialWriter
from channels.email.smtp import SmtpSender, SmtpSettings
from channels.messages import Sender, utc_now
from storage.database import Database, open_database

log = logging.getLogger(__name__)



@dataclass
class ChannelState:
    """What /healthz says of a channel."""

    state: str  # up | down | off
    reason: str | None = None
    since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason,
                "since": self.since.isoformat() if self.since else None}


@dataclass
class Health:
    """Health of the database and each channel, updated by their owners."""

    channels: dict[str, ChannelState] = field(default_factory=dict)

    def set(self, channel: str, state: str, reason: str | None = None, now: datetime | None = None) -> None:
        current = self.channels.get(channel)
        if current is not None and current.state == state and current.reason == reason:
            return
        if current is None or current.state != state:
            level = logging.WARNING if state == "down" else logging.INFO
            log.log(level, "channel %s: %s%s", channel, state, f" ({reason})" if reason else "")
        self.channels[channel] = ChannelState(state, reason, now or utc_now())


def channels_off_reasons(loaded: LoadedConfig) -> dict[str, str | None]:
    """Which channels have no credentials, and why (None: configured)."""
    cfg = loaded.config
    return {
        "whatsapp": None if cfg.twilio.configured else "no [twilio] account_sid, auth_token and whatsapp_from",
        "email": None if cfg.email.imap_configured or cfg.email.smtp_configured
        else "no [email] imap_host, imap_user and imap_password, nor smtp_host and from_address",
        "telegram": None if cfg.telegram.configured else "no [telegram] token and staff_chat_id",
    }


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
        self.db: Database | None = None
        self.pipeline: IntakePipeline | None = None
        self.server: uvicorn.Server | None = None
        self.routes: list[BaseRoute] = []
        self.whatsapp: WhatsAppChannel | None = None
        self.voice: VoiceLine | None = None
        self.imap: ImapIntake | None = None
        self.staffbot: StaffBot | None = None
        self.reminders: ReminderService | None = None
        self.dashboard: Dashboard | None = None
        self.started = asyncio.Event()
        self.staff_retry = (5.0, 300.0)  # the staff chat down at start: first and longest pause between attempts
        self._staff_retrying: asyncio.Task[None] | None = None

    # -- HTTP -------------------------------------------------------------------

    def asgi(self) -> Starlette:
        """The HTTP app: health, and the webhooks of the channels that are on."""
        return Starlette(routes=[Route("/healthz", self.healthz, methods=["GET"]), *self.routes])

    async def healthz(self, request: Request) -> JSONResponse:
        database: dict[str, Any] = {"state": "up"}
        if self.db is None:
            database = {"state": "down", "reason": "not open"}
        else:
            try:
                await asyncio.to_thread(self._ping)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                database = {"state": "down", "reason": f"{exc.__class__.__name__}: {exc}"}
        channels = {name: state.as_json() for name, state in sorted(self.health.channels.items())}
        ok = database["state"] == "up" and all(c["state"] != "down" for c in channels.values())
        return JSONResponse({"status": "ok" if ok else "degraded", "database": database, "channels": channels},
                            status_code=200 if ok else 503)

    def _ping(self) -> None:
        assert self.db is not None
        with self.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # -- lifecycle ----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, wait for ``stop``, stop everything in reverse order."""
        cfg = self.loaded.config
        self.db = await asyncio.to_thread(open_database, cfg.database.url,
                                        synchronous=cfg.database.synchronous)
        if cfg.accounts.file:
            await asyncio.to_thread(self._import_accounts, cfg.accounts.file)
        self.pipeline = IntakePipeline(self.db, self.loaded.preset, Texts(), default_language=cfg.language,
                                       now=self.now,
                                       reply_guards=mail_reply_guards(cfg.email.auto_replies_per_hour, self.now))
        if cfg.email.smtp_configured and "email" not in self.senders:
            self.senders["email"] = SmtpSender(SmtpSettings(
                host=cfg.email.smtp_host or "", port=cfg.email.smtp_port, username=cfg.email.smtp_user,
                password=cfg.email.smtp_password.get_secret_value() if cfg.email.smtp_password else None,
                from_address=cfg.email.from_address or "", from_name=cfg.email.from_name,
                security=cfg.email.smtp_security,
            ), now=self.now)
        # on SQLite the webhooks' intake and the outbox dispatcher write in turn on one thread (storage.writer)
        # in groups: what queued up while one transaction ran commits in the next one, with one sync
        writer = SerialWriter(group=self.db.group) if self.db.is_sqlite else None
        if cfg.twilio.configured:
            self.whatsapp = WhatsAppChannel(cfg.twilio, cfg.http, self.db, self.pipeline, now=self.now,
                                            writer=writer)
            self.routes.extend(self.whatsapp.routes())
            self.senders.setdefault("whatsapp", self.whatsapp.start())
            if not cfg.http.public_url:
                log.warning("http.public_url is not set: Twilio signatures are checked against the URL as "
                            "received, and no status callbacks are requested")
        if cfg.twilio.voice_configured:  # the outage line: POST /webhooks/twilio/voice
            self.voice = VoiceLine(cfg.twilio, cfg.http, self.pipeline, language=cfg.language, now=self.now)
            self.routes.extend(self.voice.routes())
        if cfg.email.imap_configured:
            mail = MailIntake(self.db, self.pipeline, own_addresses=(cfg.email.from_address or "",),
                              acknowledge_max_age=timedelta(hours=cfg.email.acknowledge_max_age_hours),
                              now=self.now)
            self.imap = ImapIntake(cfg.email, mail, self.db, now=self.now,
                                   health=lambda state, reason: self.health.set("email", state, reason))
        if cfg.telegram.configured:
            self.staffbot = StaffBot(cfg.telegram, self.db, language=cfg.language, now=self.now,
                                     team_lead=cfg.telegram.team_lead, pipeline=self.pipeline,
                                     announce_every=self.staff_rounds, webhook_route=telegram_webhook_route)
            self.routes.extend(self.staffbot.routes())  # POST /webhooks/telegram in webhook mode
            self.reminders = ReminderService(self.db, self.staffbot.notify, now=self.now)
            self.staffbot.health = self.reminders.health = lambda state, reason: self.health.set(
                "telegram", state, reason)  # the staff chat failing after a good start shows in /healthz
            if self.voice is not None:
                self.voice.on_callback = self.reminders.wake
        if cfg.dashboard.configured:  # the staff dashboard at /dashboard/
            self.dashboard = Dashboard(cfg.dashboard, self.db, self.loaded.preset, language=cfg.language, now=self.now,
                                       secure_cookies=(cfg.http.public_url or "").startswith("https://"))
            self.routes.extend(self.dashboard.routes())
            log.info("staff dashboard on /dashboard/ for %d staff login(s)", len(cfg.dashboard.users))
        for name, reason in channels_off_reasons(self.loaded).items():
            if reason is not None and name not in self.senders:
                self.health.set(name, "off", reason)
            else:
                self.health.set(name, "up")
        dispatcher = OutboxDispatcher(self.db, self.senders, now=self.now,
                                      writer=writer.urgent if writer is not None else None)
        uv_config = uvicorn.Config(self.asgi(), host=cfg.http.host, port=cfg.http.port, log_level="warning",
                                   access_log=False, lifespan="off", timeout_graceful_shutdown=5,
                                   proxy_headers=False, server_header=False)
        self.server = _QuietServer(uv_config)
        dispatch_stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tasks:
                http = tasks.create_task(self.server.serve(), name="http")
                dispatch = tasks.create_task(dispatcher.run(dispatch_stop, self.dispatch_interval), name="outbox")
                channel_stop = asyncio.Event()
                channel_tasks = []
                if self.whatsapp is not None:
                    channel_tasks.append(tasks.create_task(self.whatsapp.run(channel_stop), name="whatsapp"))
                if self.imap is not None:
                    channel_tasks.append(tasks.create_task(self.imap.run(channel_stop), name="imap"))
                if self.staffbot is not None:
                    await self._start_staffbot(self.staffbot)
                while not self.server.started and not http.done():
                    await asyncio.sleep(0.02)
                if http.done():
                    raise RuntimeError(f"the HTTP server could not start on {cfg.http.host}:{cfg.http.port}")
                log.info("slabot is running: http://%s:%s (preset %s, database %s)", cfg.http.host,
                         self._port(), self.loaded.preset.name, shown_url(cfg.database.url))
                if self.freeze_gc:  # what start-up made lives as long as the process: out of the full collections
                    gc.freeze()
                self.started.set()
                await stop.wait()
                log.info("stopping: HTTP server, then outbox dispatcher, then database")
                self.server.should_exit = True
                await http
                channel_stop.set()
                for task in channel_tasks:
                    await task
                if self.reminders is not None:
                    await self.reminders.stop()
                if self._staff_retrying is not None:
                    self._staff_retrying.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._staff_retrying
                if self.staffbot is not None:
                    await self.staffbot.stop()
                dispatch_stop.set()
                await dispatch
        finally:
            if self.whatsapp is not None:
                await self.whatsapp.aclose()
            if writer is not None:
                writer.shutdown(wait=True)
            self.db.dispose()
            log.info("slabot stopped")

    async def _start_staffbot(self, staffbot: StaffBot) -> None:
        """The staff chat and the reminders; Telegram down at start is reported, the rest runs on."""
        try:
            await staffbot.start()
        except Exception as exc:  # noqa: BLE001 - slabot keeps taking in requests without its staff chat
            self.health.set("telegram", "down", f"{exc.__class__.__name__}: {exc}")
            log.warning("the Telegram staff chat could not start (%s); tried again with backoff, reminders and "
                        "announcements wait until it is up", exc)
            self._staff_retrying = asyncio.create_task(self._retry_staffbot(staffbot), name="telegram-retry")
        if self.reminders is not None and self.staff_rounds is not None:
            self.reminders.start()

    async def _retry_staffbot(self, staffbot: StaffBot) -> None:
        """Start the staff chat again until it is up: pauses doubling from ``staff_retry[0]`` to ``[1]``."""
        pause, longest = self.staff_retry
        while True:
            await asyncio.sleep(pause)
            try:
                await staffbot.stop()  # what the failed attempt left half started
                await staffbot.start()
            except Exception as exc:  # noqa: BLE001 - still down: the next attempt after a longer pause
                self.health.set("telegram", "down", f"{exc.__class__.__name__}: {exc}")
                pause = min(pause * 2, longest)
                continue
            self.health.set("telegram", "up")
            log.info("the Telegram staff chat is up")
            return

    def _import_accounts(self, file: str) -> None:
        """The ``[accounts] file`` is imported on start (relative to the config file)."""
        from pathlib import Path

        from bot.accounts import import_accounts

        path = Path(file)
        if not path.is_absolute() and self.loaded.source != "embedded defaults":
            path = Path(self.loaded.source).parent / path
        assert self.db is not None
        report = import_accounts(self.db, path, self.loaded.preset, self.now())
        for problem in report.problems:
            log.warning("accounts file: rejected %s", problem)
        log.info("accounts file %s: %s", path, report.summary())

    def _port(self) -> int:
        """The port actually bound (useful with port 0 in tests)."""
        if self.server is not None and self.server.servers:
            for server in self.server.servers:
                for sock in server.sockets:
                    return int(sock.getsockname()[1])
        return self.loaded.config.http.port


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the application owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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
