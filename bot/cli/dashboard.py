"""The dashboard's commands of ``slabot``: ``dashboard hash-password``, ``dashboard secret-key`` and
``dashboard logout-all``."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from typing import Any, TextIO

from bot.cli.common import UsageError, command_group, with_database
from storage.sessions import DashboardSessionRepository


def read_password(stdin: TextIO) -> str:
    """The new password: asked twice on a terminal (not echoed), else the first line of standard input."""
    if stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("an empty password cannot be used")
    return password


def cmd_hash_password(args: argparse.Namespace, out: TextIO) -> int:
    """Print the Argon2id hash of a password read from the terminal or standard input."""
    from bot.web.dashboard.auth import hash_password

    out.write(hash_password(read_password(sys.stdin)) + "\n")
    return 0


def cmd_secret_key(args: argparse.Namespace, out: TextIO) -> int:
    """Print a random secret key for the dashboard's sessions."""
    out.write(secrets.token_urlsafe(32) + "\n")
    return 0


def cmd_logout_all(args: argparse.Namespace, out: TextIO) -> int:
    """End every dashboard session (or every session of ``--user``): their cookies open nothing any more."""
    user = args.user.strip().casefold() if args.user else None
    ended = with_database(args, lambda loaded, db: db.run_direct(
        lambda d: DashboardSessionRepository(d).revoke_all(user)))
    whose = f" of {args.user.strip()}" if user else ""
    out.write(f"ended {ended} dashboard session(s){whose}\n")
    return 0


def register(commands: Any) -> None:
    """Add the dashboard commands to the ``slabot`` parser."""
    dashboard = command_group(commands, "dashboard", "the staff dashboard")
    hashing = dashboard.add_parser(
        "hash-password", help="print the hash of a password for [[dashboard.users]] password_hash",
        description="Asks for the password twice on a terminal, or reads one line from standard input "
                    "(`echo secret | slabot dashboard hash-password`), and prints its Argon2id hash.")
    hashing.set_defaults(handler=cmd_hash_password)
    key = dashboard.add_parser("secret-key", help="print a random [dashboard] secret_key")
    key.set_defaults(handler=cmd_secret_key)
    logout = dashboard.add_parser(
        "logout-all", help="end every dashboard session now (a lost laptop, a departing colleague)",
        description="Ends the dashboard's sessions on the server: every cookie issued before opens nothing; staff "
                    "log in again. A changed password ends that login's sessions by itself.")
    logout.add_argument("--user", metavar="NAME", help="only the sessions of this login")
    logout.set_defaults(handler=cmd_logout_all)
