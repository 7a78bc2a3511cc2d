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

from bot.config import LoadedConfig, database_problem, load_config
from bot.errors import SlabotError
from bot.views import local_iso, message_json, ticket_json
from sla_engine.policy import Preset
from storage.database import (
    Database,
    DatabaseError,
    StorageError,
    open_database,
    sqlite_file,
    translate_errors,
)
from storage.records import AccountRecord

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
    """The database at ``url`` failed: one line naming it without its password, what failed and what to check."""
    return UsageError(database_problem(url, exc))


def open_command_database(args: argparse.Namespace) -> tuple[LoadedConfig, Database]:
    """The command's config (``--config``) and its database, opened and migrated; a usage error when it fails.

    A command that only reads (``reads_only`` in its defaults) makes no database: a SQLite file that is not
    there is a usage error naming it."""
    loaded = load_config(args.config)
    missing = sqlite_file(loaded.config.database.url)
    if getattr(args, "reads_only", False) and missing is not None and not missing.exists():
        raise UsageError(f"no database at {missing.resolve()}: nothing to show yet (slabot run or slabot demo "
                         f"makes one; --config or SLABOT_CONFIG points at another)")
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
