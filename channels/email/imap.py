"""The IMAP client: one logged-in connection (aioimaplib) with its folder selected, read by UID.

:func:`connect` connects (TLS, STARTTLS or plain), logs in, selects the folder
and reads its UIDVALIDITY; the :class:`ImapConnection` it returns searches for
the UIDs above one, fetches a mail's raw bytes with ``BODY.PEEK[]`` (nothing is
marked seen by reading it) and its INTERNALDATE (when the mailbox received it:
the start of the SLA clock, R23), marks one ``\\Seen`` or moves it to another folder
(created when the server says TRYCREATE), and waits in IDLE or between polls.

aioimaplib leaves pending calls hanging when the connection drops; every call
here therefore also waits on the ``conn_lost_cb`` callback, on a timeout and
(where it may) on ``stop``, which ends it with :class:`ImapStopped`. Library
errors come out as the :mod:`channels.email.errors` tree.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import aioimaplib  # type: ignore[import-untyped]

from channels.email import imap_utf7
from channels.email.errors import (
    ImapCommandError,
    ImapConnectionError,
    ImapError,
    ImapLoginError,
    ImapTimeoutError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

LOGOUT_TIMEOUT = 2.0
CLOSE_TIMEOUT = 1.0  # seconds a closed connection may take to be gone before it is aborted
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_RFC822_SIZE = re.compile(rb"RFC822\.SIZE (\d+)", re.IGNORECASE)
_FETCH_UID = re.compile(rb"\(.*\bUID (\d+)\b", re.IGNORECASE)
_INTERNALDATE = re.compile(
    rb'\bINTERNALDATE "\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"', re.IGNORECASE)
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}


class ImapStopped(Exception):
    """``stop`` was set while waiting on the server."""


@dataclass(frozen=True)
class ImapSettings:
    """Where the mailbox is and how to reach it."""

    host: str
    user: str
    password: str
    port: int = 993
    folder: str = "INBOX"
    security: str = "tls"  # tls | starttls | none
    timeout: float = 30.0  # for one command
    ssl_context: ssl.SSLContext | None = None  # None: the system's trusted certificates

    @property
    def mailbox(self) -> str:
        """The folder's name in logs and checkpoints: ``user@host:port/folder``."""
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"


def _text(lines: list[Any]) -> str:
    last = lines[-1] if lines else b""
    return last.decode(errors="replace") if isinstance(last, (bytes, bytearray)) else str(last)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" at shutdown


def uidvalidity_of(lines: list[Any]) -> int | None:
    """The UIDVALIDITY a SELECT answered with, or None."""
    for line in lines:
        found = _UIDVALIDITY.search(bytes(line)) if isinstance(line, (bytes, bytearray)) else None
        if found is not None:
            return int(found.group(1))
    return None


@dataclass(frozen=True)
class FetchedMail:
    """One mail as fetched: its raw bytes, and when the mailbox received it (None when the server did not say)."""

    raw: bytes
    internaldate: datetime | None


def internaldate(text: bytes) -> datetime | None:
    """The INTERNALDATE in a FETCH answer's text (``"17-Jul-1996 02:44:25 -0700"``), aware; None when absent."""
    found = _INTERNALDATE.search(text)
    if found is None:
        return None
    day, month, year, hour, minute, second, sign, off_h, off_m = (part.decode() for part in found.groups())
    number = _MONTHS.get(month.lower())
    if number is None:
        return None
    offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    try:
        return datetime(int(year), number, int(day), int(hour), int(minute), int(second),
                        tzinfo=timezone(offset))
    except ValueError:  # 31-Feb, an offset of a day or more
        return None


def fetched_mail(lines: list[Any], uid: int) -> FetchedMail | None:
    """The mail in a ``UID FETCH uid (UID INTERNALDATE BODY.PEEK[])`` answer, or None when it was not sent."""
    for index, line in enumerate(lines[:-1]):
        if not isinstance(line, bytes) or not line.rstrip().endswith(b"}"):
            continue
        literal = lines[index + 1]
        after = lines[index + 2] if index + 2 < len(lines) - 1 else b""  # "UID n)" may follow the literal
        found = _FETCH_UID.search(line) or _FETCH_UID.search(b"(" + bytes(after))
        if found and int(found.group(1)) == uid and isinstance(literal, (bytes, bytearray)):
            return FetchedMail(bytes(literal), internaldate(line) or internaldate(bytes(after)))
    return None


def fetched_sizes(lines: list[Any]) -> dict[int, int]:
    """UID -> RFC822.SIZE in a ``UID FETCH set (UID RFC822.SIZE)`` answer."""
    sizes: dict[int, int] = {}
    for line in lines:
        if isinstance(line, (bytes, bytearray)):
            uid, size = _FETCH_UID.search(line), _RFC822_SIZE.search(line)
            if uid and size:
                sizes[int(uid.group(1))] = int(size.group(1))
    return sizes


def fetched_body(lines: list[Any], uid: int) -> bytes | None:
    """The literal of a ``UID FETCH uid (UID BODY.PEEK[])`` answer, or None when the mail was not sent."""
    fetched = fetched_mail(lines, uid)
    return None if fetched is None else fetched.raw


class ImapConnection:
    """One logged-in aioimaplib client with its folder selected; every call races loss, stop and a timeout."""

    def __init__(self, client: Any, lost: asyncio.Future[None], stop: asyncio.Event | None,
                 settings: ImapSettings) -> None:
        self.client = client
        self.lost = lost
        self.settings = settings
        self.timeout = settings.timeout
        self.uidvalidity = 0
        self._stop_task: asyncio.Task[Any] | None = (asyncio.ensure_future(stop.wait()) if stop is not None
                                                     else None)

    @property
    def protocol(self) -> Any:
        return self.client.protocol

    def has(self, capability: str) -> bool:
        """Whether the server announced ``capability`` (IDLE, MOVE, UIDPLUS, STARTTLS)."""
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
            raise ImapStopped
        raise ImapTimeoutError(f"{what}: no answer from the server in time")

    async def command(self, awaitable: Awaitable[Any], what: str, *, stoppable: bool = True) -> Any:
        """Like :meth:`call`, for a command whose answer must be OK."""
        response = await self.call(awaitable, what, stoppable=stoppable)
        if response.result != "OK":
            raise ImapCommandError(f"{what} refused: {response.result} {_text(response.lines)}".rstrip())
        return response

    # -- waiting for mail ---------------------------------------------------------------------------

    async def noop(self) -> None:
        """A NOOP: the watchdog, a dead link times out."""
        await self.command(self.client.noop(), "NOOP")

    async def idle(self, window: float) -> bool:
        """One IDLE window of ``window`` seconds; True when the server pushed something."""
        client = self.client
        queue = self.protocol.idle_queue
        while not queue.empty():  # left over from the end of the previous window: caught up since
            queue.get_nowait()
        idle = await self.call(client.idle_start(timeout=window), "IDLE", stoppable=False)
        try:
            pushed = await self.call(client.wait_server_push(timeout=window + self.timeout),
                                     "IDLE", timeout=window + self.timeout)
        finally:
            if self.alive and client.has_pending_idle():
                client.idle_done()
                await self.call(idle, "IDLE (DONE)", stoppable=False)
        return bool(pushed != aioimaplib.STOP_WAIT_SERVER_PUSH)

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` between polls; raises when the connection drops or ``stop`` is set meanwhile."""
        await self.call(asyncio.sleep(seconds), "polling", timeout=seconds + 1)

    # -- reading and marking mail -------------------------------------------------------------------

    async def uids_after(self, last_uid: int) -> list[int]:
        """The UIDs in the folder above ``last_uid``, oldest first."""
        response = await self.command(self.client.uid_search("UID", f"{last_uid + 1}:*", charset=None),
                                      "UID SEARCH")
        return sorted({int(word) for line in response.lines[:-1] if isinstance(line, bytes)
                       for word in line.split() if word.isdigit() and int(word) > last_uid})

    async def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """The RFC822.SIZE of each of ``uids`` that the folder has, in one command."""
        if not uids:
            return {}
        response = await self.command(self.client.uid("fetch", f"{min(uids)}:{max(uids)}", "(UID RFC822.SIZE)"),
                                      "UID FETCH RFC822.SIZE")
        return fetched_sizes(response.lines)

    async def fetch(self, uid: int, *, header_only: bool = False) -> FetchedMail | None:
        """Mail ``uid`` with its INTERNALDATE, not marked seen; None when it is gone (expunged by another client).
        ``header_only``: its header block only (``BODY.PEEK[HEADER]``), for a mail too large to take in."""
        section = "BODY.PEEK[HEADER]" if header_only else "BODY.PEEK[]"
        response = await self.command(self.client.uid("fetch", str(uid), f"(UID INTERNALDATE {section})"),
                                      f"UID FETCH {uid}")
        return fetched_mail(response.lines, uid)

    async def mark_seen(self, uid: int) -> None:
        """Mark mail ``uid`` ``\\Seen``."""
        await self.command(self.client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Seen)"),
                           f"UID STORE {uid} \\Seen", stoppable=False)

    async def move(self, uid: int, target: str) -> None:
        """Move mail ``uid`` to the folder ``target`` (MOVE, else COPY and expunge), creating it if needed."""
        client = self.client
        folder = aioimaplib.quoted(imap_utf7.encode(target))  # "Afgehandeld ✓" as the server names it
        for attempt in (1, 2):
            if self.has("MOVE"):
                response = await self.call(client.uid("move", str(uid), folder), f"UID MOVE {uid}", stoppable=False)
            else:
                response = await self.call(client.uid("copy", str(uid), folder), f"UID COPY {uid}", stoppable=False)
            if response.result == "OK":
                break
            if attempt == 1 and b"TRYCREATE" in b" ".join(x for x in response.lines if isinstance(x, bytes)):
                await self.command(client.create(folder), f"CREATE {target}", stoppable=False)
                log.info("IMAP %s: created the folder %s", self.settings.mailbox, target)
                continue
            raise ImapCommandError(f"moving mail {uid} to {target} refused: {_text(response.lines)}")
        if self.has("MOVE"):
            return
        await self.command(client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Deleted)"),
                           f"UID STORE {uid} \\Deleted", stoppable=False)
        if self.has("UIDPLUS"):
            await self.command(client.uid("expunge", str(uid)), f"UID EXPUNGE {uid}", stoppable=False)
        else:  # expunges every \Deleted mail in the folder: the only way without UIDPLUS
            await self.command(client.expunge(), "EXPUNGE", stoppable=False)

    # -- closing ------------------------------------------------------------------------------------

    async def close(self, *, logout: bool) -> None:
        """Log out (politely, briefly) and close the transport; safe to call twice."""
        if logout and self.alive and self.protocol.state in ("AUTH", "SELECTED"):
            try:
                await self.call(self.client.logout(), "LOGOUT", timeout=LOGOUT_TIMEOUT, stoppable=False)
            except (ImapError, ImapStopped):
                pass
        transport = self.protocol.transport
        if transport is not None:
            transport.close()
            if not self.lost.done():  # a TLS close waits for the server's close_notify: not past CLOSE_TIMEOUT
                try:
                    await asyncio.wait_for(asyncio.shield(self.lost), CLOSE_TIMEOUT)
                except TimeoutError:
                    transport.abort()  # the socket under it closed too, not left to the garbage collector
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


async def connect(settings: ImapSettings, stop: asyncio.Event | None) -> ImapConnection:
    """Connect, log in and select the folder; raises an :class:`ImapError` (or :class:`ImapStopped`)."""
    loop = asyncio.get_running_loop()
    lost: asyncio.Future[None] = loop.create_future()

    def on_lost(_exc: Exception | None) -> None:
        if not lost.done():
            lost.set_result(None)

    security = settings.security
    context = settings.ssl_context or (ssl.create_default_context() if security != "none" else None)
    # IMAP4_SSL's constructor takes no conn_lost_cb; IMAP4 with an SSL context is the same connection with it
    client = aioimaplib.IMAP4(host=settings.host, port=settings.port, timeout=settings.timeout,
                              conn_lost_cb=on_lost, ssl_context=context if security == "tls" else None)
    connection = ImapConnection(client, lost, stop, settings)
    where = f"{settings.host}:{settings.port}"
    try:
        await connection.call(client.wait_hello_from_server(), f"connect to {where}")
        if security == "starttls" and context is not None:
            await _starttls(connection, context)
        response = await connection.call(client.login(aioimaplib.quoted(settings.user), settings.password), "LOGIN")
        if response.result != "OK":
            raise ImapLoginError(f"login as {settings.user} at {where} refused: {_text(response.lines)}")
        await connection.call(connection.protocol.capability(), "CAPABILITY")  # the set after login
        response = await connection.command(client.select(aioimaplib.quoted(imap_utf7.encode(settings.folder))),
                                            f"SELECT {settings.folder}")
        uidvalidity = uidvalidity_of(response.lines)
        if uidvalidity is None:
            raise ImapCommandError(f"SELECT {settings.folder}: the server sent no UIDVALIDITY")
        connection.uidvalidity = uidvalidity
    except BaseException:
        await connection.close(logout=False)
        raise
    return connection


async def _starttls(connection: ImapConnection, context: ssl.SSLContext) -> None:
    """Upgrade the plain connection to TLS (aioimaplib has no STARTTLS of its own)."""
    protocol = connection.protocol
    host = connection.settings.host
    if not connection.has("STARTTLS"):
        raise ImapConnectionError(f"{host} does not offer STARTTLS (imap_security = \"starttls\")")
    await connection.command(protocol.execute(aioimaplib.Command("STARTTLS", protocol.new_tag(),
                                                                 loop=protocol.loop)), "STARTTLS")
    loop = asyncio.get_running_loop()
    protocol.transport = await connection.call(
        loop.start_tls(protocol.transport, protocol, context, server_hostname=host), "TLS handshake")
    await connection.call(protocol.capability(), "CAPABILITY")  # asked again over TLS (RFC 3501 6.2.1)


__all__ = ["FetchedMail", "ImapCommandError", "ImapConnection", "ImapConnectionError", "ImapError",
           "ImapLoginError", "ImapSettings", "ImapStopped", "ImapTimeoutError", "connect", "fetched_body",
           "fetched_mail", "internaldate", "uidvalidity_of"]
