"""The IMAP intake: one mailbox folder read by UID into :class:`bot.mail.MailIntake`, nothing lost, nothing twice.

How it works
------------
A checkpoint row (``mail_checkpoints``, keyed ``user@host:port/folder``) holds
the folder's UIDVALIDITY and the last UID whose mail is committed.
:meth:`ImapIntake.catch_up` asks for every UID above it (``UID SEARCH``),
oldest first, fetches each with ``BODY.PEEK[]`` (nothing is marked seen by
reading it) and hands the raw bytes to ``MailIntake.ingest_raw`` with an
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
again. aioimaplib leaves pending calls hanging when the connection drops;
every call here therefore also waits on the ``conn_lost_cb`` callback and on
``stop``. Any connection problem (refused, dropped, timed out, a wrong
password, a missing folder) is logged once with its reason, reported as health
"down", and retried with capped exponential backoff and jitter; the recovery
is logged once too. Nothing raises out of :meth:`ImapIntake.run`.

Errors (aioimaplib's, OSError and TimeoutError are translated into these)::

    SlabotError
    └── ImapError
        ├── ImapConnectionError (ConnectionError)  refused, dropped, TLS failed
        ├── ImapTimeoutError (TimeoutError)        no answer in time (half-open)
        ├── ImapLoginError                         the credentials were refused
        └── ImapCommandError                       the server answered NO or BAD
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import aioimaplib  # type: ignore[import-untyped]
from sqlalchemy.exc import InterfaceError, OperationalError

from bot.config import EmailConfig
from bot.errors import SlabotError
from bot.mail import MailIntake
from channels.email import imap_utf7
from storage import models as m
from storage.database import Database
from storage.direct import Direct
from channels.messages import utc_now

log = logging.getLogger(__name__)
T = TypeVar("T")

POISON_ROUNDS = 3  # failed rounds before a mail whose ingest raises is skipped
BACKOFF_FIRST = 1.0  # seconds before the first reconnect; doubled per failure up to backoff_max
LOGOUT_TIMEOUT = 2.0
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_UID = re.compile(rb"\(.*\bUID (\d+)\b", re.IGNORECASE)
_CHECKPOINTS = m.MailCheckpoint.__table__
_EVENTS = m.Event.__table__

HealthReport = Callable[[str, str | None], None]  # (state "up" or "down", reason)


class ImapError(SlabotError):
    """Base class of the IMAP intake's errors (see the module docstring)."""


class ImapConnectionError(ImapError, ConnectionError):
    """The connection could not be made, or it was lost."""


class ImapTimeoutError(ImapError, TimeoutError):
    """The server did not answer in time."""


class ImapLoginError(ImapError):
    """The server refused the user name and password."""


class ImapCommandError(ImapError):
    """The server refused a command (NO or BAD)."""


class _Stopped(Exception):
    """``stop`` was set while waiting on the server."""



def _text(lines: list[Any]) -> str:
    last = lines[-1] if lines else b""
    return last.decode(errors="replace") if isinstance(last, (bytes, bytearray)) else str(last)


def describe(exc: BaseException) -> str:
    """A short, stable reason for logs and health (the same problem reads the same on every retry)."""
    if isinstance(exc, ImapError):
        return str(exc)
    if isinstance(exc, (OperationalError, InterfaceError)):
        return f"database unavailable: {str(exc.orig) if exc.orig is not None else exc}"
    return f"{exc.__class__.__name__}: {exc}"


def _kind(exc: BaseException) -> str:
    if isinstance(exc, (ImapConnectionError, ImapTimeoutError)):
        return "connection"  # refused, lost, reset, timed out: one outage reads as one problem
    if isinstance(exc, ImapLoginError):
        return "login"
    if isinstance(exc, ImapCommandError):
        return "command"
    return "other"


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" at shutdown


class _Connection:
    """One logged-in aioimaplib client with its folder selected; every call races loss, stop and a timeout."""

    def __init__(self, client: Any, lost: asyncio.Future[None], stop: asyncio.Event | None, timeout: float) -> None:
        self.client = client
        self.lost = lost
        self.timeout = timeout
        self.uidvalidity = 0
        self._stop_task: asyncio.Task[Any] | None = (asyncio.ensure_future(stop.wait()) if stop is not None
                                                     else None)

    @property
    def protocol(self) -> Any:
        return self.client.protocol

    def has(self, capability: str) -> bool:
        return capability in self.protocol.capabilities

    @property
    def alive(self) -> bool:
        transport = self.protocol.transport
        return not self.lost.done() and transport is not None and not transport.is_closing()

    async def call(self, awaitable: Awaitable[T], what: str, *, timeout: float | None = None,
                   stoppable: bool = True) -> T:
        """Await ``awaitable``; raise when the connection drops, ``stop`` is set, or after ``timeout``."""
        task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
        waiters: set[asyncio.Future[Any]] = {task, self.lost}
        if stoppable and self._stop_task is not None:
            waiters.add(self._stop_task)
        try:
            done, _ = await asyncio.wait(waiters, timeout=self.timeout if timeout is None else timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                task.add_done_callback(_retrieve)
        if task in done:
            try:
                return task.result()
            except ImapError:
                raise
            except (TimeoutError, aioimaplib.CommandTimeout) as exc:
                raise ImapTimeoutError(f"{what}: no answer from the server in time") from exc
            except (OSError, EOFError, aioimaplib.AioImapException) as exc:
                raise ImapConnectionError(f"{what}: {exc.__class__.__name__}: {exc}") from exc
        if self.lost.done():
            raise ImapConnectionError(f"{what}: the connection was lost")
        if self._stop_task is not None and self._stop_task in done:
            raise _Stopped
        raise ImapTimeoutError(f"{what}: no answer from the server in time")

    async def command(self, awaitable: Awaitable[Any], what: str, *, stoppable: bool = True) -> Any:
        """Like :meth:`call`, for a command whose answer must be OK."""
        response = await self.call(awaitable, what, stoppable=stoppable)
        if response.result != "OK":
            raise ImapCommandError(f"{what} refused: {response.result} {_text(response.lines)}".rstrip())
        return response

    async def close(self, *, logout: bool) -> None:
        """Log out (politely, briefly) and close the transport; safe to call twice."""
        if logout and self.alive and self.protocol.state in ("AUTH", "SELECTED"):
            try:
                await self.call(self.client.logout(), "LOGOUT", timeout=LOGOUT_TIMEOUT, stoppable=False)
            except (ImapError, _Stopped):
                pass
        transport = self.protocol.transport
        if transport is not None:
            transport.close()
        connecting = self.client._client_task  # the TCP connect, when it never finished
        if not connecting.done():
            connecting.cancel()
            connecting.add_done_callback(_retrieve)
        for task in list(self.client.tasks) + list(self.protocol.tasks):
            task.cancel()
        if self._stop_task is not None:
            self._stop_task.cancel()
        if not self.lost.done():
            self.lost.set_result(None)


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
        self.timeout = timeout  # for one command
        self.ssl_context = ssl_context  # None: the system's trusted certificates
        self.host = config.imap_host
        self.user = config.imap_user
        self.folder = config.imap_folder
        self.mailbox = f"{self.user}@{self.host}:{config.imap_port}/{self.folder}"
        self._password = config.imap_password.get_secret_value()
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
                    connection = await self._connect(stop)
                except _Stopped:
                    return
                except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
                    await self._failed(exc, stop)
                    continue
                try:
                    await self._serve(connection, stop)
                except _Stopped:
                    return
                except Exception as exc:  # noqa: BLE001 - a dropped connection or an unreachable database
                    await connection.close(logout=False)
                    await self._failed(exc, stop)
                finally:
                    await connection.close(logout=True)
        finally:
            self._stop = None

    async def _serve(self, connection: _Connection, stop: asyncio.Event) -> None:
        await self._catch_up(connection)
        self._up(connection)  # after a first round: a database that is down keeps the intake down
        idle = connection.has("IDLE")
        while not stop.is_set():
            if idle:
                pushed = await self._idle(connection)
            else:
                pushed = await self._poll_wait(connection)
            if not pushed:
                await connection.command(connection.client.noop(), "NOOP")  # the watchdog: a dead link times out
            await self._catch_up(connection)

    async def _idle(self, connection: _Connection) -> bool:
        """One IDLE window (at most ``idle_renew`` and ``noop_every``); True when the server pushed something."""
        client = connection.client
        window = max(0.05, min(self.idle_renew, self.noop_every))
        queue = connection.protocol.idle_queue
        while not queue.empty():  # left over from the end of the previous window: caught up since
            queue.get_nowait()
        idle = await connection.call(client.idle_start(timeout=window), "IDLE", stoppable=False)
        try:
            pushed = await connection.call(client.wait_server_push(timeout=window + self.timeout),
                                           "IDLE", timeout=window + self.timeout)
        finally:
            if connection.alive and client.has_pending_idle():
                client.idle_done()
                await connection.call(idle, "IDLE (DONE)", stoppable=False)
        return bool(pushed != aioimaplib.STOP_WAIT_SERVER_PUSH)

    async def _poll_wait(self, connection: _Connection) -> bool:
        """Wait ``imap_poll_seconds``, with a NOOP every ``noop_every``; always False (nothing pushed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.imap_poll_seconds
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            pause = min(remaining, self.noop_every)
            await connection.call(asyncio.sleep(pause), "polling", timeout=pause + 1)
            if deadline - loop.time() > 0:
                await connection.command(connection.client.noop(), "NOOP")

    def _up(self, connection: _Connection) -> None:
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

    # -- connecting ------------------------------------------------------------------------------

    async def _connect(self, stop: asyncio.Event | None) -> _Connection:
        """Connect, log in and select the folder; raises an :class:`ImapError` (or ``_Stopped``)."""
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()

        def on_lost(_exc: Exception | None) -> None:
            if not lost.done():
                lost.set_result(None)

        security = self.config.imap_security
        context = self.ssl_context or (ssl.create_default_context() if security != "none" else None)
        # IMAP4_SSL's constructor takes no conn_lost_cb; IMAP4 with an SSL context is the same connection with it
        client = aioimaplib.IMAP4(host=self.host, port=self.config.imap_port, timeout=self.timeout,
                                  conn_lost_cb=on_lost, ssl_context=context if security == "tls" else None)
        connection = _Connection(client, lost, stop, self.timeout)
        where = f"{self.host}:{self.config.imap_port}"
        try:
            await connection.call(client.wait_hello_from_server(), f"connect to {where}")
            if security == "starttls" and context is not None:
                await self._starttls(connection, context)
            response = await connection.call(client.login(aioimaplib.quoted(self.user), self._password), "LOGIN")
            if response.result != "OK":
                raise ImapLoginError(f"login as {self.user} at {where} refused: {_text(response.lines)}")
            await connection.call(connection.protocol.capability(), "CAPABILITY")  # the set after login
            response = await connection.command(client.select(aioimaplib.quoted(imap_utf7.encode(self.folder))),
                                                f"SELECT {self.folder}")
            found = next((_UIDVALIDITY.search(bytes(line)) for line in response.lines
                          if isinstance(line, (bytes, bytearray)) and _UIDVALIDITY.search(bytes(line))), None)
            if found is None:
                raise ImapCommandError(f"SELECT {self.folder}: the server sent no UIDVALIDITY")
            connection.uidvalidity = int(found.group(1))
        except BaseException:
            await connection.close(logout=False)
            raise
        return connection

    async def _starttls(self, connection: _Connection, context: ssl.SSLContext) -> None:
        """Upgrade the plain connection to TLS (aioimaplib has no STARTTLS of its own)."""
        protocol = connection.protocol
        if not connection.has("STARTTLS"):
            raise ImapConnectionError(f"{self.host} does not offer STARTTLS (imap_security = \"starttls\")")
        await connection.command(protocol.execute(aioimaplib.Command("STARTTLS", protocol.new_tag(),
                                                                     loop=protocol.loop)), "STARTTLS")
        loop = asyncio.get_running_loop()
        protocol.transport = await connection.call(
            loop.start_tls(protocol.transport, protocol, context, server_hostname=self.host), "TLS handshake")
        await connection.call(protocol.capability(), "CAPABILITY")  # asked again over TLS (RFC 3501 6.2.1)

    # -- catching up ----------------------------------------------------------------------------

    async def catch_up(self) -> int:
        """Ingest every mail above the checkpoint, oldest first; how many were stored (duplicates not counted).

        Uses a connection of its own for this call (while :meth:`run` may wait in IDLE on another).
        """
        connection = await self._connect(None)
        try:
            return await self._catch_up(connection)
        finally:
            await connection.close(logout=True)

    async def _catch_up(self, connection: _Connection) -> int:
        async with self._round:
            return await self._catch_up_now(connection)

    async def _catch_up_now(self, connection: _Connection) -> int:
        uidvalidity = connection.uidvalidity
        last_uid, unmarked = await asyncio.to_thread(self.db.run_direct, lambda d: (
            self._open_checkpoint(d, uidvalidity), self._unmarked(d, uidvalidity)))
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
            await asyncio.to_thread(self.db.run_direct, lambda d: self._forget_marked(d, marked))
        except Exception:  # noqa: BLE001 - at worst a mail is marked twice after a restart: harmless
            self._marked = marked + self._marked

    async def _read_new(self, connection: _Connection, uidvalidity: int, last_uid: int) -> int:
        response = await connection.command(
            connection.client.uid_search("UID", f"{last_uid + 1}:*", charset=None), "UID SEARCH")
        uids = sorted({int(word) for line in response.lines[:-1] if isinstance(line, bytes)
                       for word in line.split() if word.isdigit() and int(word) > last_uid})
        ingested = 0
        for uid in uids:
            if self._stop is not None and self._stop.is_set():
                break
            raw = await self._fetch(connection, uid)
            if raw is None:
                log.warning("IMAP %s: mail %d was gone before it could be fetched (expunged by another client)",
                            self.mailbox, uid)
                continue
            source = f"imap:{self.user}@{self.host}/{self.folder}#{uid}"
            try:
                result = await asyncio.to_thread(
                    self.intake.ingest_raw, raw, source=source,
                    also=functools.partial(self._advance, uidvalidity=uidvalidity, uid=uid))
            except (OperationalError, InterfaceError):
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

    def _open_checkpoint(self, direct: Direct, uidvalidity: int) -> int:
        """The last UID to read from: the checkpoint's, or 0 on a first start or a changed UIDVALIDITY."""
        row = direct.one("SELECT id, uidvalidity, last_uid FROM mail_checkpoints WHERE mailbox = :m",
                         {"m": self.mailbox})
        now = self.now()
        if row is None:
            log.info("IMAP %s: first start, reading every mail in the folder", self.mailbox)
            direct.insert(_CHECKPOINTS, {"mailbox": self.mailbox, "uidvalidity": uidvalidity, "last_uid": 0,
                                         "updated_at": now})
            return 0
        checkpoint_id, stored, last_uid = int(row[0]), int(row[1]), int(row[2])
        if stored == uidvalidity:
            return last_uid
        log.warning("IMAP %s: UIDVALIDITY changed from %d to %d; reading the whole folder again "
                    "(mail already stored is recognised by its Message-ID)", self.mailbox, stored, uidvalidity)
        direct.update(_CHECKPOINTS, checkpoint_id, {"uidvalidity": uidvalidity, "last_uid": 0, "updated_at": now})
        direct.insert(_EVENTS, {"kind": "mail_uidvalidity_changed", "at": now, "actor": "slabot",
                                "data": {"mailbox": self.mailbox, "old": stored, "new": uidvalidity,
                                         "last_uid": last_uid}})
        return 0

    def _advance(self, direct: Direct, uidvalidity: int, uid: int, *, to_mark: bool = True) -> None:
        """Move the checkpoint forward to ``uid`` (inside the transaction that stores the mail); ``to_mark``
        records that the mail is still to be marked seen or moved, which survives a crash before that."""
        direct.execute(
            "UPDATE mail_checkpoints SET last_uid = :u, updated_at = :t "
            "WHERE mailbox = :m AND uidvalidity = :v AND last_uid < :u",
            {"u": uid, "v": uidvalidity, "m": self.mailbox,
             "t": direct.value(_CHECKPOINTS, "updated_at", self.now())})
        if to_mark:
            direct.execute("INSERT INTO mail_unmarked (mailbox, uidvalidity, uid) VALUES (:m, :v, :u) "
                           "ON CONFLICT DO NOTHING", {"m": self.mailbox, "v": uidvalidity, "u": uid})

    def _unmarked(self, direct: Direct, uidvalidity: int) -> list[int]:
        """The UIDs committed and not yet marked in this folder; those of an older UIDVALIDITY are dropped."""
        direct.execute("DELETE FROM mail_unmarked WHERE mailbox = :m AND uidvalidity <> :v",
                       {"m": self.mailbox, "v": uidvalidity})
        rows = direct.execute("SELECT uid FROM mail_unmarked WHERE mailbox = :m AND uidvalidity = :v ORDER BY uid",
                              {"m": self.mailbox, "v": uidvalidity}).fetchall()
        return [int(row[0]) for row in rows]

    def _forget_marked(self, direct: Direct, marked: list[tuple[int, int]]) -> None:
        """Drop the records of mail marked (or given up on) this round."""
        direct.execute_many("DELETE FROM mail_unmarked WHERE mailbox = :m AND uidvalidity = :v AND uid = :u",
                            [{"m": self.mailbox, "v": uidvalidity, "u": uid} for uidvalidity, uid in marked])

    async def _fetch(self, connection: _Connection, uid: int) -> bytes | None:
        response = await connection.command(connection.client.uid("fetch", str(uid), "(UID BODY.PEEK[])"),
                                            f"UID FETCH {uid}")
        lines = response.lines
        for index, line in enumerate(lines[:-1]):
            if not isinstance(line, bytes) or not line.rstrip().endswith(b"}"):
                continue
            literal = lines[index + 1]
            after = lines[index + 2] if index + 2 < len(lines) - 1 else b""  # "UID n)" may follow the literal
            found = _FETCH_UID.search(line) or _FETCH_UID.search(b"(" + bytes(after))
            if found and int(found.group(1)) == uid and isinstance(literal, (bytes, bytearray)):
                return bytes(literal)
        return None

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

        def skip(direct: Direct) -> None:
            self._advance(direct, uidvalidity, uid, to_mark=False)  # it stays in the folder, unseen
            direct.insert(_EVENTS, {"kind": "mail_skipped", "at": now, "actor": "slabot",
                                    "data": {"mailbox": self.mailbox, "uidvalidity": uidvalidity, "uid": uid,
                                             "source": source, "error": reason, "rounds": rounds,
                                             "staff_told": True}})

        await asyncio.to_thread(self.db.run_direct, skip)
        del self._status.poison[key]
        log.error("%s skipped after %d failed rounds (%s): it stays in the mailbox, not marked seen; "
                  "later mail goes on", source, rounds, reason)
        return True

    async def _after_commit(self, connection: _Connection, uidvalidity: int, uid: int) -> None:
        """Mark the committed mail ``uid`` seen, or move it; a refusal is logged, a lost connection raises."""
        try:
            if self.config.imap_move_to:
                await self._move(connection, uid, self.config.imap_move_to)
            else:
                await connection.command(connection.client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Seen)"),
                                         f"UID STORE {uid} \\Seen", stoppable=False)
        except ImapCommandError as exc:
            log.warning("IMAP %s: mail %d is stored but could not be marked: %s", self.mailbox, uid, exc)
        self._unflagged.discard((uidvalidity, uid))
        self._marked.append((uidvalidity, uid))

    async def _move(self, connection: _Connection, uid: int, target: str) -> None:
        client = connection.client
        folder = aioimaplib.quoted(imap_utf7.encode(target))  # "Afgehandeld ✓" as the server names it
        for attempt in (1, 2):
            if connection.has("MOVE"):
                response = await connection.call(client.uid("move", str(uid), folder), f"UID MOVE {uid}",
                                                 stoppable=False)
            else:
                response = await connection.call(client.uid("copy", str(uid), folder), f"UID COPY {uid}",
                                                 stoppable=False)
            if response.result == "OK":
                break
            if attempt == 1 and b"TRYCREATE" in b" ".join(x for x in response.lines if isinstance(x, bytes)):
                await connection.command(client.create(folder), f"CREATE {target}", stoppable=False)
                log.info("IMAP %s: created the folder %s", self.mailbox, target)
                continue
            raise ImapCommandError(f"moving mail {uid} to {target} refused: {_text(response.lines)}")
        if connection.has("MOVE"):
            return
        await connection.command(client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Deleted)"),
                                 f"UID STORE {uid} \\Deleted", stoppable=False)
        if connection.has("UIDPLUS"):
            await connection.command(client.uid("expunge", str(uid)), f"UID EXPUNGE {uid}", stoppable=False)
        else:  # expunges every \Deleted mail in the folder: the only way without UIDPLUS
            await connection.command(client.expunge(), "EXPUNGE", stoppable=False)


__all__ = ["ImapCommandError", "ImapConnectionError", "ImapError", "ImapIntake", "ImapLoginError",
           "ImapTimeoutError", "describe"]
