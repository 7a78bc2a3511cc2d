"""Benchmark: the dashboard's ticket search (:meth:`storage.search.TicketSearch.find`) on 100,000 tickets.

Fills a fresh database (SQLite by default, PostgreSQL with ``--pg URL``) with plain DBAPI inserts: 500 accounts
with a contact each (name, e-mail address, phone number) and N tickets (default 100,000), each with one inbound
message of 12 to 40 words drawn from a 2,000-word vocabulary, about a third of them open; the search tables are
filled by the migration's triggers as the rows go in. Then it times each kind of search (one page of 50, with
the total count), every query 20 times, and prints the median and the slowest:

- a rare word of a message, a common word, two words, the start of a word;
- a ticket reference, a customer's name, an e-mail address, a phone number;
- filters only (open and breached; one plan and one channel), and words with filters.

Target: every median under 100 ms (PASS/FAIL each; the script always exits 0). The fill takes about a minute on
SQLite.

    .venv/bin/python benchmarks/bench_search.py [--tickets 100000] [--seed 1]
        [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_reminders import (
    fresh_database,  # a SQLite file, or a PostgreSQL schema dropped afterwards
)

from storage import models as m
from storage.database import Database, open_database
from storage.direct import Direct
from storage.search import TicketFilter, TicketSearch

ACCOUNTS = 500
CHUNK = 5_000
RUNS = 20
TARGET_MS = 100.0
PLANS = ("licentie", "ondersteuning", "project")
SYLLABLES = ("ver", "zend", "knop", "cam", "pag", "ne", "sjab", "loon", "fac", "tuur", "lijst", "con", "tact",
             "opm", "aak", "mail", "bo", "ek", "ing", "ta", "lo", "mi", "ra", "du")


def vocabulary(rng: random.Random, size: int = 2000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def fill(db: Database, tickets: int, rng: random.Random, words: list[str], now: datetime) -> None:
    """Accounts, contacts, identities, tickets and their messages."""
    plans = [rng.choice(PLANS) for _ in range(ACCOUNTS)]

    def people(d: Direct) -> None:
        d.insert_many(m.Account.__table__, ({
            "id": i + 1, "name": f"Klant {i + 1:03d} BV", "plan": plans[i], "staff": rng.choice(("anna", "bram")),
            "language": "nl", "created_at": now, "updated_at": now} for i in range(ACCOUNTS)))
        d.insert_many(m.Contact.__table__, ({
            "id": i + 1, "account_id": i + 1, "name": f"Contact {i + 1:03d}", "role": "contact", "authorised": True,
        } for i in range(ACCOUNTS)))
        d.insert_many(m.Identity.__table__, [
            *({"contact_id": i + 1, "kind": "email", "value": f"contact{i + 1}@klant{i + 1}.nl"}
              for i in range(ACCOUNTS)),
            *({"contact_id": i + 1, "kind": "phone", "value": f"+3161{i + 1:07d}"} for i in range(ACCOUNTS))])

    def chunk(d: Direct, first: int, last: int) -> None:
        ticket_rows, message_rows = [], []
        for t in range(first, last + 1):
            account = rng.randrange(ACCOUNTS) + 1
            received = now - timedelta(minutes=rng.randrange(1, 60 * 24 * 365))
            due = received + timedelta(hours=24)
            state = "open" if rng.random() < 0.33 else "resolved"
            channel = rng.choice(("email", "email", "whatsapp", "phone"))
            ticket_rows.append({
                "id": t, "ref": f"MC-{10000 + t}", "account_id": account, "contact_id": account, "channel": channel,
                "thread_key": f"contact{account}@klant{account}.nl", "subject": " ".join(rng.sample(words, 3)),
                "state": state, "plan": plans[account - 1], "queue_priority": 0, "received_at": received,
                "first_response_due": due, "response_due": due, "decision": "new_ticket", "kind": "support",
                "created_at": received, "updated_at": received})
            text = " ".join(rng.choices(words, k=rng.randint(12, 40)))
            message_rows.append({
                "id": t, "ticket_id": t, "account_id": account, "contact_id": account, "direction": "in",
                "channel": channel, "external_id": f"<{t}@bench>", "sender": f"contact{account}@klant{account}.nl",
                "text": text, "at": received, "auto": False, "delivery_state": "received",
                "created_at": received})
        d.insert_many(m.Ticket.__table__, ticket_rows)
        d.insert_many(m.Message.__table__, message_rows)

    db.run_direct(people)
    for first in range(1, tickets + 1, CHUNK):
        db.run_direct(lambda d, f=first: chunk(d, f, min(f + CHUNK - 1, tickets)))
    if db.is_sqlite:
        db.run_direct(lambda d: d.execute("ANALYZE"))
    else:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def timed(db: Database, wanted: TicketFilter, now: datetime) -> tuple[float, float, int]:
    """(median ms, slowest ms, total found) of RUNS searches."""
    times, total = [], 0
    for _ in range(RUNS):
        start = time.perf_counter()
        page = db.run(lambda s: TicketSearch(s).find(wanted, now, timedelta(hours=2)))
        times.append((time.perf_counter() - start) * 1000)
        total = page.total
    return statistics.median(times), max(times), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg", help="a PostgreSQL URL (a schema of its own is made and dropped)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    words = vocabulary(rng)
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as folder, fresh_database(Path(folder), args.pg) as url:
        db = open_database(url)
        started = time.perf_counter()
        fill(db, args.tickets, rng, words, now)
        print(f"{'PostgreSQL' if args.pg else 'SQLite'}: {args.tickets:,} tickets and messages filled in "
              f"{time.perf_counter() - started:.1f} s")
        common = db.run_direct(lambda d: d.execute("SELECT text FROM messages WHERE id = 7").fetchall())[0][0].split()
        cases = {
            "a word of a message": TicketFilter(text=common[0]),
            "two words": TicketFilter(text=f"{common[0]} {common[1]}"),
            "the start of a word": TicketFilter(text=common[2][:5]),
            "a reference": TicketFilter(text="MC-10007"),
            "a customer's name": TicketFilter(text="Klant 042 BV"),
            "an e-mail address": TicketFilter(text="contact42@klant42.nl"),
            "a phone number": TicketFilter(text="+31610000042"),
            "open and breached": TicketFilter(state="open", due="breached"),
            "a plan and a channel": TicketFilter(plan="project", channel="whatsapp"),
            "a word, open, mine": TicketFilter(text=common[0], state="open", assignee="anna"),
            "a word, page 10": TicketFilter(text=common[0], page=10),
        }
        print(f"{'search':<24} {'found':>8} {'median ms':>10} {'max ms':>8}  target < {TARGET_MS:.0f} ms")
        for name, wanted in cases.items():
            median, slowest, total = timed(db, wanted, now)
            print(f"{name:<24} {total:>8,} {median:>10.1f} {slowest:>8.1f}  "
                  f"{'PASS' if median < TARGET_MS else 'FAIL'}")
        db.dispose()


if __name__ == "__main__":
    main()
