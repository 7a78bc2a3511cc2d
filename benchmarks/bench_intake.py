"""Benchmark: the intake pipeline end to end, one durable transaction per message.

Creates a fresh database with 500 accounts on the ``mailcampaigns`` preset
(plans licentie / ondersteuning / project, 1-2 contacts each with a normalised
e-mail address and phone number), then pushes N seeded InboundMessages through
``IntakePipeline(db, load_preset("mailcampaigns")).ingest(msg)`` one at a time:

- 70% new requests from random known contacts, by e-mail or WhatsApp;
- 20% replies on open tickets: an e-mail whose thread_refs hold the external id
  of an earlier message of the ticket, or a WhatsApp message from the ticket's
  number while the ticket is open;
- 10% exact duplicates of an earlier message (same channel and external id).

received_at values are spread over the working hours of 2026 (Mon-Fri
09:00-17:00 Europe/Amsterdam, Dutch public holidays left out) in arrival order.

A WhatsApp message from a number that has an open WhatsApp ticket joins that
ticket (R6), and nothing closes tickets during the run. So the workload opens at
most one WhatsApp ticket per number: a new request goes out over WhatsApp only
when the contact's number has no open WhatsApp ticket yet, and by e-mail
otherwise. Every message therefore has one expected outcome, and that outcome is
checked.

It reports throughput (wall time over all N; and the process's CPU time, steadier than wall
time when other work shares the machine), per-message latency
p50/p90/p99/max, outcome counts, memory (the tracemalloc peak during a second,
untimed pass over the same messages on a fresh database, because tracing slows
every allocation; and ru_maxrss of the process), the size of the database, and
correctness checks afterwards. It does the same on PostgreSQL when
SLABOT_TEST_PG_URL is set, in a fresh schema that is dropped at the end.

SQLite runs as slabot runs it by default, with ``synchronous=full``: every
commit is synced to disk (one fdatasync of the WAL) before ``ingest`` returns,
so each message's transaction is durable the moment it is acknowledged; the
time of that sync is the disk's and varies with what else the host writes.
``--synchronous normal`` measures the faster setting, whose commits survive a
crash of slabot but not a power cut.

On PostgreSQL the script can also run the messages on slabot run's writer
(``--in-flight K``: grouped, K waiting at once; ``--writers T`` threads) and in
P worker processes at once on one database (``--processes P``: each takes its
share of the senders, as P ``slabot run`` behind a proxy would). It prints the
CPU time of the benchmark's processes; the server's is PostgreSQL's own.

Targets (printed as PASS/FAIL for every run, the script always exits 0):
>= 1,000 messages/s and p99 < 20 ms.

    .venv/bin/python benchmarks/bench_intake.py [--n 10000] [--seed 1] [--no-trace] [--profile 2000]
        [--synchronous normal] [--in-flight 8] [--writers 1] [--processes 2] [--postgres-only]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import multiprocessing
import os
import platform
import pstats
import random
import re
import resource
import sys
import tempfile
import time
import threading
import tracemalloc
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from decimal import Decimal
from typing import Any
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bot.intake import IntakePipeline, IntakeResult, Outcome
from bot.presets import load_preset
from channels.identity import Identity, IdentityKind, normalise_email, normalise_phone
from channels.messages import ChannelName, InboundMessage
from sla_engine.policy import Preset
from storage import models as m
from storage.database import Database, open_database
from storage.records import AccountInput, ContactInput
from storage.repositories import AccountRepository
from storage.writer import SerialWriter

ROOT = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Europe/Amsterdam")
PRESET = "mailcampaigns"
PLANS = ("licentie", "ondersteuning", "project")
ACCOUNTS = 500
SHARE_NEW, SHARE_REPLY = 0.70, 0.20  # the rest (10%) are duplicates
WHATSAPP_SHARE = 0.4  # of new requests (when the number is free) and of replies (when a WhatsApp ticket exists)
TARGET_RATE, TARGET_P99_MS = 1_000.0, 20.0
SUPPORT_ADDRESS = "support@mailcampaigns.nl"
WHATSAPP_NUMBER = "+31850001234"

FIRST_NAMES = ("Piet", "Anna", "Jan", "Sanne", "Kees", "Fleur", "Daan", "Lotte", "Bram", "Eva", "Tim", "Noor",
               "Ruben", "Iris", "Joost", "Maaike", "Sven", "Femke", "Thijs", "Lisa")
LAST_NAMES = ("Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder",
              "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit")
BUSINESSES = ("Bakkerij", "Fietsenwinkel", "Reisbureau", "Webshop", "Tuincentrum", "Boekhandel", "Kapsalon",
              "Drukkerij", "Installatiebedrijf", "Makelaardij", "Dierenspeciaalzaak", "Wijnhandel")
STAFF = ("Marloes", "Jeroen", "Kim", "Stefan", "Yvonne")
REQUESTS = (
    ("Template werkt niet meer", "Hallo, sinds vanochtend laadt onze nieuwsbrief-template de afbeeldingen niet meer. "
     "Kunnen jullie kijken wat er mis is? De mailing moet morgen de deur uit."),
    ("Foutmelding bij versturen", "Bij het versturen van de campagne krijgen we een foutmelding: 'send failed'. "
     "Het gaat om de campagne van deze week naar de hele lijst."),
    ("Automatische campagne opzetten", "We willen een automatische campagne (drip flow) opzetten voor nieuwe klanten. "
     "Kunnen jullie ons daarbij helpen en wat kost dat?"),
    ("Open rate verbeteren", "Onze open rate is de laatste maanden flink gedaald. Hebben jullie advies hoe we meer "
     "resultaat uit onze nieuwsbrief halen?"),
    ("Contactlijst importeren", "Hoe kunnen we een nieuwe contactlijst importeren en in segmenten verdelen? "
     "Het bestand heeft ongeveer 12.000 regels."),
    ("Opmaak mailing", "De opmaak van onze mailing ziet er in Outlook heel anders uit dan in de preview. "
     "Vooral de kolommen schuiven door elkaar."),
    ("Vraag over factuur", "Ik heb een vraag over de laatste factuur: daar staan uren op die ik niet kan plaatsen."),
    ("Campaign not sent", "Our campaign was not sent yesterday. The dashboard says it is scheduled but it seems "
     "broken. Could you have a look?"),
    ("New user for our account", "Could you add a new user to our account? Our marketing intern starts on Monday."),
    ("Inloggen lukt niet", "Ik kan sinds vandaag niet meer inloggen op het platform, het wachtwoord resetten lukt "
     "ook niet."),
    ("Sjabloon aanpassen", "Kunnen jullie het sjabloon van onze maandelijkse nieuwsbrief aanpassen? Het logo moet "
     "groter en de footer anders."),
    ("Statistieken kloppen niet", "De klikstatistieken in het rapport lijken niet te kloppen: 0 kliks terwijl we "
     "wel bestellingen via de mail binnenkrijgen."),
)
REPLIES = (
    "Bedankt voor jullie snelle reactie. Hierbij nog wat extra informatie: het gaat om de lijst 'Klanten 2026'.",
    "Is hier al nieuws over? We wachten nog op een antwoord.",
    "Het probleem is nog steeds aanwezig, ook na het legen van de cache.",
    "Any update on this? We would like to send the mailing this week.",
    "Top, dat werkt nu. Nog een vraag: kan dit ook voor de andere lijst?",
    "Zie de schermafbeelding die mijn collega eerder stuurde.",
)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f} ms"


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- the accounts ---------------------------------------------------------------


@dataclass
class Person:
    """A contact person as the workload knows them."""

    account: str
    name: str
    email: str  # normalised
    phone: str  # normalised (E.164)
    whatsapp_ticket: int | None = None  # the workload's open WhatsApp ticket from this number


def make_accounts(rng: random.Random, count: int) -> tuple[list[AccountInput], list[Person]]:
    """``count`` accounts on a random plan, each with 1-2 contacts (e-mail and phone, normalised)."""
    accounts: list[AccountInput] = []
    people: list[Person] = []
    numbers = iter(rng.sample(range(10_000_000, 100_000_000), 2 * count))  # unique 06-numbers
    for i in range(count):
        plan = rng.choice(PLANS)
        last = rng.choice(LAST_NAMES)
        name = f"{rng.choice(BUSINESSES)} {last} {i + 1:03d}"
        domain = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".nl"
        contacts = []
        for j in range(rng.choice((1, 2))):
            first, surname = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            full = f"{first} {surname}" + (f" ({j + 1})" if j else "")
            local = f"{first}.{surname.replace(' ', '')}{j or ''}"
            # raw, as an import file might state them; normalised the way the channels do
            email = normalise_email(f"{full} <{local}@{domain.upper()}>")
            number = next(numbers)
            phone = normalise_phone(f"06 {number // 10**6:02d} {number % 10**6:06d}")
            language = rng.choices((None, "nl", "en"), (6, 3, 1))[0]
            contacts.append(ContactInput(name=full, emails=(email,), phones=(phone,), language=language))
            people.append(Person(name, full, email, phone))
        accounts.append(AccountInput(
            name=name,
            plan=plan,
            staff=rng.choice(STAFF) if plan != "licentie" else None,
            templates_delivered=(date(2025, 6, 1) + timedelta(days=rng.randrange(580))) if rng.random() < 0.7 else None,
            language="en" if rng.random() < 0.15 else "nl",
            monthly_hours=Decimal(rng.choice((4, 8, 16))) if plan == "ondersteuning" else None,
            contacts=tuple(contacts),
        ))
    return accounts, people


def seed_accounts(db: Database, accounts: Sequence[AccountInput]) -> None:
    now = datetime.now(timezone.utc)

    def work(session: sqlalchemy.orm.Session) -> None:
        repo = AccountRepository(session)
        for account in accounts:
            repo.upsert(account, now)

    db.run(work)


# -- the messages -----------------------------------------------------------------


@dataclass
class SimTicket:
    """A ticket as the workload expects it to exist."""

    opened_by: int  # index of the message that opens it
    person: Person
    channel: ChannelName
    subject: str | None
    external_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Planned:
    msg: InboundMessage
    kind: str  # new | reply | duplicate
    expect: Outcome
    ticket: int | None = None  # index into the tickets list (new, reply)
    original: int | None = None  # index of the message a duplicate repeats


def working_instants(rng: random.Random, n: int, preset: Preset) -> list[datetime]:
    """``n`` sorted instants in the working hours of 2026 (Mon-Fri 09-17 Amsterdam, no public holidays)."""
    closed = set(preset.calendars["office"].holidays_in(2026))
    day, days = date(2026, 1, 1), []
    while day.year == 2026:
        if day.weekday() < 5 and day not in closed:
            days.append(day)
        day += timedelta(days=1)
    opening = dtime(9, 0)
    out = [datetime.combine(rng.choice(days), opening, ZONE) + timedelta(seconds=rng.randrange(8 * 3600))
           for _ in range(n)]
    return sorted(out)


def make_workload(rng: random.Random, n: int, people: list[Person], preset: Preset) -> tuple[list[Planned], list[SimTicket]]:
    instants = working_instants(rng, n, preset)
    plan: list[Planned] = []
    tickets: list[SimTicket] = []
    email_tickets: list[int] = []
    whatsapp_tickets: list[int] = []
    originals: list[int] = []  # indices of non-duplicate messages

    def email_id(i: int, person: Person) -> str:
        return f"<{i:07d}.{rng.getrandbits(48):012x}@{person.email.split('@', 1)[1]}>"

    def whatsapp_id() -> str:
        return f"SM{rng.getrandbits(128):032x}"

    for i, at in enumerate(instants):
        r = rng.random()
        if not originals or r < SHARE_NEW or (r < SHARE_NEW + SHARE_REPLY and not tickets):
            kind = "new"
        elif r < SHARE_NEW + SHARE_REPLY:
            kind = "reply"
        else:
            kind = "duplicate"

        if kind == "new":
            person = rng.choice(people)
            subject, body = rng.choice(REQUESTS)
            index = len(tickets)
            if person.whatsapp_ticket is None and rng.random() < WHATSAPP_SHARE:
                msg = InboundMessage(
                    channel=ChannelName.WHATSAPP, external_id=whatsapp_id(),
                    sender=Identity(IdentityKind.PHONE, person.phone), received_at=at, text=body,
                    sender_name=person.name, recipient=WHATSAPP_NUMBER,
                )
                person.whatsapp_ticket = index
                whatsapp_tickets.append(index)
                tickets.append(SimTicket(i, person, ChannelName.WHATSAPP, None, [msg.external_id]))
            else:
                msg = InboundMessage(
                    channel=ChannelName.EMAIL, external_id=email_id(i, person),
                    sender=Identity(IdentityKind.EMAIL, person.email), received_at=at, text=body, subject=subject,
                    sender_name=person.name, recipient=SUPPORT_ADDRESS,
                    full_text=f"{body}\n\nMet vriendelijke groet,\n{person.name}\n{person.account}",
                )
                email_tickets.append(index)
                tickets.append(SimTicket(i, person, ChannelName.EMAIL, subject, [msg.external_id]))
            plan.append(Planned(msg, "new", Outcome.NEW_TICKET, ticket=index))
            originals.append(i)
        elif kind == "reply":
            body = rng.choice(REPLIES)
            use_whatsapp = bool(whatsapp_tickets) and (not email_tickets or rng.random() < WHATSAPP_SHARE)
            if use_whatsapp:
                index = rng.choice(whatsapp_tickets)
                t = tickets[index]
                msg = InboundMessage(
                    channel=ChannelName.WHATSAPP, external_id=whatsapp_id(),
                    sender=Identity(IdentityKind.PHONE, t.person.phone), received_at=at, text=body,
                    sender_name=t.person.name, recipient=WHATSAPP_NUMBER,
                )
            else:
                index = rng.choice(email_tickets)
                t = tickets[index]
                earlier = rng.choice(t.external_ids)
                msg = InboundMessage(
                    channel=ChannelName.EMAIL, external_id=email_id(i, t.person),
                    sender=Identity(IdentityKind.EMAIL, t.person.email), received_at=at, text=body,
                    subject=f"Re: {t.subject}", sender_name=t.person.name, recipient=SUPPORT_ADDRESS,
                    full_text=f"{body}\n\n> {t.subject}", thread_refs=(earlier,),
                )
            t.external_ids.append(msg.external_id)
            plan.append(Planned(msg, "reply", Outcome.REPLY, ticket=index))
            originals.append(i)
        else:
            original = rng.choice(originals)
            plan.append(Planned(plan[original].msg, "duplicate", Outcome.DUPLICATE, original=original))
    return plan, tickets


# -- running ----------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    latencies: list[float]
    results: list[IntakeResult]
    cpu: float  # process CPU time (all threads: SQLite's WAL checkpointer too), less noisy than wall on a busy machine


def ingest_all(db: Database, preset: Preset, plan: Sequence[Planned]) -> Run:
    """Every planned message through ``ingest``, one at a time, each timed."""
    pipeline = IntakePipeline(db, preset)
    ingest = pipeline.ingest
    clock = time.perf_counter
    latencies = [0.0] * len(plan)
    results: list[IntakeResult] = []
    append = results.append
    cpu = time.process_time()
    started = clock()
    for i, planned in enumerate(plan):
        t0 = clock()
        append(ingest(planned.msg))
        latencies[i] = clock() - t0
    return Run(clock() - started, latencies, results, time.process_time() - cpu)


def ingest_grouped(db: Database, preset: Preset, plan: Sequence[Planned], in_flight: int, threads: int) -> Run:
    """Every planned message through ``ingest`` on slabot run's writer (storage.writer, grouped as ``slabot run``
    groups the webhooks' intake, with its ``threads``), with up to ``in_flight`` messages waiting at once, as that
    many webhooks arriving together would; each timed from its submission to its commit."""
    pipeline = IntakePipeline(db, preset)
    writer = SerialWriter("bench-writer", group=db.group, again=db.retry_alone, threads=threads)
    clock = time.perf_counter
    latencies = [0.0] * len(plan)
    results: list[IntakeResult | None] = [None] * len(plan)
    slots = threading.Semaphore(in_flight)

    def submit(i: int, msg: InboundMessage) -> None:
        t0 = clock()
        future = writer.submit(pipeline.ingest, msg)

        def done(f: Future[IntakeResult]) -> None:
            latencies[i] = clock() - t0
            results[i] = f.result()
            slots.release()

        future.add_done_callback(done)

    cpu = time.process_time()
    started = clock()
    try:
        for i, planned in enumerate(plan):
            slots.acquire()
            submit(i, planned.msg)
        for _ in range(in_flight):
            slots.acquire()
    finally:
        writer.shutdown()
    wall = clock() - started
    assert all(r is not None for r in results)
    return Run(wall, latencies, [r for r in results if r is not None], time.process_time() - cpu)


def ingest_processes(url: str, preset_name: str, plan: Sequence[Planned], processes: int) -> Run:
    """Every planned message through ``ingest`` in ``processes`` worker processes on one database, as that many
    ``slabot run`` behind a proxy: each takes the messages of its share of the senders (a conversation stays with
    one worker, in its order of arrival), one at a time, each its own transaction. Wall time from the moment all
    start until the last is done; CPU time summed over the workers."""
    context = multiprocessing.get_context("fork")
    shares: list[list[int]] = [[] for _ in range(processes)]
    for i, planned in enumerate(plan):
        shares[zlib.crc32(planned.msg.sender.value.encode()) % processes].append(i)
    ready, go = context.Barrier(processes + 1), context.Event()

    def worker(indices: list[int], out: Any) -> None:
        db = Database(url)  # its own engine and connections, as a process of its own has them
        pipeline = IntakePipeline(db, load_preset(preset_name))
        clock = time.perf_counter
        done = []
        ready.wait()
        go.wait()
        cpu = time.process_time()
        for i in indices:
            t0 = clock()
            result = pipeline.ingest(plan[i].msg)
            done.append((i, clock() - t0, result))
        out.send((done, time.process_time() - cpu))
        out.close()
        os._exit(0)  # nothing of the parent's (its connections) is closed from here

    pipes, children = [], []
    for share in shares:
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=worker, args=(share, send), daemon=True)
        child.start()
        pipes.append(receive)
        children.append(child)
    ready.wait()
    started = time.perf_counter()
    go.set()
    latencies = [0.0] * len(plan)
    results: list[IntakeResult | None] = [None] * len(plan)
    cpu = 0.0
    for receive in pipes:
        done, seconds = receive.recv()
        cpu += seconds
        for i, latency, result in done:
            latencies[i], results[i] = latency, result
    wall = time.perf_counter() - started
    for child in children:
        child.join()
    assert all(r is not None for r in results)
    return Run(wall, latencies, [r for r in results if r is not None], cpu)


def traced_outcomes(db: Database, preset: Preset, plan: Sequence[Planned]) -> tuple[float, int, int, Counter[str]]:
    """The same messages under tracemalloc: (seconds, peak bytes, bytes still held, outcome counts).

    Only the outcome counts are kept, so what is still allocated at the end is
    what the pipeline, SQLAlchemy and the caches hold on to, not this benchmark's results.
    """
    pipeline = IntakePipeline(db, preset)
    outcomes: Counter[str] = Counter()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        t0 = time.perf_counter()
        for planned in plan:
            outcomes[pipeline.ingest(planned.msg).outcome.value] += 1
        seconds = time.perf_counter() - t0
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seconds, peak - base, current - base, outcomes


@dataclass
class Backend:
    """Fresh databases on one engine kind."""

    label: str
    fresh: Callable[[str], tuple[Database, Callable[[], str], Callable[[], None]]]  # -> db, size(), drop()


def sqlite_backend(folder: Path, synchronous: str = "full") -> Backend:
    def fresh(tag: str) -> tuple[Database, Callable[[], str], Callable[[], None]]:
        path = folder / f"bench_{tag}.db"
        db = open_database(f"sqlite:///{path}", synchronous=synchronous)

        def size() -> str:
            main = path.stat().st_size
            wal = Path(f"{path}-wal").stat().st_size if Path(f"{path}-wal").exists() else 0
            return (f"{main / 2**20:.2f} MiB database file + {wal / 2**20:.2f} MiB WAL "
                    f"= {(main + wal) / 2**20:.2f} MiB")

        def drop() -> None:
            db.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        return db, size, drop

    return Backend(f"SQLite, synchronous={synchronous}", fresh)


def postgres_backend(url: str) -> Backend:
    admin = create_engine(url)

    def fresh(tag: str) -> tuple[Database, Callable[[], str], Callable[[], None]]:
        schema = f"bench_{uuid.uuid4().hex[:10]}_{tag}"
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        schema_url = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            db = open_database(schema_url.render_as_string(hide_password=False))
        except BaseException:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            raise

        def size() -> str:
            with admin.connect() as conn:
                total = conn.execute(text(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relkind = 'r'"
                ), {"s": schema}).scalar_one()
            return f"{int(total) / 2**20:.2f} MiB (schema {schema}: tables + indexes + TOAST)"

        def drop() -> None:
            db.dispose()
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')

        return db, size, drop

    return Backend("PostgreSQL", fresh)


# -- checks -----------------------------------------------------------------------


def check(db: Database, plan: Sequence[Planned], tickets: Sequence[SimTicket],
          results: Sequence[IntakeResult]) -> list[tuple[str, bool, str]]:
    """What the database and the results hold after the run, against what the workload expects."""

    def read(session: sqlalchemy.orm.Session) -> tuple[int, int, int, list[tuple[int, dict]]]:  # type: ignore[type-arg]
        inbound = session.scalar(select(func.count()).select_from(m.Message).where(m.Message.direction == "in"))
        outbound = session.scalar(select(func.count()).select_from(m.Message).where(m.Message.direction == "out"))
        ticket_rows = session.scalar(select(func.count()).select_from(m.Ticket))
        outbox = [(r.message_id, r.payload) for r in session.execute(select(m.Outbox.message_id, m.Outbox.payload))]
        return int(inbound or 0), int(outbound or 0), int(ticket_rows or 0), outbox

    inbound, outbound, ticket_rows, outbox = db.run(read)
    n = len(plan)
    non_dup = sum(p.kind != "duplicate" for p in plan)
    stored = sum(r.outcome is not Outcome.DUPLICATE for r in results)
    acks = [r.message_id for r in results if r.acknowledgement is not None]
    per_message = Counter(payload.get("reply_to_message") for _, payload in outbox)
    ack_set = set(acks)
    one_each = all(per_message.get(mid) == 1 for mid in ack_set) and set(per_message) == ack_set

    out_ids = {mid for mid, _ in outbox}
    checks = [
        ("inbound message rows == non-duplicate messages",
         inbound == non_dup == stored,
         f"{inbound:,} rows, {non_dup:,} non-duplicates sent, {stored:,} results not duplicate"),
        ("exactly one outbox row per acknowledgement",
         len(outbox) == len(acks) == len(ack_set) and one_each and len(out_ids) == len(outbox) == outbound,
         f"{len(outbox):,} outbox rows, {len(acks):,} acknowledgements, {outbound:,} outbound messages, "
         f"{sum(1 for v in per_message.values() if v != 1)} messages with != 1 row"),
    ]

    wrong_outcome = [i for i in range(n) if results[i].outcome is not plan[i].expect]
    refs = {idx: results[t.opened_by].ticket_ref for idx, t in enumerate(tickets)}
    wrong_thread = [i for i in range(n) if plan[i].kind == "reply"
                    and results[i].outcome is Outcome.REPLY and results[i].ticket_ref != refs[plan[i].ticket]]  # type: ignore[index]
    wrong_dup = [i for i in range(n) if plan[i].kind == "duplicate"
                 and results[i].message_id != results[plan[i].original].message_id]  # type: ignore[index]
    new = sum(p.kind == "new" for p in plan)
    checks += [
        ("every outcome as the workload expects", not wrong_outcome,
         f"{n - len(wrong_outcome):,} of {n:,}"
         + "".join(f"; #{i} {plan[i].kind} -> {results[i].outcome.value} {results[i].reasons}"
                   for i in wrong_outcome[:3])),
        ("every reply joined its own ticket", not wrong_thread,
         f"{sum(p.kind == 'reply' for p in plan) - len(wrong_thread):,} of {sum(p.kind == 'reply' for p in plan):,}"),
        ("every duplicate names the stored original", not wrong_dup,
         f"{sum(p.kind == 'duplicate' for p in plan) - len(wrong_dup):,} of {sum(p.kind == 'duplicate' for p in plan):,}"),
        ("ticket rows == new requests", ticket_rows == new, f"{ticket_rows:,} rows, {new:,} new requests"),
    ]
    return checks


# -- reporting --------------------------------------------------------------------


def report_run(run: Run, plan: Sequence[Planned]) -> tuple[float, float]:
    n = len(run.latencies)
    ordered = sorted(run.latencies)
    rate = n / run.wall
    p = {q: percentile(ordered, q) for q in (50, 90, 99)}
    print(f"    wall time {run.wall:.2f} s for {n:,} messages: {rate:,.0f} messages/s "
          f"(mean {run.wall / n * 1e3:.2f} ms incl. loop)")
    print(f"    CPU time  {run.cpu:.2f} s: {run.cpu / n * 1e3:.3f} ms per message, {n / run.cpu:,.0f} messages per "
          f"CPU-second (process time of all threads, SQLite's WAL checkpointer too: steadier than wall time "
          f"when other work shares the machine)")
    print(f"    latency   p50 {ms(p[50])}   p90 {ms(p[90])}   p99 {ms(p[99])}   max {ms(ordered[-1])}")
    print(f"              first message {ms(run.latencies[0])} (cold caches)")
    tenth = max(1, n // 10)
    head, tail = run.latencies[:tenth], run.latencies[-tenth:]
    print(f"    drift     first {tenth:,}: {len(head) / sum(head):,.0f} msg/s, "
          f"last {tenth:,}: {len(tail) / sum(tail):,.0f} msg/s (ingest time only)")
    print("    by outcome            count      p50         p99         max")
    by: dict[str, list[float]] = {}
    for result, seconds in zip(run.results, run.latencies):
        by.setdefault(result.outcome.value, []).append(seconds)
    for outcome in [o.value for o in Outcome]:
        values = sorted(by.get(outcome, []))
        if values:
            print(f"      {outcome:<20}{len(values):>6,}  {ms(percentile(values, 50))}  "
                  f"{ms(percentile(values, 99))}  {ms(values[-1])}")
        else:
            print(f"      {outcome:<20}{0:>6}")
    planned = Counter(p.kind for p in plan)
    print(f"    planned: {planned['new']:,} new ({sum(p.kind == 'new' and p.msg.channel is ChannelName.WHATSAPP for p in plan):,}"
          f" over WhatsApp), {planned['reply']:,} replies "
          f"({sum(p.kind == 'reply' and p.msg.channel is ChannelName.WHATSAPP for p in plan):,} over WhatsApp), "
          f"{planned['duplicate']:,} duplicates")
    return rate, p[99]


def bench_backend(backend: Backend, accounts: Sequence[AccountInput], plan: Sequence[Planned],
                  tickets: Sequence[SimTicket], trace: bool, in_flight: int = 0,
                  writers: int | None = None, processes: int = 0) -> tuple[float, float, bool]:
    t0 = time.perf_counter()
    db, size, drop = backend.fresh("timed")
    threads = writers or 1
    how = (f"on the writer ({threads} thread{'s' if threads > 1 else ''}), grouped, {in_flight} in flight"
           if in_flight else f"{processes} worker processes, each message its own transaction" if processes
           else "one at a time, each its own transaction")
    print(f"== {backend.label}: {how} ==")
    try:
        migrate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        seed_accounts(db, accounts)
        seed_s = time.perf_counter() - t0
        print(f"    set-up (untimed): migrations {migrate_s:.2f} s, {len(accounts)} accounts with "
              f"{sum(len(a.contacts) for a in accounts)} contacts {seed_s:.2f} s")
        preset = load_preset(PRESET)
        if processes:
            run = ingest_processes(db.url, PRESET, plan, processes)
        elif in_flight:
            run = ingest_grouped(db, preset, plan, in_flight, threads)
        else:
            run = ingest_all(db, preset, plan)
        rss_after = maxrss_mib()
        rate, p99 = report_run(run, plan)
        print(f"    database size: {size()}")
        checks = check(db, plan, tickets, run.results)
        print("    checks")
        for name, ok, detail in checks:
            print(f"      {verdict(ok)}  {name}: {detail}")
        all_ok = all(ok for _, ok, _ in checks)
    finally:
        drop()

    print(f"    memory: ru_maxrss of the process after the timed run {rss_after:,.1f} MiB")
    if trace:
        db, _, drop = backend.fresh("traced")
        try:
            seed_accounts(db, accounts)
            preset = load_preset(PRESET)
            seconds, peak, held, outcomes = traced_outcomes(db, preset, plan)
        finally:
            drop()
        same = outcomes == Counter(r.outcome.value for r in run.results)
        print(f"            tracemalloc peak during an untimed second pass (fresh database, same messages): "
              f"{peak / 2**20:,.2f} MiB; still allocated at the end {held / 2**20:,.2f} MiB "
              f"(pass took {seconds:.1f} s under tracemalloc; same outcomes: {'yes' if same else 'NO'})")
        print(f"            ru_maxrss after it {maxrss_mib():,.1f} MiB")
    print()
    return rate, p99, all_ok


def profile(label: str, backend: Backend, accounts: Sequence[AccountInput], plan: Sequence[Planned],
            count: int) -> None:
    """cProfile over the first ``count`` messages on a fresh database of ``backend``."""
    db, _, drop = backend.fresh("profile")
    try:
        seed_accounts(db, accounts)
        preset = load_preset(PRESET)
        pipeline = IntakePipeline(db, preset)
        subset = plan[:count]
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        for planned in subset:
            pipeline.ingest(planned.msg)
        profiler.disable()
        seconds = time.perf_counter() - t0
    finally:
        drop()
    print(f"== cProfile: first {len(subset):,} messages on {label} ({seconds:.2f} s under the profiler) ==")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(rf"{re.escape(str(ROOT))}/(bot|storage|sla_engine|channels)/", 30)
    stats.sort_stats("tottime").print_stats(25)
    print(out.getvalue().replace(str(ROOT) + "/", "").replace(sys.prefix + "/", ""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of messages (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of random.Random (default 1)")
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc pass")
    parser.add_argument("--profile", type=int, default=0, metavar="K",
                        help="also run cProfile over the first K messages on SQLite (on PostgreSQL with "
                             "--postgres-only) and print the top costs")
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full",
                        help="SQLite's [database] synchronous: full (the default; every commit synced to disk "
                             "before ingest returns) or normal (synced at checkpoints only)")
    parser.add_argument("--in-flight", type=int, default=0, metavar="K",
                        help="also ingest on slabot run's writer thread with K messages waiting at once (group "
                             "commit, as K webhooks arriving together); latency from submission to commit")
    parser.add_argument("--writers", type=int, default=None, metavar="T",
                        help="threads of the writer with --in-flight (default 1, as slabot run has it; more than "
                             "one takes messages out of their order, which the checks then count)")
    parser.add_argument("--processes", type=int, default=0, metavar="P",
                        help="also ingest on PostgreSQL in P worker processes at once (as P slabot run on one "
                             "database), each with its share of the senders")
    parser.add_argument("--postgres-only", action="store_true",
                        help="skip SQLite (needs SLABOT_TEST_PG_URL)")
    args = parser.parse_args(argv)
    n, seed = args.n, args.seed
    started = time.perf_counter()
    pg_url = os.environ.get("SLABOT_TEST_PG_URL")

    print("bench_intake: IntakePipeline.ingest, one committed transaction per message")
    print(f"Python {sys.version.split()[0]} ({platform.python_implementation()}), SQLAlchemy {sqlalchemy.__version__}, "
          f"SQLite {__import__('sqlite3').sqlite_version}, {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"n={n:,} seed={seed}; preset {PRESET!r}; {ACCOUNTS} accounts; gc on; "
          f"PostgreSQL: {make_url(pg_url).render_as_string() if pg_url else 'SLABOT_TEST_PG_URL not set, skipped'}")
    print()

    rng = random.Random(seed)
    accounts, people = make_accounts(rng, ACCOUNTS)
    plan, tickets = make_workload(rng, n, people, load_preset(PRESET))
    first, last = plan[0].msg.received_at, max(p.msg.received_at for p in plan)
    print(f"workload: {len(plan):,} messages received {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} "
          f"(working hours, Europe/Amsterdam); {len(people)} contacts")
    print()

    if args.postgres_only and not pg_url:
        parser.error("--postgres-only needs SLABOT_TEST_PG_URL")
    results: list[tuple[str, tuple[float, float, bool]]] = []  # (label, (rate, p99, checks))
    with tempfile.TemporaryDirectory(prefix="bench_intake_") as tmp:
        folder = Path(tmp)
        backends = [] if args.postgres_only else [("SQLite", sqlite_backend(folder, args.synchronous))]
        if pg_url:
            backends.append(("PostgreSQL", postgres_backend(pg_url)))
        for label, backend in backends:
            results.append((f"{label}, one at a time", bench_backend(backend, accounts, plan, tickets,
                                                                     not args.no_trace)))
            if args.in_flight:
                results.append((f"{label}, grouped, {args.in_flight} in flight", bench_backend(
                    backend, accounts, plan, tickets, False, args.in_flight, args.writers)))
            if args.processes and label == "PostgreSQL":
                results.append((f"{label}, {args.processes} processes", bench_backend(
                    backend, accounts, plan, tickets, False, processes=args.processes)))
        if args.profile:
            profile(*backends[0], accounts, plan, args.profile)

    print(f"Summary (SQLite synchronous={args.synchronous}"
          f"{': every commit on disk before ingest returns' if args.synchronous == 'full' else ''}; "
          f"PostgreSQL synchronous_commit as the server has it, on by default: every commit's WAL flushed)")
    for label, (rate, p99, ok) in results:
        print(f"    {label:<34} {rate:>8,.0f} messages/s   target >= {TARGET_RATE:,.0f}   "
              f"{verdict(rate >= TARGET_RATE)}")
        print(f"    {label:<34} p99 {p99 * 1e3:7.2f} ms      target < {TARGET_P99_MS:.0f} ms    "
              f"{verdict(p99 * 1e3 < TARGET_P99_MS)}")
        print(f"    {label:<34} correctness checks                     {verdict(ok)}")
    rates = {label: rate for label, (rate, _, _) in results}
    sqlite_rate = rates.get("SQLite, one at a time")
    if sqlite_rate:  # the host's speed changes from hour to hour: PostgreSQL against SQLite in the same run
        for label, rate in rates.items():
            if label.startswith("PostgreSQL"):
                print(f"    {label:<34} {rate / sqlite_rate:8.2f} x SQLite one at a time, this run")
    print(f"    total runtime {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    main()
    sys.exit(0)
