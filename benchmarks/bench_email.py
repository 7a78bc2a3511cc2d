"""Benchmark: e-mail intake from .eml files (the pipe mode's directory import) and from an IMAP mailbox.

Generates a seeded corpus of varied mail (plain, multipart/alternative,
quoted-printable and base64 bodies, RFC 2047 subjects, some 50 KB attachments;
20% replies carrying In-Reply-To/References of an earlier mail of the same
thread), writes it as .eml files and ingests it

(a) from the files, through the same code as ``slabot ingest email DIR``
    (bot.mail.ingest_files: files read and parsed ahead in worker processes,
    stored in file order, a chunk of mails per transaction), and
(b) from a private Dovecot over IMAP (when dovecot is installed), through the
    IMAP intake's catch-up,

then prints mails per second, peak memory (tracemalloc over a second, untimed
pass), and how many replies were threaded onto the ticket of their thread.
Target: at least 600 mails/s from files, every reply threaded.

    .venv/bin/python benchmarks/bench_email.py [--n 2000] [--seed 1] [--no-imap]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bot.intake import IntakePipeline  # noqa: E402
from bot.mail import MailIntake, ingest_files, mail_reply_guards  # noqa: E402
from bot.presets import load_preset  # noqa: E402
from storage import models as m  # noqa: E402
from storage.database import Database, open_database  # noqa: E402
from storage.records import AccountInput, ContactInput  # noqa: E402
from storage.repositories import AccountRepository  # noqa: E402

SUPPORT = "support@mailcampaigns.example"
START = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
SUBJECTS = [
    "De verzendknop werkt niet", "Factuur – vraag over november", "Vraag over de opmaak van mijn nieuwsbrief",
    "Contactlijst importeren lukt niet", "Kan ik een automatische campagne instellen?", "Ärger mit dem Editor",
    "Open rate is ineens gedaald", "Help: foutmelding bij inloggen", "Template aanpassen", "Ça ne marche pas",
]
BODIES = [
    "Goedemorgen,\n\nSinds vanochtend doet de verzendknop niets meer. Kunt u kijken?\n\nMet vriendelijke groet,\n",
    "Hallo,\n\nIk zie op de factuur van november een regel die ik niet begrijp: € 130,00 voor 'ad hoc'.\n",
    "Beste support,\n\nDe afbeeldingen in mijn template verspringen in Outlook. Weet u hoe dat komt?\n",
    "Hi,\n\nWhen I import my contact list (12,000 rows) the import stops at 5,000. Is there a limit?\n",
]


@dataclass
class Planned:
    raw: bytes
    thread: int
    reply: bool


def make_corpus(rng: random.Random, n: int, senders: list[str]) -> list[Planned]:
    """``n`` mails: 80% new requests, 20% replies (In-Reply-To/References) to an earlier mail of their thread."""
    corpus: list[Planned] = []
    threads: list[tuple[str, str, str]] = []  # (sender, subject, last message id)
    attachment = bytes(rng.getrandbits(8) for _ in range(50 * 1024))
    for i in range(n):
        when = START + timedelta(seconds=20 * i)
        msg = EmailMessage()
        reply = bool(threads) and rng.random() < 0.2
        if reply:
            index = rng.randrange(len(threads))
            sender, subject, last = threads[index]
            msg["Subject"] = f"Re: {subject}"
            msg["In-Reply-To"] = f"<{last}>"
            msg["References"] = f"<{last}>"
        else:
            index = len(threads)
            sender, subject = rng.choice(senders), rng.choice(SUBJECTS)
            msg["Subject"] = subject  # non-ASCII subjects are RFC 2047-encoded by the email package
        message_id = f"bench{i}.{rng.getrandbits(32):08x}@{sender.split('@')[1]}"
        msg["From"] = sender
        msg["To"] = SUPPORT
        msg["Date"] = format_datetime(when)
        msg["Message-ID"] = f"<{message_id}>"
        body = rng.choice(BODIES) + f"(bericht {i})\n"
        if reply:
            body += "\nOp maandag schreef support:\n> We hebben uw vraag ontvangen.\n"
        style = rng.random()
        if style < 0.3:
            msg.set_content(body, cte="quoted-printable")
        elif style < 0.5:
            msg.set_content(body, charset="utf-8", cte="base64")
        elif style < 0.8:
            msg.set_content(body)
            msg.add_alternative(f"<html><body><p>{body.replace(chr(10), '<br>')}</p></body></html>", subtype="html")
        else:
            msg.set_content(body.encode("iso-8859-1", "replace").decode("iso-8859-1"), charset="iso-8859-1",
                            cte="quoted-printable")
        if rng.random() < 0.05:
            msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="factuur.pdf")
        if reply:
            threads[index] = (sender, subject, message_id)
        else:
            threads.append((sender, subject, message_id))
        corpus.append(Planned(bytes(msg), index, reply))
    return corpus


def seed(db: Database, senders: list[str]) -> None:
    now = START
    for i, sender in enumerate(senders):
        data = AccountInput(name=f"Klant {i:03d}", plan=("licentie", "ondersteuning", "project")[i % 3],
                            contacts=(ContactInput(name=f"Contact {i}", emails=(sender,)),))
        db.run(lambda s, d=data: AccountRepository(s).upsert(d, now))


def intake_for(db: Database) -> MailIntake:
    now = START + timedelta(days=1)
    pipeline = IntakePipeline(db, load_preset("mailcampaigns"), now=lambda: now,
                              reply_guards=mail_reply_guards(5, lambda: now))
    return MailIntake(db, pipeline, own_addresses=(SUPPORT,), acknowledge_max_age=None, now=lambda: now)


def threaded(db: Database, corpus: list[Planned]) -> tuple[int, int]:
    """(replies on the ticket of their thread's first mail, replies)."""
    def work(s: object) -> tuple[int, int]:
        from sqlalchemy.orm import Session
        assert isinstance(s, Session)
        rows = s.execute(select(m.Message.external_id, m.Message.ticket_id).where(m.Message.direction == "in")).all()
        ticket_of = {str(e): t for e, t in rows}
        first: dict[int, int | None] = {}
        good = replies = 0
        for planned in corpus:
            mid = _message_id(planned.raw)
            if not planned.reply:
                first[planned.thread] = ticket_of.get(mid)
                continue
            replies += 1
            good += ticket_of.get(mid) is not None and ticket_of.get(mid) == first.get(planned.thread)
        return good, replies

    return db.run(work)  # type: ignore[arg-type]


def _message_id(raw: bytes) -> str:
    start = raw.index(b"Message-ID: <") + len(b"Message-ID: <")
    return raw[start:raw.index(b">", start)].decode()


@dataclass
class FilesRun:
    seconds: float
    cpu: float  # this process (the storing), seconds
    readers_cpu: float  # the reader processes, seconds
    peak: int  # tracemalloc peak of this process, bytes
    db: Database


def from_files(folder: Path, corpus: list[Planned], tag: str, trace: bool) -> FilesRun:
    for i, planned in enumerate(corpus):
        (folder / f"{i:05d}.eml").write_bytes(planned.raw)
    db = open_database(f"sqlite:///{folder / f'{tag}.db'}")
    seed(db, SENDERS)
    intake = intake_for(db)
    files = sorted(folder.glob("*.eml"))
    if trace:
        tracemalloc.start()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.process_time()
    for path, outcome in ingest_files(intake, files):
        if isinstance(outcome, OSError):
            raise outcome
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    readers_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    peak = 0
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return FilesRun(seconds, cpu, readers_cpu, peak, db)


def from_imap(folder: Path, corpus: list[Planned]) -> tuple[float, Database] | str:
    try:
        from mailserver import DOVECOT, PASSWORD, MailServer  # type: ignore[import-not-found]

        from bot.config import EmailConfig
        from bot.imap import ImapIntake
    except ImportError as exc:
        return f"skipped ({exc})"
    if DOVECOT is None:
        return "skipped (dovecot is not installed)"
    server = MailServer.create()
    try:
        server.start()
        user = server.new_user()
        client = server.client(user)
        try:
            for planned in corpus:
                client.append("INBOX", "", None, planned.raw)
        finally:
            client.logout()
        db = open_database(f"sqlite:///{folder / 'imap.db'}")
        seed(db, SENDERS)
        config = EmailConfig(imap_host=server.host, imap_port=server.port, imap_user=user,
                             imap_password=PASSWORD, imap_security="none")  # type: ignore[arg-type]
        imap = ImapIntake(config, intake_for(db), db)
        t0 = time.perf_counter()
        asyncio.run(imap.catch_up())
        return time.perf_counter() - t0, db
    finally:
        server.remove()


SENDERS = [f"klant{i}@bedrijf{i}.example" for i in range(200)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-imap", action="store_true")
    args = parser.parse_args(argv)
    corpus = make_corpus(random.Random(args.seed), args.n, SENDERS)
    replies = sum(p.reply for p in corpus)
    size = sum(len(p.raw) for p in corpus)
    print(f"bench_email: {len(corpus):,} mails ({replies:,} replies, {size / 2**20:.1f} MiB), seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="bench_email_") as tmp:
        a = Path(tmp) / "a"
        a.mkdir()
        run = from_files(a, corpus, "files", False)
        good, total = threaded(run.db, corpus)
        run.db.dispose()
        rate = len(corpus) / run.seconds
        per_mail = 1000 / len(corpus)
        print(f"(a) from .eml files: {run.seconds:.2f} s, {rate:,.0f} mails/s; replies threaded {good:,} of {total:,}")
        print(f"    CPU per mail: storing (this process) {run.cpu * per_mail:.2f} ms, "
              f"reading and parsing (reader processes) {run.readers_cpu * per_mail:.2f} ms; "
              f"the storing's CPU alone would allow {len(corpus) / run.cpu:,.0f} mails/s")
        b = Path(tmp) / "b"
        b.mkdir()
        traced = from_files(b, corpus, "traced", True)
        traced.db.dispose()
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"    tracemalloc peak during a second pass: {traced.peak / 2**20:.1f} MiB; "
              f"ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
              f"(largest reader process {children:.0f} MiB)")
        imap_rate: float | None = None
        if not args.no_imap:
            c = Path(tmp) / "c"
            c.mkdir()
            result = from_imap(c, corpus)
            if isinstance(result, str):
                print(f"(b) from IMAP: {result}")
            else:
                imap_seconds, db3 = result
                good_i, total_i = threaded(db3, corpus)
                db3.dispose()
                imap_rate = len(corpus) / imap_seconds
                print(f"(b) from IMAP (Dovecot on loopback): {imap_seconds:.2f} s, {imap_rate:,.0f} mails/s; "
                      f"replies threaded {good_i:,} of {total_i:,}")
    print("targets")
    print(f"    {'PASS' if rate >= 600 else 'FAIL'}  >= 600 mails/s from files: {rate:,.0f}")
    print(f"    {'PASS' if good == total else 'FAIL'}  every reply threaded: {good:,} of {total:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
