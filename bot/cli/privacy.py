"""``slabot privacy export|erase|log``: one person's data exported or erased (AVG/GDPR), and the privacy log."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from bot.cli.common import UsageError, command_group, local_iso, staff_name, with_database
from bot.privacy import Privacy, identity_of
from channels.identity import Identity, IdentityError


def _identity(args: argparse.Namespace) -> Identity:
    try:
        return identity_of(args.contact)
    except IdentityError as exc:
        raise UsageError(f"--contact {args.contact!r}: {exc}") from None


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    """Print one JSON document with everything stored about the person."""
    identity = _identity(args)
    document = with_database(args, lambda _, db: Privacy(db).export(identity, staff_name(args)))
    out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    return 0


def cmd_erase(args: argparse.Namespace, out: TextIO) -> int:
    """Remove the person's personal data; asks for confirmation unless ``--yes``."""
    identity = _identity(args)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("erasing cannot be undone: confirm with --yes when not on a terminal")
        out.write(f"Erase every personal detail of {identity.value}? This cannot be undone. Type yes: ")
        out.flush()
        if sys.stdin.readline().strip().lower() != "yes":
            out.write("nothing erased\n")
            return 1
    summary = with_database(args, lambda _, db: Privacy(db).erase(identity, staff_name(args)))
    if summary is None:
        out.write(f"nothing is stored about {identity.value}\n")
        return 0
    out.write("erased: " + ", ".join(f"{name} {count}" for name, count in summary.items()) + "\n")
    return 0


def cmd_log(args: argparse.Namespace, out: TextIO) -> int:
    """Every export, erasure and expiry: when, by whom, and the counts (the identity only as a hash)."""
    records = with_database(args, lambda _, db: Privacy(db).log())
    if args.json:
        out.write(json.dumps([{"at": local_iso(r.at), "action": r.action, "actor": r.actor,
                               "subject_hash": r.subject_hash, "summary": r.summary} for r in records]) + "\n")
        return 0
    if not records:
        out.write("the privacy log is empty\n")
    for r in records:
        counts = ", ".join(f"{k} {v}" for k, v in r.summary.items())
        out.write(f"{local_iso(r.at)}  {r.action:<7} by {r.actor:<12} {(r.subject_hash or '-')[:12]}  {counts}\n")
    return 0


def register(commands: Any) -> None:
    """Add ``slabot privacy`` to the ``slabot`` parser."""
    privacy = command_group(commands, "privacy", "one person's data (AVG/GDPR) and the privacy log")
    for name, handler, help_text in (
            ("export", cmd_export, "print one JSON document with everything stored about a person"),
            ("erase", cmd_erase, "remove a person's personal data; the anonymous ticket figures stay")):
        command = privacy.add_parser(name, help=help_text)
        command.add_argument("--contact", required=True, metavar="EMAIL|PHONE", help="the person's e-mail address "
                             "or phone number")
        command.add_argument("--staff", help="who does it (default: $SLABOT_STAFF, else $USER)")
        command.set_defaults(handler=handler)
        if name == "erase":
            command.add_argument("--yes", action="store_true", help="do not ask for confirmation (scripts)")
    log = privacy.add_parser("log", help="every export, erasure and expiry, with who did it")
    log.add_argument("--json", action="store_true", help="print one JSON array")
    log.set_defaults(handler=cmd_log)


__all__ = ["register"]
