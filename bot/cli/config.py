"""``slabot config check`` and ``slabot config reference``: a config file validated, the reference of every key."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any, TextIO

from bot.cli.common import command_group
from bot.config import LoadedConfig, load_config, masked
from bot.config_reference import REGENERATE, render
from sla_engine.policy import Preset


def describe_preset(preset: Preset) -> dict[str, Any]:
    """What a preset resolved to: plans and calendars, for ``config check``."""
    year = datetime.now().year
    return {
        "name": preset.name,
        "title": preset.title,
        "ref_prefix": preset.ref_prefix,
        "plans": {
            plan.name: {
                "title": plan.title,
                "channels": sorted(c.value for c in plan.channels),
                "sla": plan.sla,
                "first_response": plan.first_response.to_dict() if plan.first_response else None,
                "resolution": plan.resolution.to_dict() if plan.resolution else None,
                "staff_role": plan.staff_role,
                "queue_priority": plan.queue_priority,
                "reminders": [r.spec for r in plan.reminders] if plan.sla else [],
            }
            for plan in preset.plans
        },
        "calendars": {
            name: {
                "timezone": cal.timezone,
                "hours": cal.describe_hours(),
                "holidays": cal.holiday_country,
                f"holidays_{year}": {d.isoformat(): n for d, n in sorted(cal.holidays_in(year).items())},
                "closures": cal.to_dict()["closures"],
                "drop_holidays": sorted(cal.dropped_holidays),
            }
            for name, cal in preset.calendars.items()
        },
        "outage_line": (
            {"calendar": preset.critical.calendar, "repage_every_minutes": preset.critical.repage_every.seconds // 60}
            if preset.critical else None
        ),
        "rates": [card.to_dict() | {"urgent": str(card.urgent), "punch_card": str(card.punch_card)}
                  for card in preset.billing.rates] if preset.billing else [],
    }


def channel_states(loaded: LoadedConfig) -> dict[str, str]:
    """What ``slabot run`` will do with each channel on this config: ``on (...)`` or ``off (why)``."""
    from bot.app import channels_off_reasons

    email = loaded.config.email
    states = {name: f"off ({reason})" if reason else "on" for name, reason in channels_off_reasons(loaded).items()}
    if email.imap_configured and email.smtp_configured:
        states["email"] = "on (IMAP in, SMTP out)"
    elif email.smtp_configured:
        states["email"] = "on (SMTP out; mail comes in by the MTA pipe, slabot ingest email, no [email] imap_host)"
    elif email.imap_configured:
        states["email"] = "on (IMAP in; no replies by mail: no [email] smtp_host and from_address)"
    return states


def cmd_config_check(args: argparse.Namespace, out: TextIO) -> int:
    """Validate a config file and print what it resolves to, secrets masked (``--json``: one object)."""
    loaded: LoadedConfig = load_config(args.path or args.config)
    preset = describe_preset(loaded.preset)
    channels = channel_states(loaded)
    report: dict[str, object] = {
        "source": loaded.source,
        "from_environment": list(loaded.from_env),
        "config": masked(loaded.config),
        "preset": preset,
        "channels": channels,
    }
    if args.json:
        out.write(json.dumps(report, indent=2) + "\n")
        return 0
    out.write(f"config OK: {loaded.source}\n")
    if loaded.from_env:
        out.write(f"from the environment: {', '.join(loaded.from_env)}\n")
    out.write(f"preset: {preset['name']} ({preset['title']}), references {preset['ref_prefix']}-NNNNN\n")
    for name, plan in preset["plans"].items():
        fr = plan["first_response"]
        res = plan["resolution"]
        out.write(
            f"  plan {name}: channels {', '.join(plan['channels'])}; "
            + (f"first response {fr['duration']} ({fr['clock']}, {fr['calendar']})" if fr else "no SLA")
            + (f"; resolution {res['min']}-{res['max']} ({res['clock']})" if res else "")
            + (f"; staff: {plan['staff_role']}" if plan["staff_role"] else "")
            + (f"; queue priority {plan['queue_priority']}" if plan["queue_priority"] else "")
            + "\n"
        )
    for name, cal in preset["calendars"].items():
        hours = "; ".join(f"{d} {' '.join(w)}" for d, w in cal["hours"].items())
        holidays = [k for k in cal if k.startswith("holidays_")]
        count = len(cal[holidays[0]]) if holidays else 0
        out.write(f"  calendar {name} ({cal['timezone']}): {hours}; holidays {cal['holidays'] or 'none'} "
                  f"({count} this year); closures {len(cal['closures'])}\n")
    for channel, state in channels.items():
        out.write(f"  channel {channel}: {state}\n")
    out.write("config (secrets masked):\n")
    out.write(json.dumps(report["config"], indent=2) + "\n")
    return 0


def cmd_config_reference(args: argparse.Namespace, out: TextIO) -> int:
    """``slabot config reference``: print the reference."""
    out.write(render())
    return 0


def register(commands: Any) -> None:
    """Add ``slabot config check|reference`` to the ``slabot`` parser."""
    config_cmds = command_group(commands, "config", "configuration")
    check = config_cmds.add_parser("check", help="validate a config file and show what it resolves to",
                                   description="Validate a config file and print the preset, plans and calendars "
                                               "it resolves to, secrets masked.")
    check.add_argument("path", nargs="?", help="config file (default: as for --config)")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(handler=cmd_config_check)
    reference = config_cmds.add_parser("reference", help="print the configuration reference (every key, generated)",
                                       description="Print the reference of every config key (type, default, "
                                                   "environment variable, description), generated from the config "
                                                   f"models. {REGENERATE} regenerates the docs.")
    reference.set_defaults(handler=cmd_config_reference)


__all__ = ["channel_states", "describe_preset", "register"]
