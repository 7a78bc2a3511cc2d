"""``slabot db upgrade``: the database migrated to the newest revision."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from bot.cli.common import command_group, open_command_database
from bot.config import shown_url


def cmd_db_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    """Open the configured database, which applies the migrations, and print its revision."""
    loaded, db = open_command_database(args)
    out.write(f"database {shown_url(loaded.config.database.url)} is at revision {db.current_revision()}\n")
    db.dispose()
    return 0


def register(commands: Any) -> None:
    """Add ``slabot db upgrade`` to the ``slabot`` parser."""
    db_cmds = command_group(commands, "db", "database")
    upgrade = db_cmds.add_parser("upgrade", help="apply the database migrations (also done on every start)")
    upgrade.set_defaults(handler=cmd_db_upgrade)


__all__ = ["register"]
