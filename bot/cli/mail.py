"""Mail kept aside, from the command line: ``slabot mail kept|raw|reprocess``.

A mail that cannot be read as one is kept in ``kept_mail`` (raw bytes, source,
reason; staff are told). ``slabot mail kept`` lists the ones not re-processed
yet (``--all``: every one), ``slabot mail raw ID`` writes one's bytes to
stdout (to look at it or repair it), and ``slabot mail reprocess ID [--file
REPAIRED.eml]`` runs it, or its repaired version, through the intake again, as
``slabot ingest email`` would: once it is stored, the kept mail is marked
re-processed. The same mail twice is stored once (its Message-ID), so running
it again is safe.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from bot.cli.common import (
    EX_DATAERR,
    UsageError,
    command_group,
    mail_intake,
    with_database,
)
from channels.messages import utc_now
from storage.database import Database
from storage.direct import Direct
from storage.mailbox import MailboxRepository

if TYPE_CHECKING:
    from bot.config import LoadedConfig
    from bot.mail import MailResult

T = TypeVar("T")


def _kept(db: Database, everything: bool) -> list[dict[str, Any]]:
    return [{"id": k.id, "received_at": k.received_at.isoformat(),
             "reprocessed_at": k.reprocessed_at.isoformat() if k.reprocessed_at else None,
             "source": k.source, "reason": k.reason, "bytes": k.size}
            for k in db.run_direct(lambda d: MailboxRepository(d).kept(everything=everything))]


def _raw(db: Database, kept_id: int) -> bytes:
    raw = db.run_direct(lambda d: MailboxRepository(d).kept_raw(kept_id))
    if raw is None:
        raise UsageError(f"no kept mail {kept_id}; `slabot mail kept --all` lists them")
    return raw


def _read(args: argparse.Namespace, read: Callable[[Database], T]) -> T:
    return with_database(args, lambda _, db: read(db))


def cmd_kept(args: argparse.Namespace, out: TextIO) -> int:
    """The mail kept aside (``--all``: also the re-processed), one line each or one JSON array."""
    kept = _read(args, lambda db: _kept(db, args.all))
    if args.json:
        out.write(json.dumps(kept, ensure_ascii=False) + "\n")
        return 0
    if not kept:
        out.write("no mail kept aside" + ("" if args.all else " that waits to be re-processed") + "\n")
    for k in kept:
        done = f"  re-processed {k['reprocessed_at']}" if k["reprocessed_at"] else ""
        out.write(f"{k['id']:>5}  {k['received_at']}  {k['source']}  ({k['bytes']} bytes): {k['reason']}{done}\n")
    return 0


def cmd_raw(args: argparse.Namespace, out: TextIO) -> int:
    """Write a kept mail's bytes to standard output."""
    raw = _read(args, lambda db: _raw(db, args.id))
    if out is sys.stdout:
        out.flush()
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
    else:  # a text stream (tests, an embedding program): the bytes as the mail's own 8-bit text
        out.write(raw.decode("utf-8", "surrogateescape"))
    return 0


def cmd_reprocess(args: argparse.Namespace, out: TextIO) -> int:
    """Run a kept mail, or its repaired copy, through the intake again; exit 65 when it still is not a mail."""
    def reprocess(loaded: LoadedConfig, db: Database) -> MailResult:
        original = _raw(db, args.id)
        try:
            raw = Path(args.file).read_bytes() if args.file else original
        except OSError as exc:
            raise UsageError(f"{args.file}: {exc.strerror or exc}") from None
        source = f"kept mail {args.id}" + (f" repaired as {args.file}" if args.file else "")
        result = mail_intake(loaded, db).ingest_raw(raw, source=source)
        if result.outcome != "kept_aside":
            now = utc_now()

            def mark(d: Direct) -> None:
                MailboxRepository(d).reprocessed(args.id, now, outcome=result.outcome, ticket=result.ticket_ref,
                                                 repaired=bool(args.file))

            db.run_direct(mark)
        return result

    result = with_database(args, reprocess)
    stored = result.outcome != "kept_aside"
    data = {"id": args.id, "outcome": result.outcome, "ticket": result.ticket_ref, "message_id": result.message_id,
            "reasons": list(result.reasons), "reprocessed": stored}
    if args.json:
        out.write(json.dumps(data, ensure_ascii=False) + "\n")
    elif stored:
        ref = f" {result.ticket_ref}" if result.ticket_ref else ""
        out.write(f"kept mail {args.id}: {result.outcome}{ref}; marked re-processed\n")
    else:
        out.write(f"kept mail {args.id}: still cannot be read ({'; '.join(result.reasons) or 'unreadable'}); "
                  "repair it (slabot mail raw) and give the file with --file\n")
    return 0 if stored else EX_DATAERR


def register(commands: Any) -> None:
    """Add ``slabot mail`` to the parser."""
    mail_cmds = command_group(commands, "mail", "mail kept aside (not readable as a mail)")
    kept = mail_cmds.add_parser("kept", help="the mail kept aside that waits to be re-processed")
    kept.add_argument("--all", action="store_true", help="also the ones re-processed already")
    kept.add_argument("--json", action="store_true", help="print one JSON array")
    kept.set_defaults(handler=cmd_kept, reads_only=True)
    raw = mail_cmds.add_parser("raw", help="write a kept mail's bytes to stdout, to look at or repair it")
    raw.add_argument("id", type=int, help="its id (slabot mail kept)")
    raw.set_defaults(handler=cmd_raw, reads_only=True)
    again = mail_cmds.add_parser("reprocess", help="run a kept mail (or its repaired version) through the intake "
                                                   "again; marked re-processed once it is stored")
    again.add_argument("id", type=int, help="its id (slabot mail kept)")
    again.add_argument("--file", help="a repaired copy to ingest instead of the kept bytes")
    again.add_argument("--json", action="store_true", help="print one JSON object")
    again.set_defaults(handler=cmd_reprocess)


__all__ = ["register"]
