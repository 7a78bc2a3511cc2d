"""Mail files read and parsed ahead: by reader processes while the importing process stores what they read.

A folder import (``slabot ingest email DIR``) spends about as long parsing a
mail as storing it. :func:`read_ahead` hands chunks of file names to
``READERS`` processes over plain pipes (no threads in the importing process),
each reader reads and parses its chunks (:func:`read_mail`), and the results
come back in file order. Readers are forked, and only from a process that
runs no other thread; otherwise (and on a single core) the files are read in
the importing process, in the same order.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from channels.email.parse import HEADER_BLOCK_LIMIT, MailParseError, ParsedMail, header_block, parse_email
from channels.messages import utc_now

log = logging.getLogger(__name__)

READERS = 2  # processes that read and parse ahead; beyond two the storing is what limits
READ_AHEAD = 2  # chunks given to each reader ahead of the one being used



@dataclass(frozen=True)
class TooLarge:
    """A mail file over the size cap: only its header block was read; ``size`` is the whole file's."""

    size: int


@dataclass(frozen=True)
class Unreadable:
    """Bytes that cannot be read as a mail: why, and the traceback when the parser itself failed."""

    reason: str
    traceback: str | None = None


def read_mail(raw: bytes, now: Callable[[], datetime] = utc_now, *, received_at: datetime | None = None
              ) -> ParsedMail | Unreadable:
    """``raw`` parsed (:func:`channels.email.parse.parse_email`), or why it cannot be; never raises.

    ``received_at``: when the desk's mailbox received it (IMAP INTERNALDATE); without it, the topmost
    Received header, else ``now()``: the moment it is read.
    """
    try:
        return parse_email(raw, received_at=received_at, now=now)
    except MailParseError as exc:
        return Unreadable(str(exc))
    except Exception as exc:  # noqa: BLE001 - a parser bug must not lose the mail or stop the intake
        return Unreadable(f"parser error {exc.__class__.__name__}: {exc}", traceback.format_exc())


FileRead = tuple[bytes, ParsedMail | Unreadable | TooLarge] | OSError
"""A file's bytes and what :func:`read_mail` made of them (for a file over the size cap: its header block and
:class:`TooLarge`), or the OSError that kept it unread."""


def read_ahead(chunks: Sequence[Sequence[Path]], readers: int = READERS, now: Callable[[], datetime] = utc_now,
               max_bytes: int | None = None) -> Generator[list[FileRead], None, None]:
    """Each chunk's reads, in order: chunk i read by reader i mod n, or here when there are no readers.

    Plain pipes, no threads: this process only sends file names and receives
    the results it waits for. A reader that dies is not replaced: from that
    chunk on, the files are read here. A file over ``max_bytes`` is not read
    whole: only its header block (:class:`TooLarge`).
    """
    pipes = _start_readers(readers) if len(chunks) > 1 else []
    try:
        sent = 0
        for index, chunk in enumerate(chunks):
            reads: list[FileRead] | None = None
            if pipes:
                try:
                    while sent < min(len(chunks), index + READ_AHEAD * len(pipes)):
                        pipes[sent % len(pipes)][1].send(([str(p) for p in chunks[sent]], now(), max_bytes))
                        sent += 1
                    reads = pipes[index % len(pipes)][1].recv()
                except (EOFError, OSError):
                    log.warning("a process reading mail files stopped; the rest is read in this process")
                    _stop_readers(pipes)
                    pipes = []
            yield reads if reads is not None else _read_files([str(p) for p in chunk], now(), max_bytes)
    finally:
        _stop_readers(pipes)


def _read_files(paths: Sequence[str], now: datetime, max_bytes: int | None = None) -> list[FileRead]:
    """Each file's bytes and :func:`read_mail` of them, or its OSError; ``now``, the moment the files are read,
    is when a mail without a usable Received header was received. A file over ``max_bytes``: its header
    block and :class:`TooLarge`."""
    reads: list[FileRead] = []
    for path in paths:
        try:
            with open(path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if max_bytes is not None and size > max_bytes:
                    reads.append((header_block(file.read(HEADER_BLOCK_LIMIT)), TooLarge(size)))
                    continue
                raw = file.read()
        except OSError as exc:
            reads.append(exc)
            continue
        reads.append((raw, read_mail(raw, lambda: now)))
    return reads


def _reader(conn: Connection, inherited: Sequence[Connection]) -> None:
    """A reader process: (file names, now, max_bytes) in, their :func:`_read_files` out, until the pipe closes.

    ``inherited``: the importing process's ends of the pipes, which the
    reader holds too (it is forked); closed, so that a reader sees the end of
    its pipe when the importing process goes away.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the importing process's to handle
    for other in inherited:
        other.close()
    try:
        while True:
            conn.send(_read_files(*conn.recv()))
    except (EOFError, OSError):  # the importing process went away
        pass


def _start_readers(readers: int) -> list[tuple[BaseProcess, Connection]]:
    """Forked reader processes with their pipes. None on a single core, where fork is missing, or when
    this process runs other threads: a fork then risks a lock another thread holds, and a reader started
    afresh would run the program's main module again (a script without a ``__main__`` guard: all of it)."""
    if (readers < 1 or (os.cpu_count() or 1) < 2 or "fork" not in multiprocessing.get_all_start_methods()
            or threading.active_count() > 1):
        return []
    context = multiprocessing.get_context("fork")
    pipes: list[tuple[BaseProcess, Connection]] = []
    for _ in range(readers):
        ours, theirs = context.Pipe()
        inherited = [ours, *(conn for _, conn in pipes)]
        process = context.Process(target=_reader, args=(theirs, inherited), name="slabot-mail-reader",
                                  daemon=True)
        process.start()
        theirs.close()
        pipes.append((process, ours))
    return pipes


def _stop_readers(pipes: Sequence[tuple[BaseProcess, Connection]]) -> None:
    """The readers killed: they hold nothing but files read for chunks no longer wanted."""
    for process, conn in pipes:
        process.kill()
        conn.close()
    for process, _ in pipes:
        process.join()


__all__ = ["READERS", "FileRead", "TooLarge", "Unreadable", "read_ahead", "read_mail"]
