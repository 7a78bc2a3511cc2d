"""``slabot presets check FILE`` and ``slabot presets show NAME|FILE``: a preset file checked line by line, and a
preset as a table a desk manager can hold beside their SLA text (R25)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from bot.cli.common import EXIT_USAGE, UsageError, command_group
from bot.presets import BUILTIN, check_preset_text, load_preset
from sla_engine.policy import Plan, Preset, ResolutionTarget, Target, format_duration


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    """Every problem of the file, one line each with its line number; exit 0 when it is a valid preset, 2 if not."""
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {args.file}: {exc}") from None
    problems = check_preset_text(text, str(path))
    for line, problem in problems:
        out.write(f"{path}:{line}: {problem}\n")
    if problems:
        out.write(f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}\n")
        return EXIT_USAGE
    preset = load_preset(str(path.resolve()))
    out.write(f"{path}: a valid preset ({preset.name}): {len(preset.plans)} plans, "
              f"{len(preset.priorities)} priorities, {len(preset.calendars)} calendars\n")
    return 0


def _target(target: Target | ResolutionTarget | None) -> dict[str, Any] | None:
    if target is None:
        return None
    if isinstance(target, Target):
        span = format_duration(target.duration, target.clock)
    elif target.minimum == target.maximum:
        span = format_duration(target.maximum, target.clock)
    else:
        span = f"{format_duration(target.minimum, target.clock)}-{format_duration(target.maximum, target.clock)}"
    return {"target": span, "clock": target.clock.value, "calendar": target.calendar}


def _rows(plan: Plan) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, list[str]]]:
    """(priority, first response, resolution, reminders) per row of the plan: its own targets, then its matrix."""
    rows = []
    base = plan.base
    if not plan.targets or base.first_response is not None or base.resolution is not None:
        rows.append(("*", _target(base.first_response), _target(base.resolution), [r.spec for r in plan.reminders]))
    for name, cell in plan.targets:
        reminders = cell.reminders if cell.reminders is not None else plan.reminders
        rows.append((name, _target(cell.first_response), _target(cell.resolution), [r.spec for r in reminders]))
    return rows


def preset_json(preset: Preset) -> dict[str, Any]:
    """The preset as ``presets show --json`` prints it."""
    return {
        "name": preset.name, "title": preset.title, "ref_prefix": preset.ref_prefix,
        "calendars": {name: cal.to_dict() for name, cal in preset.calendars.items()},
        "priorities": [{"name": p.name, "title": p.title, "description": p.description} for p in preset.priorities],
        "default_priority": preset.default_priority,
        "priority_rules": [{"name": r.name, "priority": r.priority, "keywords": list(r.keywords),
                            "channels": list(r.channels), "lines": [str(x) for x in r.lines],
                            "urgency": list(r.urgency), "impact": list(r.impact), "reason": r.reason}
                           for r in preset.priority_rules],
        "outage_line": preset.critical.calendar if preset.critical else None,
        "plans": [{"name": p.name, "title": p.title, "sla": p.sla, "calendar": preset.service_calendar(p).name,
                   "channels": sorted(c.value for c in p.channels), "staff_role": p.staff_role,
                   "targets": [{"priority": name, "first_response": first, "resolution": resolution,
                                "reminders": reminders} for name, first, resolution, reminders in _rows(p)]}
                  for p in preset.plans],
    }


def _cell(found: dict[str, Any] | None) -> str:
    if found is None:
        return "-"
    clock = {"business": "business hours", "working_days": "working days", "calendar": "around the clock"}
    return f"{found['target']} {clock[found['clock']]} ({found['calendar']})"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _week(hours: dict[str, list[str]]) -> str:
    """``mon-fri 08:30-17:30; sat 10:00-14:00``: runs of weekdays with the same hours together."""
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    runs: list[tuple[str, str, str]] = []
    for day in days:
        windows = " ".join(hours.get(day, []))
        if runs and runs[-1][2] == windows and days.index(runs[-1][1]) == days.index(day) - 1:
            runs[-1] = (runs[-1][0], day, windows)
        else:
            runs.append((day, day, windows))
    return "; ".join(f"{a}-{b} {w}" if a != b else f"{a} {w}" for a, b, w in runs if w) or "closed"


def preset_text(preset: Preset) -> str:
    """The preset as tables: calendars, priorities, and per plan and priority the targets with their clocks."""
    data = preset_json(preset)
    lines = [f"{preset.title} (preset {preset.name}; references {preset.ref_prefix}-...)", "", "calendars:"]
    cal_rows = [["name", "time zone", "opening hours", "holidays"]]
    for name, cal in data["calendars"].items():
        hours = _week(cal["hours"])
        holidays = f"{cal['holidays']} closed" if cal["holidays"] else "open"
        if cal["drop_holidays"]:
            holidays += f" (open on {', '.join(cal['drop_holidays'])})"
        cal_rows.append([name, cal["timezone"], hours, holidays])
    lines += _table(cal_rows)
    if data["priorities"]:
        lines += ["", f"priorities (most urgent first; default {data['default_priority']}):"]
        lines += _table([["name", "title", "meaning"]]
                        + [[p["name"], p["title"], p["description"]] for p in data["priorities"]])
    if data["priority_rules"]:
        lines += ["", "priority rules (the first that matches decides):"]
        rule_rows = [["rule", "priority", "when"]]
        for r in data["priority_rules"]:
            when = [f"{key} {', '.join(r[key])}" for key in ("lines", "channels", "urgency", "impact", "keywords")
                    if r[key]]
            rule_rows.append([r["name"], r["priority"], "; ".join(when)])
        lines += _table(rule_rows)
    lines += ["", "plans (priority * = the plan's own targets):"]
    plan_rows = [["plan", "calendar", "channels", "priority", "first response", "resolution", "reminders"]]
    for p in data["plans"]:
        for i, target in enumerate(p["targets"]):
            head = [p["name"], p["calendar"], ",".join(p["channels"])] if i == 0 else ["", "", ""]
            first = _cell(target["first_response"]) if p["sla"] else "no SLA"
            plan_rows.append([*head, target["priority"], first, _cell(target["resolution"]),
                              ", ".join(target["reminders"]) if p["sla"] and target["reminders"] else "-"])
    lines += _table(plan_rows)
    if data["outage_line"]:
        lines += ["", f"outage line (R17): calendar {data['outage_line']}, open to every plan"]
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    """A preset by name or file, as tables (``--json``: one object)."""
    preset = load_preset(args.preset)
    out.write((json.dumps(preset_json(preset)) if args.json else preset_text(preset)) + "\n")
    return 0


def register(commands: Any) -> None:
    """Add ``slabot presets check|show`` to the ``slabot`` parser."""
    preset_cmds = command_group(commands, "presets", "preset files: check one, show one as a table")
    check = preset_cmds.add_parser("check", help="check a preset file: every problem, one line each with its line "
                                                 "number (exit 0 when valid, 2 when not)")
    check.add_argument("file", help="the preset .toml file")
    check.set_defaults(handler=cmd_check)
    show = preset_cmds.add_parser("show", help="the plans, priorities, calendars and targets of a preset as tables")
    show.add_argument("preset", help=f"a shipped preset ({', '.join(BUILTIN)}) or a preset file")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=cmd_show)


__all__ = ["preset_json", "preset_text", "register"]
