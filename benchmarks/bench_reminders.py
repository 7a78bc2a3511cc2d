"""Benchmark: the reminder service (R16) on a database of 100,000 open tickets.

A child process fills a fresh database (SQLite by default, PostgreSQL with
``--pg URL``) with plain DBAPI inserts (``storage/direct.py``): 500 accounts and
N open tickets (default 100,000), each with its three planned reminders (75%,
1 hour before, the breach), due between 2 hours and 14 days ahead. Then, in
this process, 1,000 of those tickets get their 75% reminder moved into one
minute that starts a few seconds after the service starts, at seeded random
instants, and ``ReminderService`` starts on the real clock with a notifier that
returns at once (``--notify-ms`` makes it take that long, like a chat API).

It prints

- the rebuild on start: from ``start()`` until the first round has run (due
  reminders caught up, planned ones counted, the wake-up armed at the next due
  instant);
- the lateness of the 1,000 reminders (the notifier's call minus ``due_at``:
  median, p99, max) and how many rounds the service ran meanwhile;
- memory: ru_maxrss of this process (the database was filled by the child, so
  this is the service and the imports) and, unless ``--no-trace``, the
  tracemalloc peak of a second pass (the same reminders re-planned into a new
  minute, a new service; tracing slows every allocation, so it is not timed);
- checks: each of the 1,000 sent exactly once and none early, every other
  reminder still planned.

Targets: rebuild < 5 s, p99 lateness < 1 s, memory < 300 MB. Each gets
PASS/FAIL; the script always exits 0. The run takes about 2.5 minutes on
SQLite (set-up about 20 s, each pass a minute and a bit).

    .venv/bin/python benchmarks/bench_reminders.py [--tickets 100000] [--burst 1000] [--window 60]
        [--lead 5] [--notify-ms 0] [--seed 1] [--no-trace] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import multiprocessing
import os
import platform
import random
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.reminders import ReminderNotice, ReminderService  # noqa: E402
from storage import models as m  # noqa: E402
from storage.database import Database, open_database  # noqa: E402
from storage.direct import Direct  # noqa: E402

ACCOUNTS = 500
CHUNK = 10_000  # tickets per insert transaction
SPECS = (("75%", False), ("1h before", False), ("breach", True))
PLANS = (("licentie", 0), ("ondersteuning", 1), ("project", 1))
STAFF = ("marloes", "jeroen", "kim", None)
TARGET_REBUILD_S, TARGET_P99_S, TARGET_MEMORY_MIB = 5.0, 1.0, 300.0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def nearest_rank(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else float("nan")


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- the database ---------------------------------------------------------------------------------------------------


@contextmanager
def fresh_database(folder: Path, pg_url: str | None) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in ``folder``, or a PostgreSQL schema dropped afterwards."""
    if pg_url is None:
        yield f"sqlite:///{folder / 'bench_reminders.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}_reminders"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def fill(url: str, tickets: int, seed: int) -> None:
    """Migrate, then insert the accounts, the open tickets and their planned reminders (in a child process)."""
    rng = random.Random(seed)
    db = open_database(url)
    now = datetime.now(timezone.utc)
    plans = [rng.choice(PLANS) for _ in range(ACCOUNTS)]

    def accounts(d: Direct) -> None:
        d.insert_many(m.Account.__table__, ({
            "id": i + 1, "name": f"Klant {i + 1:03d}", "plan": plans[i][0], "staff": rng.choice(STAFF),
            "language": "nl", "created_at": now, "updated_at": now,
        } for i in range(ACCOUNTS)))

    def chunk(d: Direct, first: int, last: int) -> None:
        ticket_rows, reminder_rows = [], []
        for t in range(first, last + 1):
            account = rng.randrange(ACCOUNTS)
            plan, priority = plans[account]
            received = now - timedelta(minutes=rng.randrange(1, 600))
            dues = sorted(now + timedelta(seconds=rng.uniform(2 * 3600, 14 * 86400)) for _ in SPECS)
            ticket_rows.append({
                "id": t, "ref": f"MC-{10000 + t}", "account_id": account + 1, "channel": "email",
                "thread_key": f"klant{t}@example.nl", "subject": f"Vraag {t}", "state": "open", "plan": plan,
                "queue_priority": priority, "received_at": received, "first_response_due": dues[-1],
                "decision": "new_ticket", "created_at": received, "updated_at": received,
            })
            reminder_rows.extend({
                "id": 3 * (t - 1) + k + 1, "ticket_id": t, "spec": spec, "due_at": due, "escalate": escalate,
                "state": "planned",
            } for k, ((spec, escalate), due) in enumerate(zip(SPECS, dues)))
        d.insert_many(m.Ticket.__table__, ticket_rows)
        d.insert_many(m.Reminder.__table__, reminder_rows)

    db.run_direct(accounts)
    for first in range(1, tickets + 1, CHUNK):
        db.run_direct(lambda d, f=first: chunk(d, f, min(f + CHUNK - 1, tickets)))
    if not db.is_sqlite:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    db.dispose()


def plan_burst(db: Database, reminder_ids: Sequence[int], start: datetime, window: float,
               rng: random.Random) -> None:
    """Move ``reminder_ids`` (planned again) to random instants in ``[start, start + window)``."""
    due = {i: start + timedelta(seconds=rng.uniform(0, window)) for i in reminder_ids}

    def work(d: Direct) -> None:
        d.execute_many("UPDATE reminders SET state = 'planned', claimed_by = NULL, claimed_at = NULL, "
                       "done_at = NULL, due_at = :due WHERE id = :id",
                       [{"id": i, "due": d.value(m.Reminder.__table__, "due_at", at)} for i, at in due.items()])

    db.run_direct(work)


def states(db: Database) -> dict[str, int]:
    rows = db.run_direct(lambda d: d.execute("SELECT state, count(*) FROM reminders GROUP BY state").fetchall())
    return {str(state): int(count) for state, count in rows}


# -- one pass: start the service, wait for the minute ----------------------------------------------------------------


@dataclass
class Pass:
    rebuild: float = 0.0
    lateness: list[float] = field(default_factory=list)  # seconds, in the order sent
    sent_ids: list[int] = field(default_factory=list)
    rounds: int = 0
    wall: float = 0.0


async def run_pass(db: Database, burst: int, deadline: float, notify_ms: float) -> Pass:
    result = Pass()

    async def notify(notice: ReminderNotice) -> None:
        result.lateness.append((datetime.now(timezone.utc) - notice.due_at).total_seconds())
        result.sent_ids.append(notice.reminder_id)
        if notify_ms:
            await asyncio.sleep(notify_ms / 1000)

    service = ReminderService(db, notify, worker="bench")
    run_due = service.run_due

    async def counted() -> int:
        result.rounds += 1
        return await run_due()

    service.run_due = counted  # type: ignore[method-assign]
    t0 = time.perf_counter()
    service.start()
    await service.ready.wait()
    result.rebuild = time.perf_counter() - t0
    try:
        while len(result.sent_ids) < burst and time.perf_counter() - t0 < deadline:
            await asyncio.sleep(0.1)
    finally:
        result.wall = time.perf_counter() - t0
        await service.stop()
    return result


def report_pass(label: str, p: Pass, burst: int) -> float:
    ordered = sorted(p.lateness)
    p99 = nearest_rank(ordered, 99)
    print(f"    {label}: rebuild on start {p.rebuild * 1e3:,.1f} ms; {len(p.sent_ids):,} of {burst:,} sent; "
          f"{p.rounds:,} rounds in {p.wall:.1f} s")
    if ordered:
        print(f"        lateness  median {nearest_rank(ordered, 50) * 1e3:7.1f} ms   p99 {p99 * 1e3:7.1f} ms   "
              f"max {ordered[-1] * 1e3:7.1f} ms   min {ordered[0] * 1e3:7.1f} ms")
    return p99


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000, help="open tickets, 3 reminders each (100000)")
    parser.add_argument("--burst", type=int, default=1_000, help="reminders due within the window (1000)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds the burst falls due in (60)")
    parser.add_argument("--lead", type=float, default=5.0, help="seconds from the start to the window (5)")
    parser.add_argument("--notify-ms", type=float, default=0.0, help="time the notifier takes per reminder (0)")
    parser.add_argument("--seed", type=int, default=1, help="seed of random.Random (1)")
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc pass")
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL instead of SQLite (a fresh schema, dropped after)")
    args = parser.parse_args(argv)
    if not 0 < args.burst <= args.tickets:
        parser.error("--burst must be between 1 and --tickets")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("bot.reminders").setLevel(logging.INFO)  # the start line: how many planned, the next due
    started = time.perf_counter()

    print("bench_reminders: ReminderService on open tickets, a burst of reminders due within one window")
    print(f"Python {sys.version.split()[0]} ({platform.python_implementation()}), SQLAlchemy {sqlalchemy.__version__}, "
          f"SQLite {__import__('sqlite3').sqlite_version}, {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"tickets={args.tickets:,} (reminders {3 * args.tickets:,}) burst={args.burst:,} window={args.window:g} s "
          f"lead={args.lead:g} s notify={args.notify_ms:g} ms seed={args.seed}; database: "
          f"{make_url(args.pg).render_as_string() if args.pg else 'SQLite (WAL)'}")
    print()

    rng = random.Random(args.seed)
    burst_ids = [3 * (t - 1) + 1 for t in rng.sample(range(1, args.tickets + 1), args.burst)]  # their 75% rows
    deadline = args.lead + args.window + 30
    with tempfile.TemporaryDirectory(prefix="bench_reminders_") as tmp, fresh_database(Path(tmp), args.pg) as url:
        t0 = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=fill, args=(url, args.tickets, args.seed))
        child.start()
        child.join()
        if child.exitcode != 0:
            print(f"the set-up failed (exit code {child.exitcode})")
            return 0
        print(f"    set-up (untimed, in a child process): {time.perf_counter() - t0:.1f} s")
        db = open_database(url)
        try:
            rss_before = maxrss_mib()
            plan_burst(db, burst_ids, datetime.now(timezone.utc) + timedelta(seconds=args.lead), args.window, rng)
            timed = asyncio.run(run_pass(db, args.burst, deadline, args.notify_ms))
            rss_after = maxrss_mib()
            p99 = report_pass("timed pass", timed, args.burst)
            after = states(db)
            lateness = timed.lateness
            early = sum(x < 0 for x in lateness)
            checks = [
                ("each of the burst sent exactly once",
                 sorted(timed.sent_ids) == sorted(burst_ids) and after.get("sent", 0) == args.burst,
                 f"{len(timed.sent_ids):,} notices, {len(set(timed.sent_ids)):,} distinct, "
                 f"{after.get('sent', 0):,} rows sent"),
                ("none sent before it fell due", early == 0, f"{early} early"),
                ("every other reminder still planned", after.get("planned", 0) == 3 * args.tickets - args.burst,
                 f"{after}"),
            ]
            peak: int | None = None
            if not args.no_trace:
                plan_burst(db, burst_ids, datetime.now(timezone.utc) + timedelta(seconds=args.lead), args.window,
                           rng)
                tracemalloc.start()
                try:
                    base, _ = tracemalloc.get_traced_memory()
                    traced = asyncio.run(run_pass(db, args.burst, deadline, args.notify_ms))
                    _, peak = tracemalloc.get_traced_memory()
                    peak -= base
                finally:
                    tracemalloc.stop()
                report_pass("traced pass (under tracemalloc, not timed)", traced, args.burst)
        finally:
            db.dispose()

    print(f"    memory: ru_maxrss {rss_after:,.1f} MiB after the timed pass ({rss_before:,.1f} MiB before it)")
    if peak is not None:
        print(f"            tracemalloc peak during the traced pass {peak / 2**20:,.1f} MiB")
    print("    checks")
    for name, ok, detail in checks:
        print(f"      {verdict(ok)}  {name}: {detail}")
    print()
    memory = max(rss_after, peak / 2**20 if peak is not None else 0.0)  # the larger of the two
    print("Summary")
    for label, figure, target, ok in (
        ("rebuild on start", f"{timed.rebuild:.3f} s", f"< {TARGET_REBUILD_S:g} s", timed.rebuild < TARGET_REBUILD_S),
        ("p99 lateness", f"{p99:.3f} s", f"< {TARGET_P99_S:g} s", p99 < TARGET_P99_S),
        ("memory", f"{memory:.1f} MiB", f"< {TARGET_MEMORY_MIB:g} MB", memory < TARGET_MEMORY_MIB),
        ("correctness checks", "", "", all(ok for _, ok, _ in checks)),
    ):
        print(f"    {label:<20}{figure:>10}   {'target ' + target if target else '':<16}{verdict(ok)}")
    print(f"    total runtime {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    main()
    sys.exit(0)
