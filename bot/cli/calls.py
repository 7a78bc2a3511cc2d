"""``slabot calls import|log``: phone calls through the intake, from a PBX's call log or one at a time."""

from __future__ import annotations

import argparse
import hashlib
import json
from typing import Any, TextIO

from bot.cli.common import (
    UsageError,
    command_group,
    database_error,
    import_file,
    open_command_database,
    parse_instant,
)
from bot.config import load_config
from channels.messages import utc_now
from storage.database import StorageError, translate_errors


def cmd_calls_import(args: argparse.Namespace, out: TextIO) -> int:
    """Every call of a call log (CSV or JSON) through the intake."""
    from bot.calls import import_calls
    from bot.pipeline import intake_pipeline

    return import_file(args, out, "call log", lambda loaded, db, path: import_calls(intake_pipeline(loaded, db), path))


def cmd_calls_log(args: argparse.Namespace, out: TextIO) -> int:
    """One phone call through the intake; ``--critical`` opens the outage line's critical ticket (R17);
    ``--outbound`` logs a call staff made to the ticket's contact person (R8: answered, it is a response)."""
    from bot.calls import log_call
    from bot.intake import Outcome
    from bot.pipeline import intake_pipeline
    from channels.calls import parse_call
    from channels.identity import IdentityError, normalise_phone

    if args.outbound:
        return _log_outbound(args, out)
    if args.caller is None:
        raise UsageError("the following arguments are required: --from")
    loaded = load_config(args.config)
    preset = loaded.preset
    try:
        caller = normalise_phone(args.caller)
    except IdentityError as exc:
        raise UsageError(f"--from: {exc}; expected e.g. +31612345678 or 06 12345678") from None
    if args.critical and preset.critical is None:
        raise UsageError(f"--critical: preset {preset.name} has no outage line ([critical]); log the call without it")
    at = parse_instant(args.at, preset) if args.at else utc_now()
    try:
        call = parse_call({"call_id": args.id, "time": at.isoformat(), "caller": caller, "called": args.to,
                           "duration": args.duration, "status": "missed" if args.missed else "answered",
                           "agent": args.agent, "notes": " ".join(args.text), "critical": str(args.critical)})
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _, db = open_command_database(args)
    try:
        with translate_errors():
            logged = log_call(intake_pipeline(loaded, db), call)
    except StorageError as exc:
        raise database_error(loaded.config.database.url, exc) from None
    finally:
        db.dispose()
    result = logged.result
    if args.json:
        out.write(json.dumps({"ref": result.ticket_ref, "outcome": result.outcome.value, "direction": "inbound",
                              "answered": not call.missed, "response": not call.missed and not call.critical
                              and result.ticket_ref is not None, "callback": logged.callback}) + "\n")
        return 1 if args.critical and result.ticket_ref is None else 0
    if result.outcome is Outcome.DUPLICATE:
        out.write(f"call {call.call_id} is logged already; nothing added\n")
        return 0
    if result.ticket_ref is None:
        out.write(f"logged without a ticket ({result.outcome.value}): {'; '.join(result.reasons)}\n")
        return 1 if args.critical else 0  # a critical call that opened no ticket pages no one
    out.write(f"{result.ticket_ref}: {result.outcome.value}\n")
    if args.critical:
        out.write("critical ticket on the 24/7 clock: slabot run pages on-call until someone acknowledges it\n")
    if logged.callback:
        out.write("missed during opening hours: staff are reminded to call back\n")
    return 0


def _log_outbound(args: argparse.Namespace, out: TextIO) -> int:
    """``calls log --outbound --ticket REF --agent NAME``: a call staff made to the ticket's contact person."""
    from bot.calls import log_outbound
    from bot.pipeline import intake_pipeline
    from channels.calls import Call

    if not args.ticket:
        raise UsageError("--outbound needs --ticket REF: the ticket whose contact person was called")
    if not args.agent:
        raise UsageError("--outbound needs --agent NAME: who made the call")
    if args.critical or args.caller:
        raise UsageError("--outbound: --critical and --from are for calls that came in")
    if args.duration is not None and args.duration < 0:
        raise UsageError(f"--duration {args.duration} is negative")
    loaded = load_config(args.config)
    at = parse_instant(args.at, loaded.preset) if args.at else utc_now()
    called = None
    if args.to:
        from channels.identity import IdentityError, normalise_phone
        try:
            called = normalise_phone(args.to)
        except IdentityError as exc:
            raise UsageError(f"--to: {exc}; expected e.g. +31612345678 or 06 12345678") from None
    call_id = args.id or "out-" + hashlib.sha256(
        f"{args.ticket.upper()}|{at.isoformat()}|{args.agent}".encode()).hexdigest()[:24]
    call = Call(call_id=call_id, at=at, caller="", called=called, duration=args.duration or 0,
                missed=args.missed, agent=args.agent, notes=" ".join(args.text), critical=False, outbound=True)
    _, db = open_command_database(args)
    try:
        with translate_errors():
            logged = log_outbound(intake_pipeline(loaded, db), call, args.ticket)
    except KeyError:
        raise UsageError(f"--ticket: no ticket {args.ticket}") from None
    except StorageError as exc:
        raise database_error(loaded.config.database.url, exc) from None
    finally:
        db.dispose()
    if args.json:
        out.write(json.dumps({"ref": logged.ref, "outcome": "duplicate" if logged.duplicate else "logged",
                              "direction": "outbound", "answered": not call.missed,
                              "response": not call.missed and not logged.duplicate,
                              "first_response": logged.first_response, "callback": False}) + "\n")
    elif logged.duplicate:
        out.write(f"call {call.call_id} is logged already; nothing added\n")
    elif call.missed:
        out.write(f"{logged.ref}: outbound call not answered; logged, no response\n")
    else:
        first = "; the first response" if logged.first_response else ""
        out.write(f"{logged.ref}: outbound call answered: a response{first}\n")
    return 0


def register(commands: Any) -> None:
    """Add ``slabot calls import|log`` to the ``slabot`` parser."""
    call_cmds = command_group(commands, "calls", "phone-call logs")
    calls_import = call_cmds.add_parser(
        "import", help="import a phone-call log (CSV or JSON) from a PBX or Twilio",
        description="Every call of FILE (.csv with a header row, or .json) becomes a request through the intake; "
                    "re-importing the same file adds nothing. Columns: call_id, time, caller, called, duration, "
                    "status, agent, notes, critical. Rejected rows are listed with their line; exit code 1 when "
                    "any row was rejected.",
    )
    calls_import.add_argument("file", metavar="FILE", help="call log, .csv or .json")
    calls_import.set_defaults(handler=cmd_calls_import)
    calls_log = call_cmds.add_parser(
        "log", help="log one phone call (--critical: a call to the outage line)",
        description="Log one phone call through the intake, like one row of a call log. --critical opens a "
                    "critical ticket on the 24/7 clock that slabot run pages to on-call until someone acknowledges "
                    "it (R17; presets with an outage line only). A missed call during opening hours gets a callback "
                    "reminder for staff; an answered one cancels the callbacks still planned on the caller's ticket. "
                    "With --at or --id the same command run twice logs the call once. Exit code 2 for a bad number "
                    "or time, 1 when a critical call opened no ticket. --outbound --ticket REF --agent NAME logs a "
                    "call staff made to the ticket's contact person: answered, it is a response (R8); with "
                    "--missed it is logged and is no response.",
    )
    calls_log.add_argument("--from", dest="caller", metavar="NUMBER",
                           help="the caller's number, e.g. +31612345678 or 06 12345678 (required unless "
                                "--outbound)")
    calls_log.add_argument("--to", metavar="NUMBER", help="the number that was called")
    calls_log.add_argument("--at", metavar="ISO8601", help="when the call came in (default now; Amsterdam time "
                                                           "when it has no offset)")
    calls_log.add_argument("--critical", action="store_true", help="a critical incident on the outage line")
    calls_log.add_argument("--missed", action="store_true", help="nobody answered the call")
    calls_log.add_argument("--agent", metavar="NAME", help="who took the call")
    calls_log.add_argument("--duration", type=int, metavar="SECONDS", help="how long the call took")
    calls_log.add_argument("--id", metavar="CALL_ID", help="the call's own id, e.g. a Twilio CallSid")
    calls_log.add_argument("--outbound", action="store_true",
                           help="a call staff made to the contact person of --ticket (answered: a response, R8)")
    calls_log.add_argument("--ticket", metavar="REF", help="with --outbound: the ticket the call was about")
    calls_log.add_argument("--json", action="store_true", help="print one JSON object")
    calls_log.add_argument("text", nargs="*", metavar="TEXT", help="what the call was about")
    calls_log.set_defaults(handler=cmd_calls_log)


__all__ = ["register"]
