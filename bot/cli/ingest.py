"""``slabot ingest email``: mail fed in by an MTA's pipe transport, from a file, stdin or a folder of .eml files.

The exit code tells the MTA what to do: 0 once committed (a mail over ``[email] max_message_bytes`` too: kept
aside for staff and its sender told the limit), 65 (EX_DATAERR) when a mail cannot be read at all (it is kept
aside for staff), 75 (EX_TEMPFAIL) when the database is unreachable (the MTA retries).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.cli.common import (
    EX_DATAERR,
    EX_TEMPFAIL,
    UsageError,
    command_group,
    error_name,
    mail_intake,
)
from bot.config import database_problem, load_config
from storage.database import (
    DatabaseError,
    StorageError,
    open_database,
    translate_errors,
)

if TYPE_CHECKING:
    from bot.mail import MailIntake, MailResult


def _mail_files(source: str) -> list[Path] | None:
    """The mail files to store: one, or the ``.eml`` files of a folder in name order; None for stdin."""
    if source == "-":
        return None
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".eml")
    if not path.is_file():
        raise UsageError(f"{source}: no such file or directory")
    return [path]


def _stored_mails(intake: MailIntake, files: list[Path] | None) -> Iterator[tuple[str, MailResult | OSError]]:
    """What became of each mail, in order (:func:`bot.mail.ingest_files` for files)."""
    if files is None:
        cap = intake.max_message_bytes
        try:
            raw = sys.stdin.buffer.read() if cap is None else sys.stdin.buffer.read(cap + 1)
            size = len(raw)
            if cap is not None and size > cap:  # the rest is read and dropped: the MTA sees it all taken
                while chunk := sys.stdin.buffer.read(1024 * 1024):
                    size += len(chunk)
        except OSError as exc:
            yield "stdin", exc
            return
        if cap is not None and size > cap:
            from channels.email.parse import header_block

            yield "stdin", intake.ingest_too_large(header_block(raw), size, source="stdin")
            return
        yield "stdin", intake.ingest_raw(raw, source="stdin")
        return
    from bot.mail import ingest_files

    for path, outcome in ingest_files(intake, files):
        yield str(path), outcome


def cmd_ingest_email(args: argparse.Namespace, out: TextIO) -> int:
    """One mail from a file or stdin, or every ``.eml`` of a directory, as an MTA pipe transport delivers it."""
    loaded = load_config(args.config)
    cfg = loaded.config
    files = _mail_files(args.source)
    names = ["stdin"] if files is None else [str(p) for p in files]
    try:
        with translate_errors():
            db = open_database(cfg.database.url, synchronous=cfg.database.synchronous)
    except StorageError as exc:
        sys.stderr.write(f"slabot: {database_problem(cfg.database.url, exc)} (unreachable: try again later)\n")
        return EX_TEMPFAIL
    intake = mail_intake(loaded, db)
    code = 0
    done = 0  # mails reported so far: the next one is where a database failure stopped
    results: list[dict[str, Any]] = []
    try:
        with translate_errors():
            for name, outcome in _stored_mails(intake, files):
                done += 1
                if isinstance(outcome, OSError):
                    sys.stderr.write(f"slabot: {name}: {outcome}\n")
                    code = max(code, EX_DATAERR)
                    continue
                if outcome.outcome == "kept_aside":
                    code = max(code, EX_DATAERR)
                results.append({"source": name, "outcome": outcome.outcome, "ticket": outcome.ticket_ref,
                                "message_id": outcome.message_id, "reasons": list(outcome.reasons)})
                if not args.json:
                    ref = f" {outcome.ticket_ref}" if outcome.ticket_ref else ""
                    out.write(f"{name}: {outcome.outcome}{ref}\n")
    except DatabaseError as exc:
        sys.stderr.write(f"slabot: {names[done]}: not stored, the database failed "
                         f"({error_name(exc)}); try again later\n")
        return EX_TEMPFAIL
    finally:
        db.dispose()
    if args.json:
        out.write(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    return code


def register(commands: Any) -> None:
    """Add ``slabot ingest email`` to the ``slabot`` parser."""
    ingest_cmds = command_group(commands, "ingest", "feed messages in by hand or from an MTA")
    ingest_email = ingest_cmds.add_parser(
        "email", help="one mail (file or stdin) or a directory of .eml files, as an MTA pipe delivers it",
        description="Store one RFC 5322 mail read from FILE or stdin (-), or every .eml file of a directory, "
                    "through the intake. Exit 0 once committed, 65 when a mail cannot be read at all (it is "
                    "kept aside for staff), 75 when the database is unreachable (the MTA retries).",
    )
    ingest_email.add_argument("source", nargs="?", default="-", metavar="FILE|DIR|-", help="default: stdin")
    ingest_email.add_argument("--json", action="store_true", help="print one JSON array of results")
    ingest_email.set_defaults(handler=cmd_ingest_email)


__all__ = ["register"]
