"""The IMAP intake: one mailbox folder read by UID into :class:`bot.mail.MailIntake`, nothing lost, nothing twice.

How it works
------------
A checkpoint row (``mail_checkpoints``, keyed ``user@host:port/folder``) holds
the folder's UIDVALIDITY and the last UID whose mail is committed.
:meth:`ImapIntake.catch_up` asks for every UID above it (``UID SEARCH``),
oldest first, fetches each with ``BODY.PEEK[]`` (nothing is marked seen by
reading it; a mail whose RFC822.SIZE is over ``max_message_bytes``: only its
header block, for ``MailIntake.ingest_too_large``) and its INTERNALDATE, and hands the raw bytes to
``MailIntake.ingest_raw``, received at that INTERNALDATE (the SLA clock's
start, R23: not the sender's Date header), with an
``also`` that moves the checkpoint to that UID in the same transaction as the
stored message. Only after that commit is the mail marked ``\\Seen``, or moved
to ``imap_move_to``. So:

- a crash before the commit leaves both the mail and the checkpoint as they
  were: the mail is fetched again and stored once;
- a crash after the commit leaves at worst an unseen (or unmoved) mail that is
  not read again;
- a changed UIDVALIDITY (a restored or rebuilt mailbox) resets the checkpoint
  and the whole folder is read again: what is already stored is recognised by
  its Message-ID (the parser gives a mail without one a stable hash), so the
  rescan stores only what is new;
- a mail whose ingest raises (a bug; unreadable mail is kept aside by
  ``MailIntake`` and does not raise) ends the round and is tried again the
  next round; after :data:`POISON_ROUNDS` failed rounds it is skipped: the
  checkpoint moves past it, an event ``mail_skipped`` says so, and the mail
  stays in the mailbox, unseen. A database that cannot be reached is not the
  mail's fault and never counts.

:meth:`ImapIntake.run` keeps one connection: it catches up, then waits in IDLE
(renewed at least every ``idle_renew`` seconds) where the server has it, else
polls every ``imap_poll_seconds``; after every IDLE or poll window a NOOP
checks the connection (a half-open one times out) and the folder is caught up
again. Every call on the connection (:mod:`channels.email.imap`, which
speaks the protocol) also ends when it drops or ``stop`` is set. Any
connection problem (refused, dropped, timed out, a wrong password, a missing
folder: the :mod:`channels.email.errors` tree) is logged once with its reason,
reported as health "down", and retried with capped exponential backoff and
jitter; the recovery is logged once too. So is a database that cannot be
reached (:class:`storage.database.DatabaseUnavailable`). Nothing raises out of
:meth:`ImapIntake.run`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bot.config import EmailConfig
from bot.lifecycle import HealthReport
from bot.mail import MailIntake
from channels.email.errors import (
    ImapCommandError,
    ImapConnectionError,
    ImapError,
    ImapLoginError,
    ImapTimeoutError,
)
from channels.email.imap import ImapConnection, ImapSettings, ImapStopped, connect
from channels.email.parse import header_block
from channels.messages import utc_now
from storage.database import Database, DatabaseUnavailable
from storage.direct import Direct
from storage.mailbox import MailboxRepository

log = logging.getLogger(__name__)

POISON_ROUNDS = 3  # failed rounds before a mail whose ingest raises is skipped
BACKOFF_FIRST = 1.0  # seconds before the first reconnect; doubled per failure up to backoff_max


def describe(exc: BaseException) -> str:
    """A short, stable reason for logs and health (the same problem reads the same on every retry)."""
    if isinstance(exc, ImapError):
        return str(exc)
    if isinstance(exc, DatabaseUnavailable):
        return f"database unavailable: {exc.reason}"
    return f"{exc.__class__.__name__}: {exc}"


def _kind(exc: BaseException) -> str:
    if isinstance(exc, (ImapConnectionError, ImapTimeoutError)):
        return "connection"  # refused, lost, reset, timed out: one outage reads as one problem
    if isinstance(exc, ImapLoginError):
        return "login"
    if isinstance(exc, ImapCommandError):
        return "command"
    return "other"


@dataclass
class _Status:
    """State kept across reconnects: the problem reported (None while up), failures since the last good
    connection, and the failed ingest rounds of each mail that raised."""

    reason: str | None = None
    kind: str | None = None  # of the problem logged: connection, login, command, other
    connected_once: bool = False
    failures: int = 0
    poison: dict[tuple[int, int], int] = field(default_factory=dict)  # (uidvalidity, uid) -> failed rounds


class ImapIntake:
    """Reads one IMAP folder into the mail intake (see the module docstring)."""

    def __init__(
        self,
        config: EmailConfig,
        intake: MailIntake,
        db: Database,
        *,
        health: HealthReport | None = None,
        now: Callable[[], datetime] = utc_now,
        idle_renew: float = 29 * 60,
        noop_every: float = 60,
        backoff_max: float = 300,
        timeout: float = 30,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not (config.imap_host and config.imap_user and config.imap_password):
            raise ValueError("the IMAP intake needs [email] imap_host, imap_user and imap_password")
        self.config = config
        self.intake = intake
        self.db = db
        self.health = health
        self.now = now
        self.idle_renew = idle_renew
        self.noop_every = noop_every
        self.backoff_max = backoff_max
        self.settings = ImapSettings(host=config.imap_host, user=config.imap_user,
                                     password=config.imap_password.get_secret_value(), port=config.imap_port,
                                     folder=config.imap_folder, security=config.imap_security,
                                     timeout=timeout,  # for one command
                                     ssl_context=ssl_context)  # None: the system's trusted certificates
        self.host = config.imap_host
        self.user = config.imap_user
        self.folder = config.imap_folder
        self.mailbox = self.settings.mailbox
        self._status = _Status()
        self._round = asyncio.Lock()  # one catch-up at a time: run()'s rounds and catch_up() calls
        self._stop: asyncio.Event | None = None
        self._unflagged: set[tuple[int, int]] = set()  # committed, not yet marked seen or moved
        self._marked: list[tuple[int, int]] = []  # marked this round: their mail_unmarked rows go at its end

    # -- the long-running loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the folder read until ``stop``: IDLE or polling, reconnecting with backoff; never raises."""
        self._stop = stop
        try:
            while not stop.is_set():
                try:
                    connection = await connect(self.settings, stop)
                except ImapStopped:
                    return
                except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
                    await self._failed(exc, stop)
                    continue
                try:
                    await self._serve(connection, stop)
                except ImapStopped:
                    return
                except Exception as exc:  # noqa: BLE001 - a dropped connection or an unreachable database
                    await connection.close(logout=False)
                    await self._failed(exc, stop)
                finally:
                    await connection.close(logout=True)
        finally:
            self._stop = None

    async def _serve(self, connection: ImapConnection, stop: asyncio.Event) -> None:
        await self._catch_up(connection)
        self._up(connection)  # after a first round: a database that is down keeps the intake down
        idle = connection.has("IDLE")
        while not stop.is_set():
            if idle:  # one IDLE window, at most idle_renew and noop_every
                pushed = await connection.idle(max(0.05, min(self.idle_renew, self.noop_every)))
            else:
                pushed = await self._poll_wait(connection)
            if not pushed:
                await connection.noop()  # the watchdog: a dead link times out
            await self._catch_up(connection)

    async def _poll_wait(self, connection: ImapConnection) -> bool:
        """Wait ``imap_poll_seconds``, with a NOOP every ``noop_every``; always False (nothing pushed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.imap_poll_seconds
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await connection.pause(min(remaining, self.noop_every))
            if deadline - loop.time() > 0:
                await connection.noop()

    def _up(self, connection: ImapConnection) -> None:
        status = self._status
        mode = "IDLE" if connection.has("IDLE") else f"polling every {self.config.imap_poll_seconds} s"
        if status.reason is not None:
            log.info("IMAP %s: connected again (%s); it was down: %s", self.mailbox, mode, status.reason)
        elif not status.connected_once:
            log.info("IMAP %s: connected (%s)", self.mailbox, mode)
        status.reason = status.kind = None
        status.connected_once = True
        status.failures = 0
        self._report("up", None)

    async def _failed(self, exc: BaseException, stop: asyncio.Event) -> None:
        """Log a new problem once, report it, and wait the backoff (or until ``stop``)."""
        status = self._status
        reason = describe(exc)
        status.failures += 1
        delay = min(self.backoff_max, BACKOFF_FIRST * 2 ** (status.failures - 1)) * random.uniform(0.5, 1.0)
        kind = _kind(exc)
        if kind != status.kind:  # a new problem; the same one again (refused, then lost, ...) is not logged
            log.warning("IMAP %s is down: %s; retrying with backoff (at most every %g s)",
                        self.mailbox, reason, self.backoff_max, exc_info=kind == "other")
        status.reason = reason
        status.kind = kind
        self._report("down", reason)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass

    def _report(self, state: str, reason: str | None) -> None:
        if self.health is not None:
            self.health(state, reason)

    # -- catching up ----------------------------------------------------------------------------

    async def catch_up(self) -> int:
        """Ingest every mail above the checkpoint, oldest first; how many were stored (duplicates not counted).

        Uses a connection of its own for this call (while :meth:`run` may wait in IDLE on another).
        """
        connection = await connect(self.settings, None)
        try:
            return await self._catch_up(connection)
        finally:
            await connection.close(logout=True)

    async def _catch_up(self, connection: ImapConnection) -> int:
        async with self._round:
            return await self._catch_up_now(connection)

    async def _catch_up_now(self, connection: ImapConnection) -> int:
        uidvalidity = connection.uidvalidity
        last_uid, unmarked = await asyncio.to_thread(self.db.run_direct, lambda d: (
            self._open_checkpoint(MailboxRepository(d), uidvalidity),
            MailboxRepository(d).unmarked(self.mailbox, uidvalidity)))
        self._unflagged = {key for key in self._unflagged if key[0] == uidvalidity} | {
            (uidvalidity, uid) for uid in unmarked}  # committed before a crash or a lost connection
        try:
            for _, uid in sorted(self._unflagged):
                await self._after_commit(connection, uidvalidity, uid)
            return await self._read_new(connection, uidvalidity, last_uid)
        finally:
            await self._forget()

    async def _forget(self) -> None:
        """Drop the records of the mail marked this round; kept for the next round if the database fails."""
        if not self._marked:
            return
        marked, self._marked = self._marked, []
        try:
            await asyncio.to_thread(self.db.run_direct,
                                    lambda d: MailboxRepository(d).forget_marked(self.mailbox, marked))
        except Exception:  # noqa: BLE001 - at worst a mail is marked twice after a restart: harmless
            self._marked = marked + self._marked

    async def _read_new(self, connection: ImapConnection, uidvalidity: int, last_uid: int) -> int:
        uids = await connection.uids_after(last_uid)
        cap = self.intake.max_message_bytes
        sizes = await connection.sizes(uids) if cap is not None else {}
        ingested = 0
        for uid in uids:
            if self._stop is not None and self._stop.is_set():
                break
            size = sizes.get(uid)
            too_large = cap is not None and size is not None and size > cap  # only its header block is fetched
            fetched = await connection.fetch(uid, header_only=too_large)
            if fetched is None:
                log.warning("IMAP %s: mail %d was gone before it could be fetched (expunged by another client)",
                            self.mailbox, uid)
                continue
            source = f"imap:{self.user}@{self.host}/{self.folder}#{uid}"
            try:
                if too_large and size is not None:
                    result = await asyncio.to_thread(self.intake.ingest_too_large, header_block(fetched.raw), size,
                                                     source=source, also=self._advance(uidvalidity, uid),
                                                     received_at=fetched.internaldate)
                else:
                    result = await asyncio.to_thread(self.intake.ingest_raw, fetched.raw, source=source,
                                                     also=self._advance(uidvalidity, uid),
                                                     received_at=fetched.internaldate)
            except DatabaseUnavailable:
                raise  # the database, not the mail: retried with the connection's backoff
            except Exception as exc:  # noqa: BLE001 - a poison mail must not stop the mailbox
                if not await self._poison(uidvalidity, uid, source, exc):
                    break  # tried again next round; later mail waits behind it
                continue
            self._status.poison.pop((uidvalidity, uid), None)
            log.debug("%s: %s %s", source, result.outcome, result.ticket_ref or "")
            if result.outcome != "duplicate":
                ingested += 1
            self._unflagged.add((uidvalidity, uid))
            await self._after_commit(connection, uidvalidity, uid)
        if ingested:
            log.info("IMAP %s: %d mail(s) ingested", self.mailbox, ingested)
        return ingested

    def _open_checkpoint(self, mailbox: MailboxRepository, uidvalidity: int) -> int:
        """The last UID to read from: the checkpoint's, or 0 on a first start or a changed UIDVALIDITY."""
        checkpoint = mailbox.checkpoint(self.mailbox)
        now = self.now()
        if checkpoint is None:
            log.info("IMAP %s: first start, reading every mail in the folder", self.mailbox)
            mailbox.start_checkpoint(self.mailbox, uidvalidity, now)
            return 0
        if checkpoint.uidvalidity == uidvalidity:
            return checkpoint.last_uid
        log.warning("IMAP %s: UIDVALIDITY changed from %d to %d; reading the whole folder again "
                    "(mail already stored is recognised by its Message-ID)",
                    self.mailbox, checkpoint.uidvalidity, uidvalidity)
        mailbox.reset_checkpoint(checkpoint, uidvalidity, now)
        return 0

    def _advance(self, uidvalidity: int, uid: int) -> Callable[[Direct], None]:
        """What moves the checkpoint forward to ``uid`` inside the transaction that stores the mail (and records
        that the mail is still to be marked seen or moved, which survives a crash before that)."""
        def advance(direct: Direct) -> None:
            MailboxRepository(direct).advance(self.mailbox, uidvalidity, uid, self.now())

        return advance

    async def _poison(self, uidvalidity: int, uid: int, source: str, exc: Exception) -> bool:
        """Count a failed ingest of ``uid``; True when it is skipped now (after :data:`POISON_ROUNDS`)."""
        key = (uidvalidity, uid)
        rounds = self._status.poison.get(key, 0) + 1
        self._status.poison[key] = rounds
        reason = f"{exc.__class__.__name__}: {exc}"
        if rounds < POISON_ROUNDS:
            log.warning("%s could not be ingested (round %d of %d): %s; tried again next round",
                        source, rounds, POISON_ROUNDS, reason, exc_info=rounds == 1)
            return False
        now = self.now()
        await asyncio.to_thread(self.db.run_direct, lambda d: MailboxRepository(d).skip(
            self.mailbox, uidvalidity, uid, now, source=source, error=reason, rounds=rounds))  # stays, unseen
        del self._status.poison[key]
        log.error("%s skipped after %d failed rounds (%s): it stays in the mailbox, not marked seen; "
                  "later mail goes on", source, rounds, reason)
        return True

    async def _after_commit(self, connection: ImapConnection, uidvalidity: int, uid: int) -> None:
        """Mark the committed mail ``uid`` seen, or move it; a refusal is logged, a lost connection raises."""
        try:
            if self.config.imap_move_to:
                await connection.move(uid, self.config.imap_move_to)
            else:
                await connection.mark_seen(uid)
        except ImapCommandError as exc:
            log.warning("IMAP %s: mail %d is stored but could not be marked: %s", self.mailbox, uid, exc)
        self._unflagged.discard((uidvalidity, uid))
        self._marked.append((uidvalidity, uid))


__all__ = ["ImapIntake", "describe"]
