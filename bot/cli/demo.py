"""``slabot demo``: the whole flow on this machine with local stand-ins (:mod:`bot.demo`), registered here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

DEFAULT_DB = "slabot-demo.db"


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Run the narrated demo into ``--db``."""
    from bot.demo.run import (
        main,  # the application, the stand-ins and rich load only for the demo
    )

    main(Path(args.db), out, quiet=args.quiet)
    return 0


def register(commands: Any) -> None:
    """Add ``slabot demo`` to the ``slabot`` parser."""
    demo = commands.add_parser(
        "demo", help="a narrated walk through the whole flow, on this machine, with no accounts anywhere",
        description="Run the real slabot in this process against local stand-ins of Twilio and Telegram and a "
                    "local SMTP sink, on a fast-forwarded clock, and tell what happens: customers of both presets "
                    "writing in, acknowledgements with their deadlines, refusals, reminders, a breach, a staff "
                    "reply, an outage paged until acknowledged, a quote billed on a punch card and the month's "
                    "statement. The database is left for `slabot tickets list` (with the config file written "
                    "next to it); a new run overwrites it.")
    demo.add_argument("--db", default=DEFAULT_DB, metavar="PATH",
                      help=f"the SQLite file to leave the demo's tickets in (default ./{DEFAULT_DB}); "
                           "a config file is written next to it (.toml)")
    demo.add_argument("--quiet", action="store_true", help="tell nothing but where the database is")
    demo.set_defaults(handler=cmd_demo)
