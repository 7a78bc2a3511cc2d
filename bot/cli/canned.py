"""``slabot canned list|add|remove``: the canned answers staff insert in a reply (:mod:`bot.canned`).

``slabot canned add NAME TEXT [--language nl|en]`` stores one (replacing the text of that name and language);
``{contact}``, ``{ref}``, ``{due}`` and ``{staff}`` are filled from the ticket when it is inserted.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from bot.canned import CannedAnswers
from bot.cli.common import STAFF_ENV, command_group, staff_name, with_database


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    answers = with_database(args, lambda _, db: CannedAnswers(db).all())
    if args.json:
        out.write(json.dumps([{"name": a.name, "language": a.language, "text": a.text, "staff": a.staff}
                              for a in answers]) + "\n")
        return 0
    if not answers:
        out.write("no canned answers; add one with `slabot canned add NAME TEXT`\n")
    out.writelines(f"{answer.name} [{answer.language}]: {' '.join(answer.text.split())}\n" for answer in answers)
    return 0


def cmd_add(args: argparse.Namespace, out: TextIO) -> int:
    new = with_database(args, lambda _, db: CannedAnswers(db).add(args.name, args.language, args.text,
                                                                  staff_name(args)))
    out.write(f"{args.name.lower()} [{args.language}] {'added' if new else 'changed'}\n")
    return 0


def cmd_remove(args: argparse.Namespace, out: TextIO) -> int:
    removed = with_database(args, lambda _, db: CannedAnswers(db).remove(args.name, args.language))
    if not removed:
        out.write(f"no canned answer {args.name!r}\n")
        return 1
    out.write(f"{args.name.lower()} removed ({removed})\n")
    return 0


def register(commands: Any) -> None:
    """Add ``slabot canned``."""
    canned = command_group(commands, "canned", "the canned answers staff insert in a reply (Dutch and English)")
    listing = canned.add_parser("list", help="every canned answer")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(handler=cmd_list)
    add = canned.add_parser("add", help="add or change one; {contact} {ref} {due} {staff} are filled in")
    add.add_argument("name", help="a short name: letters, digits, - or _")
    add.add_argument("text", help="the answer")
    add.add_argument("--language", choices=("nl", "en"), default="nl", help="its language (default nl)")
    add.add_argument("--staff", help=f"who writes it (default: ${STAFF_ENV}, else $USER)")
    add.set_defaults(handler=cmd_add)
    remove = canned.add_parser("remove", help="remove one (in every language without --language)")
    remove.add_argument("name")
    remove.add_argument("--language", choices=("nl", "en"), help="only this language")
    remove.set_defaults(handler=cmd_remove)


__all__ = ["register"]
