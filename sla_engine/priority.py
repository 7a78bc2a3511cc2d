"""A request's priority (R25), as an ordered table of rules.

A preset that promises per priority (P1 "15 minutes", P4 "1 working day")
names its priorities in order, most urgent first, and decides which one a
request gets with a table like the classification's (R18): each
:class:`PriorityRule` states its conditions (keywords in the request, the
channel or line it came in on, the urgency and impact the customer or staff
gave) and the priority they decide. The first rule whose conditions all hold
wins; :func:`decide_priority` returns the priority with the rule and the
reasons, so staff see why. Staff may set another priority later; the engine
recomputes the deadlines from receipt (``SlaTerms.with_priority``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sla_engine.classification import find_keyword, normalise
from sla_engine.errors import PolicyError


class Line(StrEnum):
    """The line a request came in on: the ordinary desk, or the 24/7 outage line (R17)."""

    GENERAL = "general"
    OUTAGE = "outage"


@dataclass(frozen=True)
class PriorityLevel:
    """One priority of a preset (``p1``, "P1 - kritiek"), with what it means in the SLA's own words."""

    name: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class PriorityRule:
    """One row of the table: conditions and the priority they decide.

    Every condition given must hold: a keyword of ``keywords`` in the request, its channel among ``channels``,
    its line among ``lines``, its urgency among ``urgency`` and its impact among ``impact``.
    """

    name: str
    priority: str
    keywords: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    lines: tuple[Line, ...] = ()
    urgency: tuple[str, ...] = ()
    impact: tuple[str, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if not (self.keywords or self.channels or self.lines or self.urgency or self.impact):
            raise PolicyError(f"priority rule {self.name!r} has no condition")


@dataclass(frozen=True)
class PriorityInput:
    """What the table looks at."""

    text: str
    channel: str
    line: Line = Line.GENERAL
    urgency: str | None = None
    impact: str | None = None


@dataclass(frozen=True)
class PriorityDecision:
    """The priority, the rule that gave it (``default``, ``staff``), and why."""

    priority: str
    rule: str
    reasons: tuple[str, ...]


def _answer(given: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    """The reason for a matching urgency or impact answer, or None when it does not match."""
    if given is None:
        return None
    plain = normalise(given)
    return f"{what} given as {given!r}" if plain in (normalise(a) for a in allowed) else None


def decide_priority(request: PriorityInput, rules: tuple[PriorityRule, ...], default: str) -> PriorityDecision:
    """Run the table: the first rule whose conditions all hold decides, else ``default``."""
    text = normalise(request.text)
    for rule in rules:
        reasons: list[str] = []
        if rule.lines:
            if request.line not in rule.lines:
                continue
            reasons.append(f"came in on the {request.line.value} line")
        if rule.channels:
            if request.channel not in rule.channels:
                continue
            reasons.append(f"came in by {request.channel}")
        for given, allowed, what in ((request.urgency, rule.urgency, "urgency"),
                                     (request.impact, rule.impact, "impact")):
            if allowed:
                found = _answer(given, allowed, what)
                if found is None:
                    break
                reasons.append(found)
        else:
            if rule.keywords:
                hit = find_keyword(text, rule.keywords)
                if hit is None:
                    continue
                reasons.append(f"the request mentions {hit!r}")
            if rule.reason:
                reasons.append(rule.reason)
            return PriorityDecision(rule.priority, rule.name, tuple(reasons))
    return PriorityDecision(default, "default", ("no priority rule matched: the preset's default",))
