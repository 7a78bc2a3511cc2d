"""SLA policy as data: plans, targets, reminders, the outage line, rates and presets.

A :class:`Preset` is one SLA document expressed as values (R9-R13, R15,
R17-R22). Nothing here reads a file: the presets that ship with slabot are TOML
files turned into these values by ``bot.presets``. :class:`SlaTerms` is the
snapshot a ticket keeps of the terms it was opened under (R22).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sla_engine.billing import BillingTerms, RateCard
from sla_engine.calendar import BusinessCalendar
from sla_engine.classification import ClassificationRule
from sla_engine.clocks import Clock, ClockKind, make_clock
from sla_engine.errors import PolicyError
from sla_engine.priority import PriorityLevel, PriorityRule


class Channel(StrEnum):
    """Where a request comes in ("chat" in the SLA documents is WhatsApp)."""

    WHATSAPP = "whatsapp"
    EMAIL = "email"
    PHONE = "phone"
    PLATFORM = "platform"  # [MC] "Via het MailCampaigns platform door het aanmaken van een ticket"


class Priority(StrEnum):
    """A ticket's priority."""

    NORMAL = "normal"
    URGENT = "urgent"
    CRITICAL = "critical"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m|min|s)\s*$", re.IGNORECASE)
_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "min": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """``"24h"``, ``"3w"``, ``"7d"``, ``"15m"``, ``"1.5h"`` to a ``timedelta``."""
    found = _DURATION.match(text)
    if not found:
        raise PolicyError(f"duration {text!r}: expected a number and a unit (w, d, h, m, s), e.g. '24h' or '3w'")
    seconds = Decimal(found.group(1)) * _UNITS[found.group(2).lower()]
    return timedelta(seconds=int(seconds)) if seconds == int(seconds) else timedelta(seconds=float(seconds))


def format_duration(duration: timedelta, clock: ClockKind | None = None) -> str:
    """Inverse of :func:`parse_duration` in the unit a clock is read in (hours for business time)."""
    seconds = int(duration.total_seconds())
    units = {ClockKind.BUSINESS: ("h", "m"), ClockKind.WORKING_DAYS: ("d", "h", "m")}.get(
        clock, ("w", "d", "h", "m")  # type: ignore[arg-type]
    )
    for unit in units:
        size = _UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Target:
    """A duration on a clock over a named calendar."""

    duration: timedelta
    clock: ClockKind
    calendar: str

    def to_dict(self) -> dict[str, str]:
        return {"duration": format_duration(self.duration, self.clock), "clock": self.clock.value, "calendar": self.calendar}

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Target:
        return cls(parse_duration(data["duration"]), ClockKind(data["clock"]), data["calendar"])


@dataclass(frozen=True)
class ResolutionTarget:
    """A best-effort resolution range (R13) on one clock."""

    minimum: timedelta
    maximum: timedelta
    clock: ClockKind
    calendar: str
    excludes_release: bool = False

    def __post_init__(self) -> None:
        if self.maximum < self.minimum:
            raise PolicyError(f"resolution range {self.minimum}..{self.maximum} ends before it starts")

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": format_duration(self.minimum, self.clock),
            "max": format_duration(self.maximum, self.clock),
            "clock": self.clock.value,
            "calendar": self.calendar,
            "excludes_release": self.excludes_release,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResolutionTarget:
        return cls(
            parse_duration(data["min"]),
            parse_duration(data["max"]),
            ClockKind(data["clock"]),
            data["calendar"],
            bool(data.get("excludes_release", False)),
        )


@dataclass(frozen=True)
class ReminderRule:
    """When to ping staff about a first-response deadline (R16).

    Exactly one of: ``fraction`` of the window gone, a time ``before`` the deadline on the ticket's own clock
    (``before`` fixed, ``share_before`` a share of the window, or the shorter of both), or ``at_breach``.
    """

    spec: str
    fraction: Decimal | None = None
    before: timedelta | None = None
    at_breach: bool = False
    escalate: bool = False
    share_before: Decimal | None = None

    @classmethod
    def parse(cls, spec: str) -> ReminderRule:
        """``"75%"``, ``"1h before"``, ``"10% before"``, ``"1h or 10% before"`` (the shorter of the two), or
        ``"breach"`` (escalates to the team lead)."""
        text = spec.strip().lower()
        if text == "breach":
            return cls(spec, at_breach=True, escalate=True)
        if text.endswith("%"):
            return cls(spec, fraction=_share(text, spec))
        if text.endswith("before"):
            before: timedelta | None = None
            share: Decimal | None = None
            for part in text[: -len("before")].split(" or "):
                if part.strip().endswith("%") and share is None:
                    share = _share(part.strip(), spec)
                elif before is None and not part.strip().endswith("%"):
                    before = parse_duration(part)
                else:
                    raise PolicyError(f"reminder {spec!r}: expected '1h before', '10% before' or '1h or 10% before'")
            return cls(spec, before=before, share_before=share)
        raise PolicyError(f"reminder {spec!r}: expected '75%', '1h before', '10% before' or 'breach'")

    def lead(self, window: timedelta) -> timedelta | None:
        """How long before the deadline a "before" rule pings for a window of ``window``; None for the others."""
        if self.before is None and self.share_before is None:
            return None
        leads = [self.before] if self.before is not None else []
        if self.share_before is not None:
            leads.append(timedelta(seconds=round(window.total_seconds() * float(self.share_before))))
        return min(leads)


def _share(text: str, spec: str) -> Decimal:
    try:
        share = Decimal(text[:-1]) / 100
    except ArithmeticError:
        share = Decimal(-1)
    if not Decimal(0) < share < Decimal(1):
        raise PolicyError(f"reminder {spec!r}: a share must lie between 0% and 100%")
    return share


DEFAULT_REMINDERS = tuple(ReminderRule.parse(s) for s in ("75%", "1h or 10% before", "breach"))
"""R16 for a preset that names none: at 75% of the window, an hour before it lapses (a tenth of the window when
that is shorter: 1.5 minutes of a 15-minute window), and at the breach."""

@dataclass(frozen=True)
class PriorityTargets:
    """One cell of a priority matrix (R25): a plan's targets for one priority, each on its own clock."""

    first_response: Target | None
    resolution: ResolutionTarget | None
    reminders: tuple[ReminderRule, ...] | None = None  # None: the plan's own

    @property
    def calendars(self) -> set[str]:
        return {t.calendar for t in (self.first_response, self.resolution) if t is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_response": self.first_response.to_dict() if self.first_response else None,
            "resolution": self.resolution.to_dict() if self.resolution else None,
            "reminders": None if self.reminders is None else [r.spec for r in self.reminders],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriorityTargets:
        reminders = data.get("reminders")
        return cls(
            Target.from_dict(data["first_response"]) if data.get("first_response") else None,
            ResolutionTarget.from_dict(data["resolution"]) if data.get("resolution") else None,
            None if reminders is None else tuple(ReminderRule.parse(r) for r in reminders),
        )


QUEUE_TIER = 10_000
"""The step between the tiers of :func:`queue_rank`; a plan's own ``queue_priority`` stays within half of it."""


@dataclass(frozen=True)
class Plan:
    """One service level of a preset."""

    name: str
    title: str
    channels: frozenset[Channel]
    sla: bool
    first_response: Target | None
    resolution: ResolutionTarget | None
    staff_role: str | None = None
    queue_priority: int = 0
    reminders: tuple[ReminderRule, ...] = DEFAULT_REMINDERS
    monthly_hours: bool = False
    paid_service: bool = False
    calendar: str | None = None  # the plan's service window: the calendar its targets run on unless they name one
    targets: tuple[tuple[str, PriorityTargets], ...] = ()  # the plan's row of the priority matrix (R25)
    priority: str | None = None  # whose targets ``first_response`` and ``resolution`` are (None: the plan's own)
    own: PriorityTargets | None = None  # the plan's own targets while a priority's stand in for them

    def __post_init__(self) -> None:
        if self.sla and self.first_response is None and not self.targets:
            raise PolicyError(f"plan {self.name!r} has an SLA but no first-response target")
        if not self.channels:
            raise PolicyError(f"plan {self.name!r} includes no channel")
        if abs(self.queue_priority) >= QUEUE_TIER // 2:
            raise PolicyError(f"plan {self.name!r}: queue_priority {self.queue_priority} must lie between "
                              f"{-(QUEUE_TIER // 2 - 1)} and {QUEUE_TIER // 2 - 1}")

    @property
    def base(self) -> PriorityTargets:
        """The plan's own targets: for every priority its matrix row does not name."""
        return self.own or PriorityTargets(self.first_response, self.resolution, self.reminders)

    @property
    def priorities(self) -> tuple[str, ...]:
        """The priorities the plan's matrix row names."""
        return tuple(name for name, _ in self.targets)

    def cell(self, priority: str) -> PriorityTargets | None:
        """The plan's targets for ``priority``, or None when its row does not name it."""
        return next((cell for name, cell in self.targets if name == priority), None)

    @property
    def has_own_targets(self) -> bool:
        base = self.base
        return not self.sla or base.first_response is not None or base.resolution is not None

    def with_priority(self, priority: str | None) -> Plan:
        """The plan with the targets of ``priority`` in place of its own (its own where the row names none)."""
        base = self.base
        chosen = (self.cell(priority) if priority is not None else None) or base
        reminders = chosen.reminders if chosen.reminders is not None else base.reminders
        return replace(self, first_response=chosen.first_response, resolution=chosen.resolution,
                       reminders=reminders if reminders is not None else DEFAULT_REMINDERS, priority=priority,
                       own=base)

    @property
    def calendars(self) -> set[str]:
        """Every calendar the plan's targets run on, its matrix row included."""
        found = self.base.calendars
        for _, cell in self.targets:
            found |= cell.calendars
        return found

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (a ticket's snapshot)."""
        return {
            "name": self.name,
            "title": self.title,
            "channels": sorted(c.value for c in self.channels),
            "sla": self.sla,
            "first_response": self.first_response.to_dict() if self.first_response else None,
            "resolution": self.resolution.to_dict() if self.resolution else None,
            "staff_role": self.staff_role,
            "queue_priority": self.queue_priority,
            "reminders": [r.spec for r in self.reminders],
            "monthly_hours": self.monthly_hours,
            "paid_service": self.paid_service,
            "calendar": self.calendar,
            "targets": {name: cell.to_dict() for name, cell in self.targets},
            "priority": self.priority,
            "own": self.own.to_dict() if self.own else None,
        }

    @classmethod
    def from_dict(cls, p: Mapping[str, Any]) -> Plan:
        """Inverse of :meth:`to_dict` (a snapshot of an earlier slabot has no matrix)."""
        return cls(
            name=p["name"],
            title=p["title"],
            channels=frozenset(Channel(c) for c in p["channels"]),
            sla=p["sla"],
            first_response=Target.from_dict(p["first_response"]) if p["first_response"] else None,
            resolution=ResolutionTarget.from_dict(p["resolution"]) if p["resolution"] else None,
            staff_role=p["staff_role"],
            queue_priority=p["queue_priority"],
            reminders=tuple(ReminderRule.parse(s) for s in p["reminders"]),
            monthly_hours=p["monthly_hours"],
            paid_service=p["paid_service"],
            calendar=p.get("calendar"),
            targets=tuple((name, PriorityTargets.from_dict(c)) for name, c in (p.get("targets") or {}).items()),
            priority=p.get("priority"),
            own=PriorityTargets.from_dict(p["own"]) if p.get("own") else None,
        )


@dataclass(frozen=True)
class CriticalLine:
    """The 24/7 outage line (R17)."""

    calendar: str
    repage_every: timedelta
    outage_charge_warning: bool = True


def takes_request(plan: Plan, channel: Channel, *, critical: bool, outage_line: CriticalLine | None) -> bool:
    """Whether a request of a contact on ``plan`` that came in on ``channel`` is taken (R5, R17).

    A plan takes requests on the channels it includes; the outage line is open to every plan, plans without an
    SLA included: a critical request is taken on any channel where the preset has an outage line. Without one
    (MailCampaigns) a critical request is an ordinary one and R5 applies.
    """
    return channel in plan.channels or (critical and outage_line is not None)


def queue_rank(plan: Plan | None, priority: Priority) -> int:
    """A ticket's place in every queue and reminder list, higher first, then by deadline (R15).

    Critical Premium, critical Business, other critical, Premium, then the rest: a critical ticket of a plan
    with an SLA ("Met een Business-pakket of hoger ... Prioriteit bij support voor kritieke issues") comes
    first, then every other critical one (plans without an SLA, callers matching no account), each tier in the
    order of its plans' ``queue_priority`` (Premium's "voorrang bij alle aanvragen"); then the ordinary tickets
    by ``queue_priority``. ``plan`` is None for a sender that matches no account.
    """
    own = plan.queue_priority if plan is not None else 0
    if priority != Priority.CRITICAL:
        return own
    return (2 if plan is not None and plan.sla else 1) * QUEUE_TIER + own


@dataclass(frozen=True)
class Preset:
    """One SLA document as data: calendars, plans, and the rules around them."""

    name: str
    title: str
    ref_prefix: str
    calendars: Mapping[str, BusinessCalendar]
    plans: tuple[Plan, ...]
    classification: tuple[ClassificationRule, ...] = ()
    default_kind: str = "undetermined"
    template_window: timedelta = timedelta(days=30)
    critical: CriticalLine | None = None
    billing: BillingTerms | None = None
    languages: tuple[str, ...] = ("nl", "en")
    priorities: tuple[PriorityLevel, ...] = ()  # most urgent first (R25)
    priority_rules: tuple[PriorityRule, ...] = ()
    default_priority: str | None = None
    _plans: dict[str, Plan] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_plans", {p.name: p for p in self.plans})
        if len(self._plans) != len(self.plans):
            raise PolicyError(f"preset {self.name!r} names a plan twice")
        names = [p.name for p in self.priorities]
        if len(set(names)) != len(names):
            raise PolicyError(f"preset {self.name!r} names a priority twice")
        if names and self.default_priority not in names:
            raise PolicyError(f"preset {self.name!r}: default_priority {self.default_priority!r} is not one of "
                              f"its priorities ({', '.join(names)})")
        for rule in self.priority_rules:
            if rule.priority not in names:
                raise PolicyError(f"priority rule {rule.name!r} gives unknown priority {rule.priority!r}")
        for plan in self.plans:
            for name in plan.priorities:
                if name not in names:
                    raise PolicyError(f"plan {plan.name!r} has targets for unknown priority {name!r}")
            for calendar in sorted(plan.calendars | ({plan.calendar} if plan.calendar else set())):
                if calendar not in self.calendars:
                    raise PolicyError(
                        f"plan {plan.name!r} uses calendar {calendar!r}; "
                        f"preset {self.name!r} has {sorted(self.calendars)}"
                    )
        if self.critical is not None and self.critical.calendar not in self.calendars:
            raise PolicyError(f"the outage line uses unknown calendar {self.critical.calendar!r}")

    def plan(self, name: str) -> Plan:
        """The plan called ``name``, or a :class:`PolicyError` naming the valid choices."""
        try:
            return self._plans[name.strip().lower()]
        except KeyError:
            raise PolicyError(
                f"unknown plan {name!r} for preset {self.name!r}; choose one of: {', '.join(self._plans)}"
            ) from None

    @property
    def plan_names(self) -> tuple[str, ...]:
        return tuple(self._plans)

    @property
    def priority_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.priorities)

    def priority(self, name: str) -> PriorityLevel:
        """The priority called ``name``, or a :class:`PolicyError` naming the valid choices."""
        wanted = name.strip().lower()
        found = next((p for p in self.priorities if p.name == wanted), None)
        if found is None:
            choices = ", ".join(self.priority_names) or "none (the preset has no priorities)"
            raise PolicyError(f"unknown priority {name!r} for preset {self.name!r}; choose one of: {choices}")
        return found

    def served(self, plan: Plan, priority: str | None) -> tuple[str | None, str | None]:
        """The priority ``plan`` serves a request of ``priority`` at, with the reason when it is another.

        A plan whose matrix row lacks the priority serves it at its own targets; a plan without own targets
        at the nearest priority its row has, the less urgent side first.
        """
        if priority is None or not self.priorities:
            return None, None
        if plan.cell(priority) is not None or plan.has_own_targets:
            return priority, None
        names = self.priority_names
        at = names.index(priority)
        order = [*names[at + 1:], *reversed(names[:at])]
        chosen = next((name for name in order if plan.cell(name) is not None), priority)
        return chosen, f"plan {plan.name} has no {priority} targets: served as {chosen}"

    def service_calendar(self, plan: Plan) -> BusinessCalendar:
        """The calendar of the plan's service window: its own, else its first-response target's, else the
        preset's first."""
        base = plan.base
        cells = [cell for _, cell in plan.targets]
        for candidate in (plan.calendar, *(c.first_response.calendar for c in (base, *cells) if c.first_response)):
            if candidate is not None:
                return self.calendars[candidate]
        return next(iter(self.calendars.values()))

    def terms(self, plan: str | Plan, on: date, priority: str | None = None) -> SlaTerms:
        """The snapshot of the terms a request under ``plan`` at ``priority`` gets on day ``on`` (R22).

        The snapshot keeps the plan's whole matrix row and its calendars, so that a priority set later
        recomputes the deadlines on the terms of the day the request came in.
        """
        chosen = plan if isinstance(plan, Plan) else self.plan(plan)
        if priority is not None:
            chosen = chosen.with_priority(priority)
        rate = self.billing.rate_on(on) if self.billing is not None and chosen.paid_service else None
        return SlaTerms(
            preset=self.name,
            plan=chosen,
            calendars={name: self.calendars[name] for name in sorted(_used(chosen))},
            rate=rate,
            priority=priority,
        )

    def reprioritised(self, terms: SlaTerms, priority: str | None) -> SlaTerms:
        """A ticket's terms at another priority (R25): the cell of the matrix row its snapshot kept, on the
        snapshot's calendars (a calendar the old priority did not use comes from this preset)."""
        plan = terms.plan.with_priority(priority)
        calendars = dict(terms.calendars)
        for name in sorted(_used(plan) - set(calendars)):
            if name not in self.calendars:
                raise PolicyError(f"priority {priority!r} of plan {plan.name!r} uses calendar {name!r}, which "
                                  f"preset {self.name!r} no longer has")
            calendars[name] = self.calendars[name]
        return replace(terms, plan=plan, calendars=calendars, priority=priority)


@dataclass(frozen=True)
class SlaTerms:
    """The terms a ticket was opened under: plan, its calendars, the rate of the day."""

    preset: str
    plan: Plan
    calendars: Mapping[str, BusinessCalendar]
    rate: RateCard | None = None
    priority: str | None = None
    _clocks: dict[tuple[ClockKind, str], Clock] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def clock(self, target: Target | ResolutionTarget) -> Clock:
        """The clock a target runs on (made once per terms)."""
        key = (target.clock, target.calendar)
        found = self._clocks.get(key)
        if found is None:
            found = self._clocks[key] = make_clock(target.clock, self.calendars[target.calendar])
        return found

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot."""
        return {
            "preset": self.preset,
            "plan": self.plan.to_dict(),
            "calendars": {name: cal.to_dict() for name, cal in self.calendars.items()},
            "rate": self.rate.to_dict() if self.rate else None,
            "priority": self.priority,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlaTerms:
        """Inverse of :meth:`to_dict`."""
        return cls(
            preset=data["preset"],
            plan=Plan.from_dict(data["plan"]),
            calendars={n: BusinessCalendar.from_dict(c) for n, c in data["calendars"].items()},
            rate=RateCard.from_dict(data["rate"]) if data.get("rate") else None,
            priority=data.get("priority"),
        )


def _used(plan: Plan) -> set[str]:
    """The calendars the plan's targets of the moment run on."""
    return {t.calendar for t in (plan.first_response, plan.resolution) if t is not None}


def local_date(instant: datetime, calendar: BusinessCalendar) -> date:
    """The calendar-local date of an instant."""
    return instant.astimezone(calendar.zone).date()
