"""``slabot report``: first-response and resolution performance per plan and per staff member, with a chart.

The numbers come from :mod:`bot.reports`; this module parses the arguments,
writes the PNG chart into ``--out`` and prints the tables (or one JSON object).
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from bot.cli.common import (
    UsageError,
    database_error,
    open_command_database,
    parse_instant,
)
from bot.config import load_config
from bot.reports import (
    check_period,
    chart_filename,
    load_report,
    render_chart,
    report_data,
    report_day,
    report_text,
)
from channels.messages import utc_now
from sla_engine.errors import PolicyError
from storage.database import StorageError, translate_errors


def parse_day(text: str, option: str) -> date:
    """A calendar date ``YYYY-MM-DD`` given to ``option``, or a :class:`UsageError` that says so."""
    try:
        return report_day(text, option)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    """The SLA performance of a period: tables (``--json``: one object) and a PNG chart in ``--out``."""
    start, end = parse_day(args.start, "--from"), parse_day(args.end, "--to")
    try:
        check_period(start, end, ("--from", "--to"))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    preset = load_config(args.config).preset  # the arguments are checked before the database is opened
    try:
        plan = preset.plan(args.plan).name if args.plan else None
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    as_of = parse_instant(args.as_of, preset) if args.as_of else utc_now()
    zone = next(iter(preset.calendars.values())).zone
    loaded, db = open_command_database(args)
    try:
        with translate_errors():
            report = load_report(db, start, end, as_of, zone=zone, plan=plan)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    except StorageError as exc:
        raise database_error(loaded.config.database.url, exc) from None
    finally:
        db.dispose()
    folder = Path(args.out)
    path = folder / chart_filename(report)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render_chart(report))
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write the chart: {exc.strerror or exc}") from None
    if args.json:
        data: dict[str, Any] = {**report_data(report), "chart": str(path.resolve())}
        out.write(json.dumps(data) + "\n")
    else:
        out.write(report_text(report))
        out.write(f"chart written to {path.resolve()}\n")
    return 0


def register(commands: Any) -> None:
    """Add ``slabot report`` to the ``slabot`` parser."""
    report = commands.add_parser(
        "report", help="SLA performance per plan and per staff member, with a PNG chart",
        description="First-response and resolution performance of the tickets received from --from to --to "
                    "(local dates, both included): per plan and per staff member the share met, the median and "
                    "p90 time on the plan's own clock, and the breaches with their tickets. Open tickets past "
                    "their deadline count as breached as of --as-of; open ones not yet due are pending. A ticket "
                    "counts for whoever took it in the staff chat, else the account's staff member, else whoever "
                    "replied first. The chart (first-response times per week against the target, breaches per "
                    "plan) is written into --out.",
    )
    report.add_argument("--from", dest="start", required=True, metavar="DATE", help="first day, e.g. 2026-11-01")
    report.add_argument("--to", dest="end", required=True, metavar="DATE", help="last day (included)")
    report.add_argument("--plan", help="only this plan's tickets")
    report.add_argument("--out", default=".", metavar="DIR", help="folder for the PNG chart (default: here)")
    report.add_argument("--as-of", metavar="ISO8601", help="judge open tickets at this instant (default: now)")
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.set_defaults(handler=cmd_report, reads_only=True)


__all__ = ["cmd_report", "parse_day", "register"]
