"""``slabot tickets list|show``: the queue and one ticket; the staff actions on tickets are in
:mod:`bot.cli.desk` and :mod:`bot.cli.billing`."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any, TextIO

from bot.cli.common import (
    UsageError,
    command_group,
    local_iso,
    ticket_json,
    with_database,
)
from channels.messages import utc_now
from bot.views import ticket_show_json
from storage.database import Session
from storage.records import TicketRecord, TicketState
from storage.repositories import TicketRepository


def cmd_tickets_list(args: argparse.Namespace, out: TextIO) -> int:
    """The tickets in queue order, one line each with the current response deadline (R24) (``--json``: one
    array)."""
    tickets = with_database(args, lambda _, db: db.run(lambda s: TicketRepository(s).queue(args.state)))
    if args.json:
        out.write(json.dumps([ticket_json(t) for t in tickets]) + "\n")
        return 0
    if not tickets:
        out.write("no tickets" + (f" in state {args.state}" if args.state else "") + "\n")
        return 0
    now = utc_now()
    row = "{:<10} {:<10} {:<8} {:<12} {:<8} {:<24} {:<13} {:<25} {}\n"
    out.write(row.format("REF", "STATE", "PRIORITY", "KIND", "CHANNEL", "ACCOUNT", "PLAN", "RESPONSE DUE", "ANSWER"))
    for t in tickets:  # in queue order (R15); the due column is the current question's deadline (R24)
        out.write(row.format(t.ref, t.state, t.priority, t.kind, t.channel, (t.account or "(unverified)")[:24],
                             t.plan or "-", local_iso(t.current_due) or "-", answer_state(t, now)))
    return 0


def answer_state(ticket: TicketRecord, now: datetime) -> str:
    """How the ticket's latest question stands: answered (and when), overdue, or waiting."""
    answered = ticket.current_answer
    if answered is not None:
        late = ticket.current_due is not None and answered > ticket.current_due
        return f"answered {local_iso(answered)}" + (" (late)" if late else "")
    if ticket.state == TicketState.RESOLVED:
        return "resolved"
    if ticket.current_due is not None and now > ticket.current_due:
        return "OVERDUE"
    return "waiting" if ticket.current_due is not None else "waiting (no deadline)"


def cmd_tickets_show(args: argparse.Namespace, out: TextIO) -> int:
    """A ticket with its messages, deadlines, decisions and events (``--json``: one object)."""
    def work(s: Session) -> tuple[TicketRecord | None, list[dict[str, Any]]]:
        repo = TicketRepository(s)
        ticket = repo.by_ref(args.ref, with_messages=True)
        return ticket, (repo.events(ticket.id) if ticket else [])

    ticket, events = with_database(args, lambda _, db: db.run(work))
    if ticket is None:
        raise UsageError(f"no ticket {args.ref!r}; `slabot tickets list` shows the references")
    data = ticket_show_json(ticket, events)
    if args.json:
        out.write(json.dumps(data) + "\n")
        return 0
    out.write(f"{ticket.ref}  {ticket.state}  {ticket.priority}  {ticket.kind}  ({ticket.channel})\n")
    out.write(f"account: {ticket.account or '(unverified)'}; contact: {ticket.contact or '-'}; "
              f"plan: {ticket.plan or '-'}\n")
    out.write(f"received: {data['received_at']}; first response due: {data['first_response_due'] or '-'}; "
              f"answered: {data['first_responded_at'] or '-'}\n")
    if ticket.asked_again:
        out.write(f"follow-up question: {data['followup_at'] or 'answered'}; response due: "
                  f"{data['response_due'] or '-'}; answered: {data['responded_at'] or '-'}\n")
    out.write(f"resolution: {data['resolution_due_min'] or '-'} .. {data['resolution_due_max'] or '-'}\n")
    for reason in (*ticket.reasons, *ticket.kind_reasons):
        out.write(f"  why: {reason}\n")
    for m in data["messages"]:
        arrow = "<-" if m["direction"] == "in" else "->"
        who = m["sender"] if m["direction"] == "in" else m["recipient"]
        out.write(f"\n{arrow} {m['at']} {m['channel']} {who} [{m['delivery_state']}]"
                  f"{' (automatic)' if m['auto'] else ''}\n")
        for line in m["text"].splitlines():
            out.write(f"   {line}\n")
    return 0


def register(commands: Any) -> Any:
    """Add ``slabot tickets list|show`` to the ``slabot`` parser; the ``tickets`` subcommands' parser set, for
    the other commands on tickets."""
    ticket_cmds = command_group(commands, "tickets", "tickets")
    listing = ticket_cmds.add_parser("list", help="tickets in queue order (R15: critical Premium, critical Business, "
                                     "other critical, Premium, then by deadline)")
    listing.add_argument("--state", choices=("open", *(s.value for s in TicketState if s != TicketState.OPEN)),
                         help="only this state: open (all open ones), waiting, unverified, resolved")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(handler=cmd_tickets_list, reads_only=True)
    show = ticket_cmds.add_parser("show", help="a ticket with its messages, deadlines and decisions")
    show.add_argument("ref", help="ticket reference, e.g. MC-10001")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=cmd_tickets_show, reads_only=True)
    return ticket_cmds


__all__ = ["register"]
