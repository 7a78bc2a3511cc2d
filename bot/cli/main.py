"""The ``slabot`` command line.

Every command has ``--help``. Usage errors (a bad ``--at``, an unknown plan or
preset, a config file that does not validate) print one line per problem and
exit with code 2, never a traceback.

This module builds the parser from each command group's ``register`` (one
module per group: :mod:`bot.cli.sla`, :mod:`bot.cli.tickets`, ...) and runs the
command; what the groups share is in :mod:`bot.cli.common`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

# ``import bot.cli.x as x``, not ``from bot.cli import x``: the latter imports the package, which imports this module
import bot.cli.accounts as accounts
import bot.cli.billing as billing
import bot.cli.calls as calls
import bot.cli.config as config
import bot.cli.dashboard as dashboard
import bot.cli.db as db
import bot.cli.demo as demo
import bot.cli.desk as desk
import bot.cli.ingest as ingest
import bot.cli.mail as mail
import bot.cli.presets as presets
import bot.cli.report as report
import bot.cli.serve as serve
import bot.cli.sla as sla
import bot.cli.tickets as tickets
from bot.cli.common import EXIT_USAGE, Handler, Parser, UsageError
from bot.errors import ConfigError, SlabotError


def build_parser() -> argparse.ArgumentParser:
    """The ``slabot`` argument parser with every subcommand."""
    parser = Parser(prog="slabot", description="Support intake with SLA deadlines, reminders and billing.")
    parser.add_argument("--config", metavar="PATH", help="config file (default: $SLABOT_CONFIG, else config.toml, "
                                                          "else the embedded defaults)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    serve.register(commands)
    ingest.register(commands)
    sla.register(commands)
    presets.register(commands)
    config.register(commands)
    db.register(commands)
    ticket_cmds = tickets.register(commands)
    billing.register(commands, ticket_cmds)
    desk.register(ticket_cmds)
    mail.register(commands)
    demo.register(commands)
    dashboard.register(commands)
    calls.register(commands)
    accounts.register(commands)
    report.register(commands)
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


__all__ = ["build_parser", "main", "run"]
