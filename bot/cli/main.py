"""The ``slabot`` command line.

Every command has ``--help``. Usage errors (a bad ``--at``, an unknown plan or
preset, a config file that does not validate) print one line per problem and
exit with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TextIO, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.accounts import import_accounts
from bot.config import LoadedConfig, load_config, masked, shown_url
from bot.errors import ConfigError, SlabotError
from bot.i18n import AMSTERDAM, LANGUAGES, Language, format_span, format_when
from bot.presets import BUILTIN, load_preset
from sla_engine.deadlines import first_response_due, resolution_window
from sla_engine.errors import PolicyError
from sla_engine.policy import Preset
from storage.database import Database, StorageError, open_database
from storage.records import AccountRecord, MessageRecord, TicketRecord
from storage.repositories import AccountRepository, TicketRepository
from channels.messages import utc_now

if TYPE_CHECKING:
    from bot.mail import MailIntake, MailResult

EXIT_USAGE = 2
T = TypeVar("T")


class UsageError(SlabotError):
    """A command was called with arguments it cannot use."""


def database_error(url: str, exc: Exception) -> UsageError:
    """The database at ``url`` failed: a one-line error that names it without its password."""
    return UsageError(f"database {shown_url(url)}: {exc.__class__.__name__}: {exc}")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- sla deadline ----------------------------------------------------------


def parse_instant(text: str, preset: Preset) -> datetime:
    """An ISO 8601 instant; one without an offset is local time in the preset's zone."""
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--at {text!r} is not an ISO 8601 date and time; expected e.g. 2026-11-23T10:00:00+01:00"
        ) from None
    if instant.tzinfo is None:
        zone = next(iter(preset.calendars.values())).zone
        instant = instant.replace(tzinfo=zone)
    return instant


def _iso(instant: datetime | None, preset: Preset) -> str | None:
    if instant is None:
        return None
    zone = next(iter(preset.calendars.values())).zone
    return instant.astimezone(zone).isoformat()


def deadline_report(preset: Preset, plan_name: str, received_at: datetime) -> dict[str, Any]:
    """The JSON object of ``slabot sla deadline --json`` (SPEC §4)."""
    plan = preset.plan(plan_name)
    terms = preset.terms(plan, received_at.date())
    due = first_response_due(received_at, terms)
    window = resolution_window(received_at, terms)
    return {
        "plan": plan.name,
        "received_at": _iso(received_at, preset),
        "first_response_due": _iso(due, preset),
        "resolution_due_min": _iso(window.earliest, preset),
        "resolution_due_max": _iso(window.latest, preset),
        "preset": preset.name,
        "sla": plan.sla,
        "first_response_target": (
            {"duration": plan.first_response.duration.total_seconds() / 3600, "unit": "hours",
             "clock": plan.first_response.clock.value}
            if plan.first_response and plan.sla else None
        ),
        "resolution_clock": plan.resolution.clock.value if plan.resolution else None,
    }


_SENTENCES: dict[Language, dict[str, str]] = {
    "nl": {
        "received": "Een aanvraag onder {plan} ({preset}), ontvangen {when}:",
        "due": "- eerste reactie door een medewerker uiterlijk {when} ({span} {clock});",
        "no_due": "- geen gegarandeerde reactietijd (dit pakket heeft geen SLA);",
        "resolution": "- oplossing (inspanningsverbintenis) tussen {earliest} en {latest}.",
        "no_resolution": "- geen gegarandeerde oplostijd.",
        "business": "binnen openingstijden",
        "working_days": "",
        "calendar": "aaneengesloten",
    },
    "en": {
        "received": "A request under {plan} ({preset}), received {when}:",
        "due": "- first response by a staff member by {when} ({span} {clock});",
        "no_due": "- no guaranteed response time (this plan has no SLA);",
        "resolution": "- resolution (best effort) between {earliest} and {latest}.",
        "no_resolution": "- no guaranteed resolution time.",
        "business": "within opening hours",
        "working_days": "",
        "calendar": "around the clock",
    },
}


def deadline_sentence(preset: Preset, plan_name: str, received_at: datetime, language: Language) -> str:
    """The same facts as :func:`deadline_report`, as readable text."""
    plan = preset.plan(plan_name)
    terms = preset.terms(plan, received_at.date())
    due = first_response_due(received_at, terms)
    window = resolution_window(received_at, terms)
    words = _SENTENCES[language]
    lines = [words["received"].format(plan=plan.title, preset=preset.title, when=format_when(received_at, language))]
    if due is not None and plan.first_response is not None:
        target = plan.first_response
        lines.append(words["due"].format(
            when=format_when(due, language),
            span=format_span(target.duration, language, target.clock.value),
            clock=words[target.clock.value],
        ).replace(" )", ")"))
    else:
        lines.append(words["no_due"])
    if window.earliest is not None and window.latest is not None:
        lines.append(words["resolution"].format(
            earliest=format_when(window.earliest, language), latest=format_when(window.latest, language)))
    else:
        lines.append(words["no_resolution"])
    return "\n".join(lines)


def _preset_for(args: argparse.Namespace) -> Preset:
    if args.preset:
        return load_preset(args.preset)
    return load_config(args.config).preset


def cmd_sla_deadline(args: argparse.Namespace, out: TextIO) -> int:
    preset = _preset_for(args)
    received_at = parse_instant(args.at, preset)
    try:
        preset.plan(args.plan)
    except PolicyError as exc:
        raise UsageError(f"--plan: {exc}") from None
    if args.json:
        out.write(json.dumps(deadline_report(preset, args.plan, received_at)) + "\n")
    else:
        out.write(deadline_sentence(preset, args.plan, received_at, args.lang) + "\n")
    return 0


# -- config check ------------------------------------------------------------


def describe_preset(preset: Preset) -> dict[str, Any]:
    """What a preset resolved to: plans and calendars, for ``config check``."""
    year = datetime.now().year
    return {
        "name": preset.name,
        "title": preset.title,
        "ref_prefix": preset.ref_prefix,
        "plans": {
            plan.name: {
                "title": plan.title,
                "channels": sorted(c.value for c in plan.channels),
                "sla": plan.sla,
                "first_response": plan.first_response.to_dict() if plan.first_response else None,
                "resolution": plan.resolution.to_dict() if plan.resolution else None,
                "staff_role": plan.staff_role,
                "queue_priority": plan.queue_priority,
                "reminders": [r.spec for r in plan.reminders] if plan.sla else [],
            }
            for plan in preset.plans
        },
        "calendars": {
            name: {
                "timezone": cal.timezone,
                "hours": cal.describe_hours(),
                "holidays": cal.holiday_country,
                f"holidays_{year}": {d.isoformat(): n for d, n in sorted(cal.holidays_in(year).items())},
                "closures": cal.to_dict()["closures"],
                "drop_holidays": sorted(cal.dropped_holidays),
            }
            for name, cal in preset.calendars.items()
        },
        "outage_line": (
            {"calendar": preset.critical.calendar, "repage_every_minutes": preset.critical.repage_every.seconds // 60}
            if preset.critical else None
        ),
        "rates": [card.to_dict() | {"urgent": str(card.urgent), "punch_card": str(card.punch_card)}
                  for card in preset.billing.rates] if preset.billing else [],
    }


def channel_states(loaded: LoadedConfig) -> dict[str, str]:
    """What ``slabot run`` will do with each channel on this config: ``on (...)`` or ``off (why)``."""
    from bot.app import channels_off_reasons

    email = loaded.config.email
    states = {name: f"off ({reason})" if reason else "on" for name, reason in channels_off_reasons(loaded).items()}
    if email.imap_configured and email.smtp_configured:
        states["email"] = "on (IMAP in, SMTP out)"
    elif email.smtp_configured:
        states["email"] = "on (SMTP out; mail comes in by the MTA pipe, slabot ingest email, no [email] imap_host)"
    elif email.imap_configured:
        states["email"] = "on (IMAP in; no replies by mail: no [email] smtp_host and from_address)"
    return states


def cmd_config_check(args: argparse.Namespace, out: TextIO) -> int:
    loaded: LoadedConfig = load_config(args.path or args.config)
    preset = describe_preset(loaded.preset)
    channels = channel_states(loaded)
    report: dict[str, object] = {
        "source": loaded.source,
        "from_environment": list(loaded.from_env),
        "config": masked(loaded.config),
        "preset": preset,
        "channels": channels,
    }
    if args.json:
        out.write(json.dumps(report, indent=2) + "\n")
        return 0
    out.write(f"config OK: {loaded.source}\n")
    if loaded.from_env:
        out.write(f"from the environment: {', '.join(loaded.from_env)}\n")
    out.write(f"preset: {preset['name']} ({preset['title']}), references {preset['ref_prefix']}-NNNNN\n")
    for name, plan in preset["plans"].items():
        fr = plan["first_response"]
        res = plan["resolution"]
        out.write(
            f"  plan {name}: channels {', '.join(plan['channels'])}; "
            + (f"first response {fr['duration']} ({fr['clock']}, {fr['calendar']})" if fr else "no SLA")
            + (f"; resolution {res['min']}-{res['max']} ({res['clock']})" if res else "")
            + (f"; staff: {plan['staff_role']}" if plan["staff_role"] else "")
            + (f"; queue priority {plan['queue_priority']}" if plan["queue_priority"] else "")
            + "\n"
        )
    for name, cal in preset["calendars"].items():
        hours = "; ".join(f"{d} {' '.join(w)}" for d, w in cal["hours"].items())
        holidays = [k for k in cal if k.startswith("holidays_")]
        count = len(cal[holidays[0]]) if holidays else 0
        out.write(f"  calendar {name} ({cal['timezone']}): {hours}; holidays {cal['holidays'] or 'none'} "
                  f"({count} this year); closures {len(cal['closures'])}\n")
    for channel, state in channels.items():
        out.write(f"  channel {channel}: {state}\n")
    out.write("config (secrets masked):\n")
    out.write(json.dumps(report["config"], indent=2) + "\n")
    return 0


# -- database and tickets -------------------------------------------------------


def _open_db(args: argparse.Namespace) -> tuple[LoadedConfig, Database]:
    loaded = load_config(args.config)
    try:
        return loaded, open_database(loaded.config.database.url,
                                     synchronous=loaded.config.database.synchronous)
    except (SQLAlchemyError, StorageError) as exc:
        raise database_error(loaded.config.database.url, exc) from None


def with_database(args: argparse.Namespace, work: Callable[[LoadedConfig, Database], T]) -> T:
    """``work`` on the configured database, closed afterwards; a staff action refused (:class:`DeskError`) is a
    one-line usage error."""
    from bot.desk import DeskError

    loaded, db = _open_db(args)
    try:
        return work(loaded, db)
    except DeskError as exc:
        raise UsageError(str(exc)) from None
    finally:
        db.dispose()


def cmd_db_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    loaded, db = _open_db(args)
    out.write(f"database {shown_url(loaded.config.database.url)} is at revision {db.current_revision()}\n")
    db.dispose()
    return 0


def _when(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(AMSTERDAM).isoformat()


def ticket_json(ticket: TicketRecord) -> dict[str, Any]:
    """A ticket as ``tickets list/show --json`` prints it (SPEC §4 keys first)."""
    return {
        "ref": ticket.ref, "state": ticket.state, "account": ticket.account, "contact": ticket.contact,
        "channel": ticket.channel, "kind": ticket.kind, "priority": ticket.priority, "plan": ticket.plan,
        "first_response_due": _when(ticket.first_response_due),
        "first_responded_at": _when(ticket.first_responded_at),
        "received_at": _when(ticket.received_at), "subject": ticket.subject,
        "resolution_due_min": _when(ticket.resolution_due_min),
        "resolution_due_max": _when(ticket.resolution_due_max),
        "queue_priority": ticket.queue_priority, "decision": ticket.decision, "reasons": list(ticket.reasons),
        "kind_rule": ticket.kind_rule, "kind_reasons": list(ticket.kind_reasons),
        "needs_release": ticket.needs_release, "waiting_since": _when(ticket.waiting_since),
    }


def message_json(message: MessageRecord) -> dict[str, Any]:
    return {
        "direction": message.direction, "channel": message.channel, "external_id": message.external_id,
        "sender": message.sender, "recipient": message.recipient, "subject": message.subject,
        "text": message.text, "delivery_state": message.delivery_state, "auto": message.auto,
        "at": _when(message.at), "purpose": message.purpose, "staff": message.staff,
        "decision": message.decision, "reasons": list(message.reasons),
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size,
                         "fetched": a.fetched} for a in message.attachments],
    }


def cmd_tickets_list(args: argparse.Namespace, out: TextIO) -> int:
    _, db = _open_db(args)
    tickets = db.run(lambda s: TicketRepository(s).queue(args.state))
    db.dispose()
    if args.json:
        out.write(json.dumps([ticket_json(t) for t in tickets]) + "\n")
        return 0
    if not tickets:
        out.write("no tickets\n")
    for t in tickets:
        due = _when(t.first_response_due) or "-"
        out.write(f"{t.ref:<10} {t.state:<10} {t.priority:<8} {t.kind:<12} {t.channel:<8} "
                  f"{(t.account or '(unverified)')[:24]:<24} {(t.plan or '-'):<13} due {due}\n")
    return 0


def cmd_tickets_show(args: argparse.Namespace, out: TextIO) -> int:
    _, db = _open_db(args)

    def work(s: Session) -> tuple[TicketRecord | None, list[dict[str, Any]]]:
        repo = TicketRepository(s)
        ticket = repo.by_ref(args.ref, with_messages=True)
        return ticket, (repo.events(ticket.id) if ticket else [])

    ticket, events = db.run(work)
    db.dispose()
    if ticket is None:
        raise UsageError(f"no ticket {args.ref!r}; `slabot tickets list` shows the references")
    data = ticket_json(ticket)
    data["messages"] = [message_json(m) for m in ticket.messages]
    data["events"] = [{"at": _when(e["at"]), "kind": e["kind"], "actor": e["actor"]} for e in events]
    if args.json:
        out.write(json.dumps(data) + "\n")
        return 0
    out.write(f"{ticket.ref}  {ticket.state}  {ticket.priority}  {ticket.kind}  ({ticket.channel})\n")
    out.write(f"account: {ticket.account or '(unverified)'}; contact: {ticket.contact or '-'}; plan: {ticket.plan or '-'}\n")
    out.write(f"received: {data['received_at']}; first response due: {data['first_response_due'] or '-'}; "
              f"answered: {data['first_responded_at'] or '-'}\n")
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


# -- accounts --------------------------------------------------------------------


class _Report(Protocol):
    @property
    def problems(self) -> Sequence[object]: ...

    @property
    def ok(self) -> bool: ...

    def summary(self) -> str: ...


def _import_file(args: argparse.Namespace, out: TextIO, what: str,
                 run_import: Callable[[LoadedConfig, Database, Path], _Report]) -> int:
    """An import command: the file checked, the database opened, rejected rows listed; exit 1 when any was."""
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such {what}")
    loaded, db = _open_db(args)
    try:
        report = run_import(loaded, db, path)
    except (SQLAlchemyError, StorageError) as exc:
        raise database_error(loaded.config.database.url, exc) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    finally:
        db.dispose()
    for problem in report.problems:
        out.write(f"rejected: {problem}\n")
    out.write(report.summary() + "\n")
    return 0 if report.ok else 1


def cmd_accounts_import(args: argparse.Namespace, out: TextIO) -> int:
    return _import_file(args, out, "accounts file", lambda loaded, db, path: import_accounts(
        db, str(path), loaded.preset, utc_now()))


def cmd_calls_import(args: argparse.Namespace, out: TextIO) -> int:
    from bot.calls import import_calls
    from bot.intake import IntakePipeline
    from bot.texts import Texts

    return _import_file(args, out, "call log", lambda loaded, db, path: import_calls(
        IntakePipeline(db, loaded.preset, Texts(), default_language=loaded.config.language), path))


def cmd_calls_log(args: argparse.Namespace, out: TextIO) -> int:
    """One phone call through the intake; ``--critical`` opens the outage line's critical ticket (R17)."""
    from bot.calls import log_call
    from bot.intake import IntakePipeline, Outcome
    from bot.texts import Texts
    from channels.calls import parse_call
    from channels.identity import IdentityError, normalise_phone

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
    _, db = _open_db(args)
    try:
        logged = log_call(IntakePipeline(db, preset, Texts(), default_language=loaded.config.language), call)
    except (SQLAlchemyError, StorageError) as exc:
        raise database_error(loaded.config.database.url, exc) from None
    finally:
        db.dispose()
    result = logged.result
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


def account_json(account: AccountRecord) -> dict[str, Any]:
    """An account as ``accounts list --json`` prints it."""
    hours: int | float | None = None
    if account.monthly_hours is not None:
        whole = account.monthly_hours == account.monthly_hours.to_integral_value()
        hours = int(account.monthly_hours) if whole else float(account.monthly_hours)
    return {
        "name": account.name, "plan": account.plan, "staff": account.staff,
        "templates_delivered": account.templates_delivered.isoformat() if account.templates_delivered else None,
        "language": account.language,
        "monthly_hours": hours,
        "contacts": [{"name": c.name, "role": c.role, "authorised": c.authorised, "email": list(c.emails),
                      "phone": list(c.phones)} for c in account.contacts],
    }


def cmd_accounts_list(args: argparse.Namespace, out: TextIO) -> int:
    _, db = _open_db(args)
    try:
        accounts = db.run(lambda s: AccountRepository(s).all())
    finally:
        db.dispose()
    if args.json:
        out.write(json.dumps([account_json(a) for a in accounts]) + "\n")
        return 0
    if not accounts:
        out.write("no accounts\n")
    for a in accounts:
        data = account_json(a)
        extras = [f"language {a.language}"]
        if data["templates_delivered"]:
            extras.append(f"templates delivered {data['templates_delivered']}")
        if data["monthly_hours"] is not None:
            extras.append(f"{data['monthly_hours']} h/month")
        out.write(f"{a.name[:32]:<32} {a.plan:<13} staff {a.staff or '-':<12} {'; '.join(extras)}\n")
        if not a.contacts:
            out.write("    (no contacts)\n")
        for c in a.contacts:
            role = "contact" if c.role == "contact" else (
                "third party, authorised" if c.authorised else "third party, not authorised")
            identities = ", ".join((*c.emails, *c.phones)) or "(no identities)"
            out.write(f"    {c.name} [{role}]: {identities}\n")
    return 0


# -- e-mail through a pipe ----------------------------------------------------------

EX_DATAERR = 65  # sysexits: the input cannot be read; the MTA bounces it
EX_TEMPFAIL = 75  # sysexits: try again later; the MTA keeps the mail and retries


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
        try:
            raw = sys.stdin.buffer.read()
        except OSError as exc:
            yield "stdin", exc
            return
        yield "stdin", intake.ingest_raw(raw, source="stdin")
        return
    from bot.mail import ingest_files

    for path, outcome in ingest_files(intake, files):
        yield str(path), outcome


def mail_intake(loaded: LoadedConfig, db: Database) -> MailIntake:
    """The mail intake as ``slabot ingest email`` runs it: the config's own address, reply guards and cut-off."""
    from datetime import timedelta

    from bot.intake import IntakePipeline
    from bot.mail import MailIntake, mail_reply_guards
    from bot.texts import Texts

    cfg = loaded.config
    pipeline = IntakePipeline(db, loaded.preset, Texts(), default_language=cfg.language,
                              reply_guards=mail_reply_guards(cfg.email.auto_replies_per_hour))
    return MailIntake(db, pipeline, own_addresses=(cfg.email.from_address or "",),
                      acknowledge_max_age=timedelta(hours=cfg.email.acknowledge_max_age_hours))


def cmd_ingest_email(args: argparse.Namespace, out: TextIO) -> int:
    """One mail from a file or stdin, or every ``.eml`` of a directory, as an MTA pipe transport delivers it."""
    loaded = load_config(args.config)
    cfg = loaded.config
    files = _mail_files(args.source)
    names = ["stdin"] if files is None else [str(p) for p in files]
    try:
        db = open_database(cfg.database.url, synchronous=cfg.database.synchronous)
    except (SQLAlchemyError, StorageError) as exc:
        sys.stderr.write(f"slabot: database {shown_url(cfg.database.url)} unreachable: {exc.__class__.__name__}: {exc}\n")
        return EX_TEMPFAIL
    intake = mail_intake(loaded, db)
    code = 0
    done = 0  # mails reported so far: the next one is where a database failure stopped
    results: list[dict[str, Any]] = []
    try:
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
    except SQLAlchemyError as exc:
        sys.stderr.write(f"slabot: {names[done]}: not stored, the database failed "
                         f"({exc.__class__.__name__}); try again later\n")
        return EX_TEMPFAIL
    finally:
        db.dispose()
    if args.json:
        out.write(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    return code


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from bot.app import run_until_signalled

    return run_until_signalled(load_config(args.config))


# -- wiring --------------------------------------------------------------------


Handler = Callable[[argparse.Namespace, TextIO], int]


def _group(commands: Any, name: str, help_text: str) -> Any:
    """A command with subcommands of its own (``slabot tickets list``): the subcommands' parser set."""
    group = commands.add_parser(name, help=help_text)
    subcommands = group.add_subparsers(dest=f"{name}_command", metavar="COMMAND", parser_class=_Parser)
    subcommands.required = True
    return subcommands


def build_parser() -> argparse.ArgumentParser:
    """The ``slabot`` argument parser with every subcommand."""
    parser = _Parser(prog="slabot", description="Support intake with SLA deadlines, reminders and billing.")
    parser.add_argument("--config", metavar="PATH", help="config file (default: $SLABOT_CONFIG, else config.toml, "
                                                          "else the embedded defaults)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    run = commands.add_parser("run", help="run slabot: HTTP server, outbox, scheduler and configured channels",
                              description="Run slabot until Ctrl-C or SIGTERM. Channels without credentials "
                                          "stay off and say why.")
    run.set_defaults(handler=cmd_run)

    ingest_cmds = _group(commands, "ingest", "feed messages in by hand or from an MTA")
    ingest_email = ingest_cmds.add_parser(
        "email", help="one mail (file or stdin) or a directory of .eml files, as an MTA pipe delivers it",
        description="Store one RFC 5322 mail read from FILE or stdin (-), or every .eml file of a directory, "
                    "through the intake. Exit 0 once committed, 65 when a mail cannot be read at all (it is "
                    "kept aside for staff), 75 when the database is unreachable (the MTA retries).",
    )
    ingest_email.add_argument("source", nargs="?", default="-", metavar="FILE|DIR|-", help="default: stdin")
    ingest_email.add_argument("--json", action="store_true", help="print one JSON array of results")
    ingest_email.set_defaults(handler=cmd_ingest_email)

    sla_cmds = _group(commands, "sla", "SLA calculations")
    deadline = sla_cmds.add_parser(
        "deadline", help="first-response deadline and resolution window for a request",
        description="Print the first-response deadline and the resolution window for a request "
                    "received at --at under --plan.",
    )
    deadline.add_argument("--plan", required=True, help="plan name, e.g. licentie or premium")
    deadline.add_argument("--at", required=True, metavar="ISO8601",
                          help="when the request came in, e.g. 2026-11-23T10:00:00+01:00")
    deadline.add_argument("--preset", help=f"preset name ({', '.join(BUILTIN)}) or file; default: the config's")
    deadline.add_argument("--json", action="store_true", help="print one JSON object")
    deadline.add_argument("--lang", choices=LANGUAGES, default="nl", help="language of the sentence (default nl)")
    deadline.set_defaults(handler=cmd_sla_deadline)

    config_cmds = _group(commands, "config", "configuration")
    check = config_cmds.add_parser("check", help="validate a config file and show what it resolves to",
                                   description="Validate a config file and print the preset, plans and calendars "
                                               "it resolves to, secrets masked.")
    check.add_argument("path", nargs="?", help="config file (default: as for --config)")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(handler=cmd_config_check)
    from bot.config_reference import REGENERATE, cmd_config_reference

    reference = config_cmds.add_parser("reference", help="print the configuration reference (every key, generated)",
                                       description="Print the reference of every config key (type, default, "
                                                   "environment variable, description), generated from the config "
                                                   f"models. {REGENERATE} regenerates the docs.")
    reference.set_defaults(handler=cmd_config_reference)

    db_cmds = _group(commands, "db", "database")
    upgrade = db_cmds.add_parser("upgrade", help="apply the database migrations (also done on every start)")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    ticket_cmds = _group(commands, "tickets", "tickets")
    listing = ticket_cmds.add_parser("list", help="tickets in queue order (Premium first, then by deadline)")
    listing.add_argument("--state", help="only this state: open (all open ones), waiting, unverified, resolved")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(handler=cmd_tickets_list)
    show = ticket_cmds.add_parser("show", help="a ticket with its messages, deadlines and decisions")
    show.add_argument("ref", help="ticket reference, e.g. MC-10001")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=cmd_tickets_show)
    from bot.cli import billing as cli_billing  # its commands use this module's helpers

    cli_billing.register(commands, ticket_cmds, _group)
    from bot.cli import desk as cli_desk

    cli_desk.register(ticket_cmds)
    from bot.cli import mail as cli_mail

    cli_mail.register(commands, _group)
    from bot.cli import demo as cli_demo

    cli_demo.register(commands)
    from bot.cli import dashboard as cli_dashboard

    cli_dashboard.register(commands, _group)

    call_cmds = _group(commands, "calls", "phone-call logs")
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
                    "or time, 1 when a critical call opened no ticket.",
    )
    calls_log.add_argument("--from", dest="caller", required=True, metavar="NUMBER",
                           help="the caller's number, e.g. +31612345678 or 06 12345678")
    calls_log.add_argument("--to", metavar="NUMBER", help="the number that was called")
    calls_log.add_argument("--at", metavar="ISO8601", help="when the call came in (default now; Amsterdam time "
                                                           "when it has no offset)")
    calls_log.add_argument("--critical", action="store_true", help="a critical incident on the outage line")
    calls_log.add_argument("--missed", action="store_true", help="nobody answered the call")
    calls_log.add_argument("--agent", metavar="NAME", help="who took the call")
    calls_log.add_argument("--duration", type=int, metavar="SECONDS", help="how long the call took")
    calls_log.add_argument("--id", metavar="CALL_ID", help="the call's own id, e.g. a Twilio CallSid")
    calls_log.add_argument("text", nargs="*", metavar="TEXT", help="what the call was about")
    calls_log.set_defaults(handler=cmd_calls_log)

    account_cmds = _group(commands, "accounts", "customer accounts and their contacts")
    account_import = account_cmds.add_parser(
        "import", help="import or update accounts and contacts from a TOML or CSV file",
        description="Import accounts and their contacts from FILE (.toml with [[account]] tables, or .csv with "
                    "one line per contact); accounts already stored are updated in place by name. Rejected "
                    "rows are listed with their line; exit code 1 when any row was rejected.",
    )
    account_import.add_argument("file", metavar="FILE", help="accounts file, .toml or .csv")
    account_import.set_defaults(handler=cmd_accounts_import)
    account_list = account_cmds.add_parser("list", help="accounts with their plan, staff and contacts")
    account_list.add_argument("--json", action="store_true", help="print one JSON array")
    account_list.set_defaults(handler=cmd_accounts_list)
    from bot.cli import report as cli_report  # its command uses this module's helpers
    cli_report.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``slabot``; returns the exit code."""
    stdout = out or sys.stdout
    stderr = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, stdout)
    except (UsageError, ConfigError) as exc:
        for line in str(exc).splitlines():
            stderr.write(f"slabot: error: {line}\n")
        return EXIT_USAGE
    except SlabotError as exc:
        stderr.write(f"slabot: error: {exc}\n")
        return 1


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `slabot ... | head`
        code = 0
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


