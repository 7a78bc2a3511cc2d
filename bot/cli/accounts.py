"""``slabot accounts import|list``: customer accounts and their contacts."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from bot.accounts import import_accounts
from bot.cli.common import account_json, command_group, import_file, with_database
from channels.messages import utc_now
from storage.repositories import AccountRepository


def cmd_accounts_import(args: argparse.Namespace, out: TextIO) -> int:
    """Import or update accounts and their contacts from a TOML or CSV file."""
    return import_file(args, out, "accounts file", lambda loaded, db, path: import_accounts(
        db, str(path), loaded.preset, utc_now()))


def cmd_accounts_list(args: argparse.Namespace, out: TextIO) -> int:
    """The accounts with their plan, staff and contacts (``--json``: one array)."""
    accounts = with_database(args, lambda _, db: db.run(lambda s: AccountRepository(s).all()))
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
        if a.billing_email:
            extras.append(f"invoices to {a.billing_email}")
        out.write(f"{a.name[:32]:<32} {a.plan:<13} staff {a.staff or '-':<12} {'; '.join(extras)}\n")
        if not a.contacts:
            out.write("    (no contacts)\n")
        for c in a.contacts:
            role = "contact" if c.role == "contact" else (
                "third party, authorised" if c.authorised else "third party, not authorised")
            identities = ", ".join((*c.emails, *c.phones)) or "(no identities)"
            out.write(f"    {c.name} [{role}]: {identities}\n")
    return 0


def register(commands: Any) -> None:
    """Add ``slabot accounts import|list`` to the ``slabot`` parser."""
    account_cmds = command_group(commands, "accounts", "customer accounts and their contacts")
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
    account_list.set_defaults(handler=cmd_accounts_list, reads_only=True)


__all__ = ["register"]
