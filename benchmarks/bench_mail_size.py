"""Benchmark: the memory a large mail takes on its way in, and how often its bytes are stored.

Builds mails of several sizes (a short text and one base64 attachment of random bytes, so nothing compresses),
and stores each, in a fresh SQLite database, through the same code as ``slabot ingest email -``
(``MailIntake.ingest_raw``). For each it prints the peak of Python's allocations during the ingest
(tracemalloc, so the mail's own bytes, which the caller already holds, are not counted), that peak as a multiple
of the mail's size (target: under 3x), the time it took, what was stored (the raw mail, the attachment's bytes,
which stay in the raw mail only, and the attachment's size as measured), and the outcome. A mail over ``[email] max_message_bytes`` (25 MB by default) is kept aside for staff and answered
with a polite note naming the limit: its row shows ``kept_aside``.

    .venv/bin/python benchmarks/bench_mail_size.py [--sizes 1,10,24,30] [--limit-mb 25]
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.intake import IntakePipeline  # noqa: E402
from bot.mail import MailIntake, mail_reply_guards  # noqa: E402
from bot.presets import load_preset  # noqa: E402
from storage import models as m  # noqa: E402
from storage.database import open_database  # noqa: E402

MB = 1024 * 1024
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def big_mail(size: int, n: int) -> bytes:
    """A mail of about ``size`` bytes: a short text and one base64 attachment (76-character lines)."""
    payload = os.urandom(size * 3 // 4)
    encoded = base64.encodebytes(payload)  # 76-character lines ending in \n
    head = (f"From: Piet Jansen <piet@bakkerij-jansen.nl>\r\nTo: support@mailcampaigns.example\r\n"
            f"Subject: Logbestand {n}\r\nMessage-ID: <big{n}@bakkerij-jansen.nl>\r\n"
            f"Date: {format_datetime(NOW)}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHierbij het logbestand.\r\n\r\n"
            "--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"log.bin\"\r\n\r\n").encode()
    return head + encoded.replace(b"\n", b"\r\n") + b"\r\n--b1--\r\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,24,30", help="mail sizes in MB, comma-separated")
    parser.add_argument("--limit-mb", type=float, default=25.0, help="[email] max_message_bytes, in MB")
    args = parser.parse_args()
    preset = load_preset("mailcampaigns")
    limit = int(args.limit_mb * MB)
    print(f"max_message_bytes = {limit} ({args.limit_mb:g} MB)")
    print(f"{'mail':>9} {'peak':>10} {'peak/mail':>9} {'time':>7} {'raw stored':>11} {'att. bytes':>11} "
          f"{'att. size':>10} {'kept':>9}  outcome")
    with tempfile.TemporaryDirectory() as folder:
        for n, size_mb in enumerate(float(s) for s in args.sizes.split(",")):
            db = open_database(f"sqlite:///{Path(folder) / f'size{n}.db'}")
            pipeline = IntakePipeline(db, preset, now=lambda: NOW, reply_guards=mail_reply_guards(5, lambda: NOW))
            intake = MailIntake(db, pipeline, now=lambda: NOW, max_message_bytes=limit)
            raw = big_mail(int(size_mb * MB), n)
            gc.collect()
            tracemalloc.start()
            started = time.perf_counter()
            result = intake.ingest_raw(raw, source="bench")
            seconds = time.perf_counter() - started  # with tracemalloc on: slower than without
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()

            def sizes(s: Session) -> tuple[int, int, int, int]:
                def total(column: Any) -> int:
                    return int(s.scalar(select(func.coalesce(func.sum(column), 0))) or 0)

                return (total(func.length(m.Message.raw)), total(func.length(m.Attachment.data)),
                        total(m.Attachment.size), total(func.length(m.KeptMail.raw)))

            raw_stored, attached, measured, kept = db.run(sizes)
            print(f"{len(raw) / MB:8.1f}M {peak / MB:9.1f}M {peak / len(raw):8.2f}x {seconds:6.2f}s "
                  f"{raw_stored / MB:10.1f}M {attached / MB:10.1f}M {measured / MB:9.1f}M {kept / MB:8.2f}M  "
                  f"{result.outcome}"
                  + ("" if result.outcome == "kept_aside" or peak < 3 * len(raw) else "  (over 3x)"))
            db.dispose()
    print(f"ru_maxrss of the whole run: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
