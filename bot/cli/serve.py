"""``slabot run``: slabot itself, the HTTP server, outbox, scheduler and configured channels, until a signal."""

from __future__ import annotations

import argparse
from typing import Any, TextIO


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    """Run slabot on the configured channels until Ctrl-C or SIGTERM."""
    from bot.app import run_until_signalled  # the application loads only to run it
    from bot.config import load_config

    return run_until_signalled(load_config(args.config))


def register(commands: Any) -> None:
    """Add ``slabot run`` to the ``slabot`` parser."""
    run = commands.add_parser("run", help="run slabot: HTTP server, outbox, scheduler and configured channels",
                              description="Run slabot until Ctrl-C or SIGTERM. Channels without credentials "
                                          "stay off and say why.")
    run.set_defaults(handler=cmd_run)


__all__ = ["register"]
