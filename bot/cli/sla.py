"""``slabot sla deadline``: the first-response deadline and the resolution window of a request (SPEC §4)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any, TextIO

from bot.cli.common import UsageError, command_group, parse_instant
from bot.config import load_config
from bot.i18n import LANGUAGES, Language, format_span, format_when
from bot.presets import BUILTIN, load_preset
from sla_engine.deadlines import first_response_due, resolution_window
from sla_engine.errors import PolicyError
from sla_engine.policy import Preset, SlaTerms, format_duration


def _iso(instant: datetime | None, preset: Preset) -> str | None:
    if instant is None:
        return None
    zone = next(iter(preset.calendars.values())).zone
    return instant.astimezone(zone).isoformat()


def priority_terms(preset: Preset, plan_name: str, received_at: datetime,
                   priority: str | None = None) -> tuple[SlaTerms, str | None]:
    """The terms of a request under ``plan_name`` at ``priority`` (the preset's default where None), with the
    reason when the plan serves it at another priority (R25)."""
    plan = preset.plan(plan_name)
    if priority is not None:
        priority = preset.priority(priority).name
    served, why = preset.served(plan, priority or preset.default_priority)
    return preset.terms(plan, received_at.date(), served), why


def deadline_report(preset: Preset, plan_name: str, received_at: datetime,
                    priority: str | None = None) -> dict[str, Any]:
    """The JSON object of ``slabot sla deadline --json`` (SPEC §4)."""
    plan = preset.plan(plan_name)
    terms, why = priority_terms(preset, plan_name, received_at, priority)
    plan = terms.plan
    due = first_response_due(received_at, terms)
    window = resolution_window(received_at, terms)
    return {
        "plan": plan.name,
        "received_at": _iso(received_at, preset),
        "first_response_due": _iso(due, preset),
        "resolution_due_min": _iso(window.earliest, preset),
        "resolution_due_max": _iso(window.latest, preset),
        "preset": preset.name,
        "sla": plan.sla,
        "first_response_target": (
            {"duration": plan.first_response.duration.total_seconds() / 3600, "unit": "hours",
             "clock": plan.first_response.clock.value}
            if plan.first_response and plan.sla else None
        ),
        "resolution_clock": plan.resolution.clock.value if plan.resolution else None,
        "priority": terms.priority,
        "priority_note": why,
        "first_response_target_text": format_duration(plan.first_response.duration, plan.first_response.clock)
        if plan.first_response and plan.sla else None,
    }


_SENTENCES: dict[Language, dict[str, str]] = {
    "nl": {
        "received": "Een aanvraag onder {plan} ({preset}), ontvangen {when}:",
        "due": "- eerste reactie door een medewerker uiterlijk {when} ({span} {clock});",
        "no_due": "- geen gegarandeerde reactietijd (dit pakket heeft geen SLA);",
        "resolution": "- oplossing (inspanningsverbintenis) tussen {earliest} en {latest}.",
        "no_resolution": "- geen gegarandeerde oplostijd.",
        "business": "binnen openingstijden",
        "working_days": "",
        "calendar": "aaneengesloten",
        "priority": "prioriteit",
    },
    "en": {
        "received": "A request under {plan} ({preset}), received {when}:",
        "due": "- first response by a staff member by {when} ({span} {clock});",
        "no_due": "- no guaranteed response time (this plan has no SLA);",
        "resolution": "- resolution (best effort) between {earliest} and {latest}.",
        "no_resolution": "- no guaranteed resolution time.",
        "business": "within opening hours",
        "working_days": "",
        "calendar": "around the clock",
        "priority": "priority",
    },
}


def deadline_sentence(preset: Preset, plan_name: str, received_at: datetime, language: Language,
                      priority: str | None = None) -> str:
    """The same facts as :func:`deadline_report`, as readable text."""
    terms, why = priority_terms(preset, plan_name, received_at, priority)
    plan = terms.plan
    due = first_response_due(received_at, terms)
    window = resolution_window(received_at, terms)
    words = _SENTENCES[language]
    title = plan.title
    if terms.priority is not None:
        title += f", {words['priority']} {preset.priority(terms.priority).title}"
    lines = [words["received"].format(plan=title, preset=preset.title, when=format_when(received_at, language))]
    if why:
        lines.append(f"- {why};")
    if due is not None and plan.first_response is not None:
        target = plan.first_response
        lines.append(words["due"].format(
            when=format_when(due, language),
            span=format_span(target.duration, language, target.clock.value),
            clock=words[target.clock.value],
        ).replace(" )", ")"))
    else:
        lines.append(words["no_due"])
    if window.earliest is not None and window.latest is not None:
        lines.append(words["resolution"].format(
            earliest=format_when(window.earliest, language), latest=format_when(window.latest, language)))
    else:
        lines.append(words["no_resolution"])
    return "\n".join(lines)


def _preset_for(args: argparse.Namespace) -> Preset:
    if args.preset:
        return load_preset(args.preset)
    return load_config(args.config).preset


def cmd_sla_deadline(args: argparse.Namespace, out: TextIO) -> int:
    """The deadlines of a request under a plan, as a sentence or one JSON object."""
    preset = _preset_for(args)
    received_at = parse_instant(args.at, preset)
    try:
        preset.plan(args.plan)
    except PolicyError as exc:
        raise UsageError(f"--plan: {exc}") from None
    if args.priority is not None:
        try:
            preset.priority(args.priority)
        except PolicyError as exc:
            raise UsageError(f"--priority: {exc}") from None
    if args.json:
        out.write(json.dumps(deadline_report(preset, args.plan, received_at, args.priority)) + "\n")
    else:
        out.write(deadline_sentence(preset, args.plan, received_at, args.lang, args.priority) + "\n")
    return 0


def register(commands: Any) -> None:
    """Add ``slabot sla deadline`` to the ``slabot`` parser."""
    sla_cmds = command_group(commands, "sla", "SLA calculations")
    deadline = sla_cmds.add_parser(
        "deadline", help="first-response deadline and resolution window for a request",
        description="Print the first-response deadline and the resolution window for a request "
                    "received at --at under --plan.",
    )
    deadline.add_argument("--plan", required=True, help="plan name, e.g. licentie or premium")
    deadline.add_argument("--at", required=True, metavar="ISO8601",
                          help="when the request came in, e.g. 2026-11-23T10:00:00+01:00")
    deadline.add_argument("--preset", help=f"preset name ({', '.join(BUILTIN)}) or file; default: the config's")
    deadline.add_argument("--priority", metavar="NAME",
                          help="a priority of the preset's matrix, e.g. p1 (default: the preset's default priority)")
    deadline.add_argument("--json", action="store_true", help="print one JSON object")
    deadline.add_argument("--lang", choices=LANGUAGES, default="nl", help="language of the sentence (default nl)")
    deadline.set_defaults(handler=cmd_sla_deadline)


__all__ = ["deadline_report", "deadline_sentence", "register"]
