"""Staff actions from the command line, for a desk without the staff chat: reply, clarify, resolve, release,
priority.

``slabot tickets reply REF TEXT`` (``--clarify`` asks a question and pauses the
resolution clock, R14), ``slabot tickets resolve REF`` and ``slabot tickets
release REF [--clear]`` (R13: a problem that needs an IT release leaves the
resolution clock) and ``slabot tickets priority REF NAME`` (R25: another
priority of the preset's matrix, the deadlines recomputed from receipt). They do what the same commands in the staff chat do, in one
transaction each, and print the ticket's state (``--json``: one object).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO, TypeVar

from bot.cli.common import STAFF_ENV, Handler, UsageError, local_iso, staff_name, with_database
from bot.desk import ActionResult, Desk, DeskError
from channels.messages import DeliveryState
from storage.repositories import TicketRepository

T = TypeVar("T")


def _act(args: argparse.Namespace, action: Callable[[Desk], T]) -> T:
    return with_database(args, lambda _, db: action(Desk(db)))


def _print(out: TextIO, args: argparse.Namespace, result: ActionResult, text: str, **extra: Any) -> int:
    data = {"ref": result.ref, "state": result.state, **extra}
    out.write((json.dumps(data) if args.json else text) + "\n")
    return 0


def cmd_reply(args: argparse.Namespace, out: TextIO) -> int:
    """Answer the customer, or ask a question that pauses the resolution clock (``--clarify``)."""
    result = _act(args, lambda d: d.reply(args.ref, args.text, staff_name(args), clarify=args.clarify))
    first = (" (first response recorded, reminders stopped; if it fails for good the ticket is unanswered again "
             "and staff are told)" if result.first_response else "")
    if result.follow_up:
        first = " (response to the follow-up question recorded, reminders stopped)"
    what = "question queued; waits for the customer" if args.clarify else "queued for the customer"
    # R8: a reply counts when it is queued; the outbox sends it when its channel is on
    return _print(out, args, result, f"{result.ref}: {what}{first}", first_response=result.first_response,
                  queued=result.delivery_state == DeliveryState.QUEUED.value, delivery_state=result.delivery_state,
                  follow_up=result.follow_up)


def cmd_resolve(args: argparse.Namespace, out: TextIO) -> int:
    """Mark a ticket resolved."""
    result = _act(args, lambda d: d.resolve(args.ref, staff_name(args)))
    return _print(out, args, result, f"{result.ref} is resolved")


def cmd_release(args: argparse.Namespace, out: TextIO) -> int:
    """Take a ticket off the resolution clock while it waits for a release (``--clear``: back on it)."""
    needs = not args.clear

    def flag(desk: Desk) -> tuple[ActionResult, datetime | None, datetime | None]:
        result = desk.flag_release(args.ref, staff_name(args), needs_release=needs)
        ticket = desk.db.run(lambda s: TicketRepository(s).by_ref(result.ref))
        assert ticket is not None
        return result, ticket.resolution_due_min, ticket.resolution_due_max

    result, earliest, latest = _act(args, flag)
    if not needs:
        text = f"{result.ref} no longer waits for a release: back on the resolution clock"
    elif latest is None:
        text = f"{result.ref} waits for a release: off the resolution clock"
    else:  # a plan whose resolution target does not exclude releases
        text = f"{result.ref} waits for a release; its plan keeps the resolution target (by {latest.isoformat()})"
    return _print(out, args, result, text, needs_release=needs,
                  resolution_due_min=earliest.isoformat() if earliest else None,
                  resolution_due_max=latest.isoformat() if latest else None)


def cmd_priority(args: argparse.Namespace, out: TextIO) -> int:
    """Set the ticket's priority (R25): its deadlines are recomputed from receipt and its reminders replanned."""
    try:
        change = with_database(args, lambda loaded, db: Desk(db).set_priority(args.ref, args.name, staff_name(args),
                                                                                loaded.preset))
    except DeskError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        out.write(json.dumps(change.to_dict()) + "\n")
        return 0
    old, new = change.response_due
    out.write(f"{change.ref}: priority {change.old or '-'} -> {change.new}"
              f"{f' ({change.note})' if change.note else ''}; response due {local_iso(old) or '-'} -> "
              f"{local_iso(new) or '-'}; resolution by {local_iso(change.resolution_due_max[0]) or '-'} -> "
              f"{local_iso(change.resolution_due_max[1]) or '-'}\n")
    return 0


def register(ticket_cmds: Any) -> None:
    """Add the staff actions to ``slabot tickets``."""
    def common(parser: argparse.ArgumentParser, handler: Handler) -> None:
        parser.add_argument("ref", help="ticket reference")
        parser.add_argument("--staff", help=f"who does it (default: ${STAFF_ENV}, else $USER)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.set_defaults(handler=handler)

    reply = ticket_cmds.add_parser("reply", help="queue an answer to the customer over the ticket's own channel (the "
                                                 "first staff answer is the first response once queued; undone when "
                                                 "it fails for good, R8)")
    common(reply, cmd_reply)
    reply.add_argument("text", help="the text for the customer")
    reply.add_argument("--clarify", action="store_true",
                       help="a question to the customer: the resolution clock pauses until they answer (R14)")
    common(ticket_cmds.add_parser("resolve", help="mark the ticket resolved"), cmd_resolve)
    release = ticket_cmds.add_parser(
        "release", help="the problem needs an IT release: the ticket leaves the resolution clock (R13)")
    common(release, cmd_release)
    release.add_argument("--clear", action="store_true", help="no release needed after all: back on the clock")
    priority = ticket_cmds.add_parser(
        "priority", help="set the ticket's priority of the preset's matrix (R25): deadlines recomputed from receipt")
    common(priority, cmd_priority)
    priority.add_argument("name", help="a priority of the preset, e.g. p1")


__all__ = ["register"]
