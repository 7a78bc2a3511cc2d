"""What the ``slabot`` commands share: usage errors and exit codes, the database a command opens, the JSON of
tickets, messages and accounts, who does a staff action, the mail intake, and a parser whose errors are one line.

Every command group (:mod:`bot.cli.tickets`, :mod:`bot.cli.billing`, ...) imports this module and the use cases,
never :mod:`bot.cli.main` nor each other.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TextIO, TypeVar

from bot.config import LoadedConfig, load_config, shown_url
from bot.errors import SlabotError
from bot.i18n import AMSTERDAM
from sla_engine.policy import Preset
from storage.database import (
    Database,
    DatabaseError,
    StorageError,
    open_database,
    translate_errors,
)
from storage.records import AccountRecord, MessageRecord, TicketRecord

if TYPE_CHECKING:
    from bot.mail import MailIntake

EXIT_USAGE = 2
EX_DATAERR = 65  # sysexits: the input cannot be read; the MTA bounces it
EX_TEMPFAIL = 75  # sysexits: try again later; the MTA keeps the mail and retries
STAFF_ENV = "SLABOT_STAFF"
T = TypeVar("T")

Handler = Callable[[argparse.Namespace, TextIO], int]


class UsageError(SlabotError):
    """A command was called with arguments it cannot use."""


# -- the parser ----------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command_group(commands: Any, name: str, help_text: str) -> Any:
    """A command with subcommands of its own (``slabot tickets list``): the subcommands' parser set."""
    group = commands.add_parser(name, help=help_text)
    subcommands = group.add_subparsers(dest=f"{name}_command", metavar="COMMAND", parser_class=Parser)
    subcommands.required = True
    return subcommands


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


def staff_name(args: argparse.Namespace) -> str:
    """Who does it: ``--staff``, else ``$SLABOT_STAFF``, else ``$USER``."""
    return args.staff or os.environ.get(STAFF_ENV) or os.environ.get("USER") or "staff"


# -- the database --------------------------------------------------------------------------------------------


def error_name(exc: Exception) -> str:
    """The name a command prints for a failure: the database driver's own error for a translated one."""
    return exc.kind if isinstance(exc, DatabaseError) else exc.__class__.__name__


def database_error(url: str, exc: Exception) -> UsageError:
    """The database at ``url`` failed: a one-line error that names it without its password."""
    return UsageError(f"database {shown_url(url)}: {error_name(exc)}: {exc}")


def open_command_database(args: argparse.Namespace) -> tuple[LoadedConfig, Database]:
    """The command's config (``--config``) and its database, opened and migrated; a usage error when it fails."""
    loaded = load_config(args.config)
    try:
        with translate_errors():
            return loaded, open_database(loaded.config.database.url,
                                         synchronous=loaded.config.database.synchronous)
    except StorageError as exc:
        raise database_error(loaded.config.database.url, exc) from None


def with_database(args: argparse.Namespace, work: Callable[[LoadedConfig, Database], T]) -> T:
    """``work`` on the configured database, closed afterwards; a staff action refused (:class:`DeskError`) is a
    one-line usage error."""
    from bot.desk import DeskError

    loaded, db = open_command_database(args)
    try:
        return work(loaded, db)
    except DeskError as exc:
        raise UsageError(str(exc)) from None
    finally:
        db.dispose()


class ImportReport(Protocol):
    """What an import of a file reports: the rows rejected, whether there were none, and a summary line."""

    @property
    def problems(self) -> Sequence[object]: ...

    @property
    def ok(self) -> bool: ...

    def summary(self) -> str: ...


def import_file(args: argparse.Namespace, out: TextIO, what: str,
                run_import: Callable[[LoadedConfig, Database, Path], ImportReport]) -> int:
    """An import command: the file checked, the database opened, rejected rows listed; exit 1 when any was."""
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such {what}")
    loaded, db = open_command_database(args)
    try:
        with translate_errors():
            report = run_import(loaded, db, path)
    except StorageError as exc:
        raise database_error(loaded.config.database.url, exc) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    finally:
        db.dispose()
    for problem in report.problems:
        out.write(f"rejected: {problem}\n")
    out.write(report.summary() + "\n")
    return 0 if report.ok else 1


def mail_intake(loaded: LoadedConfig, db: Database) -> MailIntake:
    """The mail intake as ``slabot ingest email`` runs it: the config's own address, reply guards and cut-off."""
    from bot.pipeline import mail_intake as built

    return built(loaded, db)


# -- the JSON of tickets, messages and accounts --------------------------------------------------------------


def local_iso(instant: datetime | None) -> str | None:
    """An instant as ISO 8601 in Amsterdam time, as the commands print it; None stays None."""
    return None if instant is None else instant.astimezone(AMSTERDAM).isoformat()


def ticket_json(ticket: TicketRecord) -> dict[str, Any]:
    """A ticket as ``tickets list/show --json`` prints it (SPEC §4 keys first)."""
    return {
        "ref": ticket.ref, "state": ticket.state, "account": ticket.account, "contact": ticket.contact,
        "channel": ticket.channel, "kind": ticket.kind, "priority": ticket.priority, "plan": ticket.plan,
        "first_response_due": local_iso(ticket.first_response_due),
        "first_responded_at": local_iso(ticket.first_responded_at),
        "received_at": local_iso(ticket.received_at), "subject": ticket.subject,
        "resolution_due_min": local_iso(ticket.resolution_due_min),
        "resolution_due_max": local_iso(ticket.resolution_due_max),
        "queue_priority": ticket.queue_priority, "decision": ticket.decision, "reasons": list(ticket.reasons),
        "kind_rule": ticket.kind_rule, "kind_reasons": list(ticket.kind_reasons),
        "needs_release": ticket.needs_release, "waiting_since": local_iso(ticket.waiting_since),
        # R24: the current response deadline (a follow-up question's; the first response's until one comes), when
        # the follow-up question that waits for staff arrived, and when staff answered the latest question
        "response_due": local_iso(ticket.current_due), "followup_at": local_iso(ticket.followup_at),
        "responded_at": local_iso(ticket.current_answer),
        # R25: the priority of the preset's matrix (null where it has none), the rule that gave it and why
        "sla_priority": ticket.sla_priority, "priority_rule": ticket.priority_rule,
        "priority_reasons": list(ticket.priority_reasons),
    }


def message_json(message: MessageRecord) -> dict[str, Any]:
    """A message as ``tickets show --json`` prints it among its ticket's."""
    return {
        "direction": message.direction, "channel": message.channel, "external_id": message.external_id,
        "sender": message.sender, "recipient": message.recipient, "subject": message.subject,
        "text": message.text, "delivery_state": message.delivery_state, "auto": message.auto,
        "at": local_iso(message.at), "purpose": message.purpose, "staff": message.staff,
        "decision": message.decision, "reasons": list(message.reasons),
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size,
                         "fetched": a.fetched} for a in message.attachments],
    }


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
        "billing_email": account.billing_email,
        "contacts": [{"name": c.name, "role": c.role, "authorised": c.authorised, "email": list(c.emails),
                      "phone": list(c.phones)} for c in account.contacts],
    }


__all__ = ["EXIT_USAGE", "EX_DATAERR", "EX_TEMPFAIL", "STAFF_ENV", "Handler", "ImportReport", "Parser",
           "UsageError", "account_json", "command_group", "database_error", "error_name", "import_file",
           "local_iso", "mail_intake", "message_json", "open_command_database", "parse_instant", "staff_name",
           "ticket_json", "with_database"]
