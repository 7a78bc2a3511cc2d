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
import contextlib
import io
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO, cast

# ``import bot.cli.x as x``, not ``from bot.cli import x``: the latter imports the package, which imports this module
import bot.cli.accounts as accounts
import bot.cli.api as api
import bot.cli.billing as billing
import bot.cli.calls as calls
import bot.cli.canned as canned
import bot.cli.config as config
import bot.cli.dashboard as dashboard
import bot.cli.db as db
import bot.cli.demo as demo
import bot.cli.desk as desk
import bot.cli.ingest as ingest
import bot.cli.mail as mail
import bot.cli.presets as presets
import bot.cli.privacy as privacy
import bot.cli.report as report
import bot.cli.serve as serve
import bot.cli.sla as sla
import bot.cli.tickets as tickets
import bot.cli.webhooks as webhooks
from bot.cli.common import EXIT_USAGE, Handler, Parser, UsageError
from bot.cli.examples import add_examples
from bot.config import Masker, load_config
from bot.errors import ConfigError, SlabotError, StartupError


class MaskedStream(io.TextIOBase):
    """A text stream that masks every configured secret (:class:`bot.config.Masker`) in what goes through it.

    The config is read on the first write, so a command that writes no error never reads it twice; a config
    that cannot be read masks the passwords of URLs only.
    """

    def __init__(self, stream: TextIO, config_path: str | None) -> None:
        super().__init__()
        self.stream = stream
        self.config_path = config_path
        self._mask: Masker | None = None

    def write(self, text: str) -> int:
        if self._mask is None:
            try:
                self._mask = Masker.of(load_config(self.config_path).config)
            except Exception:  # noqa: BLE001 - an unreadable config is reported by the command itself
                self._mask = Masker()
        self.stream.write(self._mask(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding


def build_parser() -> argparse.ArgumentParser:
    """The ``slabot`` argument parser with every subcommand."""
    parser = Parser(prog="slabot", description="Support intake with SLA deadlines, reminders and billing.")
    parser.add_argument("--config", metavar="PATH", help="config file (default: $SLABOT_CONFIG, else config.toml, "
                                                          "else the embedded defaults)")
    parser.add_argument("--debug", action="store_true", help="on an error, show its traceback too")
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
    api.register(commands)
    webhooks.register(commands)
    privacy.register(commands)
    canned.register(commands)
    add_examples(parser)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``slabot``; returns the exit code."""
    stdout = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    stderr = cast(TextIO, MaskedStream(err or sys.stderr, args.config))  # no secret in any error or log line
    try:
        with contextlib.redirect_stderr(stderr):
            return handler(args, stdout)
    except (UsageError, ConfigError, StartupError) as exc:
        if args.debug:
            traceback.print_exc(file=stderr)
        for line in str(exc).splitlines():
            stderr.write(f"slabot: error: {line}\n")
        return EXIT_USAGE
    except SlabotError as exc:
        if args.debug:
            traceback.print_exc(file=stderr)
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
