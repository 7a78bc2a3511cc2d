"""Shared set-up for the intake and outbox tests: accounts, messages, and looking at what was stored.

Also the entry point of the child processes that the cross-process duplicate test
spawns (it must live in an importable module, not in a test file).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from alembic import command
from sqlalchemy import create_engine, func, select, text

from bot.intake import IntakePipeline, IntakeResult
from bot.presets import load_preset
from channels.identity import email_identity, phone_identity
from channels.messages import ChannelName, InboundMessage
from sla_engine.policy import Preset
from storage import models as m
from storage.database import Database, alembic_config, open_database
from storage.records import AccountInput, ContactInput, MessageRecord, OutboxRecord, ReminderRecord, TicketRecord
from storage.repositories import (
    TICKET_NUMBERS,
    AccountRepository,
    OutboxRepository,
    ReminderRepository,
    TicketRepository,
)

if TYPE_CHECKING:
    from bot.app import Application

AMS = ZoneInfo("Europe/Amsterdam")
# Monday 23 November 2026, 10:00 in Amsterdam (+01:00): the SPEC's worked example
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=AMS)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A local Amsterdam instant."""
    return datetime(year, month, day, hour, minute, tzinfo=AMS)


@lru_cache(maxsize=None)
def preset(name: str) -> Preset:
    return load_preset(name)


PREFIX = {"mailcampaigns": "MC", "paynl": "PN"}


# -- loopback servers, waiting, the application, the command line ----------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def downgrade(db: Database, revision: str) -> None:
    """Alembic's downgrade of ``db`` to ``revision`` (``"-1"``: one step); :meth:`Database.upgrade` goes back up."""
    config = alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def end_backends(url: str, where: str, params: dict[str, Any] | None = None) -> int:
    """PostgreSQL ends the connections to the database of ``url`` that meet ``where`` (a condition on
    ``pg_stat_activity``), as a restart of the server would end them all; how many it ended. Never the asking one."""
    db = Database(url)
    try:
        return int(db.read_direct(lambda d: d.scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
            f"AND pid <> pg_backend_pid() AND {where}", params or {})))
    finally:
        db.dispose()


@asynccontextmanager
async def table_locked(url: str, table: str) -> AsyncIterator[Callable[[str], Awaitable[None]]]:
    """``table`` locked by another connection (PostgreSQL), so every statement on it waits; yields ``end_twice``:
    wait until a statement beginning with its argument waits, have PostgreSQL end that connection (as its restart
    would), then the same for the statement's second try on a new connection. The lock is given up on leaving."""
    engine = create_engine(url)
    holder = await asyncio.to_thread(engine.connect)

    async def end_twice(statement: str) -> None:
        for attempt in ("the statement", "its second try on a new connection"):
            async def ended() -> bool:
                return await asyncio.to_thread(
                    end_backends, url, "wait_event_type = 'Lock' AND starts_with(query, :statement)",
                    {"statement": statement}) > 0

            await until(ended, what=f"{attempt} waiting for {table}")

    try:
        await asyncio.to_thread(holder.exec_driver_sql, f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield end_twice
    finally:
        await asyncio.to_thread(holder.close)
        engine.dispose()


async def until(condition: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0, what: str = "") -> None:
    """Wait for ``condition`` (sync or async) to hold."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def app_running(app: Application) -> AsyncIterator[Application]:
    """``app.run`` in a task for the block, which begins once the application has started; stopped after it."""
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        started = asyncio.create_task(app.started.wait())
        await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            started.cancel()
            await task
            raise AssertionError("the application stopped while starting")
        yield app
    finally:
        stop.set()
        await task


@contextmanager
def served_in_thread(app: Any) -> Iterator[tuple[str, asyncio.AbstractEventLoop]]:
    """``app`` (a stand-in) served on loopback from a thread of its own, for ``slabot run`` in other processes:
    its base URL and the event loop that serves it (pushes and knobs go through that loop)."""
    from bot.demo.standins.loopback import serving

    ready = threading.Event()
    running: list[tuple[asyncio.AbstractEventLoop, asyncio.Event, str]] = []

    async def serve() -> None:
        stop = asyncio.Event()
        async with serving(app) as url:
            running.append((asyncio.get_running_loop(), stop, url))
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    loop, stop, url = running[0]
    try:
        yield url, loop
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def start_slabot(config: Path, cwd: Path) -> subprocess.Popen[str]:
    """``slabot --config CONFIG run`` in a process of its own (its log on stderr)."""
    exe = Path(sys.executable).parent / "slabot"
    return subprocess.Popen([str(exe), "--config", str(config), "run"], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for_health(port: int, proc: subprocess.Popen[str], timeout: float = 20.0) -> dict[str, object]:
    """The first answer of ``GET /healthz`` of the ``slabot run`` in ``proc``, listening on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"slabot run exited early with {proc.returncode}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                body = json.loads(response.read())
                assert isinstance(body, dict)
                return body
        except OSError:
            time.sleep(0.1)
    raise AssertionError("slabot run did not answer /healthz in time")


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``slabot ARGV`` in this process: (exit code, stdout, stderr)."""
    from bot.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        code = main(list(argv), out, err)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


# -- set-up --------------------------------------------------------------------------------------


def add_account(db: Database, name: str, plan: str, *contacts: ContactInput, staff: str | None = None,
                language: str = "nl", now: datetime = MONDAY_10) -> int:
    """Store an account with its contacts (identities already normalised)."""
    data = AccountInput(name=name, plan=plan, staff=staff, language=language, contacts=tuple(contacts))
    account_id, _ = db.run(lambda s: AccountRepository(s).upsert(data, now))
    return account_id


def contact(name: str, *, email: str | None = None, phone: str | None = None, role: str = "contact",
            authorised: bool = True, language: str | None = None) -> ContactInput:
    return ContactInput(name=name, emails=(email,) if email else (), phones=(phone,) if phone else (),
                        role=role, authorised=authorised, language=language)


def pipeline(db: Database, preset_name: str, now: datetime = MONDAY_10) -> IntakePipeline:
    return IntakePipeline(db, preset(preset_name), now=lambda: now)


def email(external_id: str, sender: str, text: str, *, received_at: datetime = MONDAY_10,
          subject: str | None = "Vraag", thread_refs: tuple[str, ...] = (), critical: bool = False,
          automatic: bool = False) -> InboundMessage:
    return InboundMessage(ChannelName.EMAIL, external_id, email_identity(sender), received_at, text,
                          subject=subject, thread_refs=thread_refs, critical=critical, automatic=automatic)


def whatsapp(external_id: str, sender: str, text: str, *, received_at: datetime = MONDAY_10,
             critical: bool = False, automatic: bool = False) -> InboundMessage:
    return InboundMessage(ChannelName.WHATSAPP, external_id, phone_identity(sender), received_at, text,
                          critical=critical, automatic=automatic)


# -- looking at what was stored ----------------------------------------------------------------


def ticket(db: Database, ref: str) -> TicketRecord:
    found = db.run(lambda s: TicketRepository(s).by_ref(ref, with_messages=True))
    assert found is not None, f"no ticket {ref}"
    return found


def outbound(record: TicketRecord) -> list[MessageRecord]:
    return [msg for msg in record.messages if msg.direction == "out"]


def inbound(record: TicketRecord) -> list[MessageRecord]:
    return [msg for msg in record.messages if msg.direction == "in"]


def reminders(db: Database, ticket_id: int) -> list[ReminderRecord]:
    return db.run(lambda s: ReminderRepository(s).for_ticket(ticket_id))


def kept(db: Database) -> list[MessageRecord]:
    return db.run(lambda s: TicketRepository(s).kept_messages())


def outbox_counts(db: Database) -> dict[str, int]:
    return db.run(lambda s: OutboxRepository(s).counts())


def outbox_rows(db: Database) -> list[OutboxRecord]:
    return db.run(lambda s: OutboxRepository(s).all())


def message_texts_out(db: Database) -> list[MessageRecord]:
    """Every outbound message, with or without a ticket."""
    def work(s: Any) -> list[MessageRecord]:
        ids = s.scalars(select(m.Message.id).where(m.Message.direction == "out").order_by(m.Message.id)).all()
        repo = TicketRepository(s)
        return [repo.message(i) for i in ids]

    return db.run(work)


def count_rows(db: Database) -> dict[str, int]:
    """How many rows each table that intake writes holds, and the highest ticket number given (``numbers``: the
    counters' on SQLite, the sequence's on PostgreSQL; 0 before the first)."""
    def work(s: Any) -> dict[str, int]:
        counts = {model.__tablename__: int(s.scalar(select(func.count()).select_from(model)))
                  for model in (m.Ticket, m.Message, m.Outbox, m.Reminder, m.Event, m.Counter, m.Attachment)}
        if db.is_sqlite:
            counts["numbers"] = int(s.scalar(select(func.coalesce(func.max(m.Counter.value), 0))
                                             .where(m.Counter.name.like("ticket:%"))))
        else:
            counts["numbers"] = int(s.execute(text(f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END "
                                                   f"FROM {TICKET_NUMBERS}")).scalar_one())
        return counts

    return db.run(work)


# -- child process for the cross-process duplicate test -------------------------------------------


def ingest_in_child(url: str, preset_name: str, external_id: str, sender: str, text: str,
                    barrier: Any, results: Any) -> None:
    """Open the database afresh in this process, wait for the other process, ingest one e-mail."""
    db = open_database(url)
    try:
        runner = pipeline(db, preset_name)
        msg = email(external_id, sender, text)
        barrier.wait(60)  # both processes are ready: deliver at the same moment
        result: IntakeResult = runner.ingest(msg)
        results.put(result.outcome.value)
    except BaseException as exc:  # report it to the parent rather than dying silently
        results.put(f"error: {exc!r}")
        raise
    finally:
        db.dispose()
