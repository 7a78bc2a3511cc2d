"""SLA policy as data: plans, targets, reminders, the outage line, rates and presets.

A :class:`Preset` is one SLA document expressed as values (R9-R13, R15,
R17-R22). Nothing here reads a file: the presets that ship with slabot are TOML
files turned into these values by ``bot.presets``. :class:`SlaTerms` is the
snapshot a ticket keeps of the terms it was opened under (R22).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sla_engine.billing import BillingTerms, RateCard
from sla_engine.calendar import BusinessCalendar
from sla_engine.classification import ClassificationRule
from sla_engine.clocks import Clock, ClockKind, make_clock
from sla_engine.errors import PolicyError


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

    Exactly one of: ``fraction`` of the window gone, ``before`` the deadline on
    the ticket's own clock, or ``at_breach``.
    """

    spec: str
    fraction: Decimal | None = None
    before: timedelta | None = None
    at_breach: bool = False
    escalate: bool = False

    @classmethod
    def parse(cls, spec: str) -> ReminderRule:
        """``"75%"``, ``"1h before"``, ``"breach"`` (escalates to the team lead)."""
        text = spec.strip().lower()
        if text == "breach":
            return cls(spec, at_breach=True, escalate=True)
        if text.endswith("%"):
            try:
                share = Decimal(text[:-1]) / 100
            except ArithmeticError:
                share = Decimal(-1)
            if not Decimal(0) < share < Decimal(1):
                raise PolicyError(f"reminder {spec!r}: a share must lie between 0% and 100%")
            return cls(spec, fraction=share)
        if text.endswith("before"):
            return cls(spec, before=parse_duration(text[: -len("before")]))
        raise PolicyError(f"reminder {spec!r}: expected '75%', '1h before' or 'breach'")


DEFAULT_REMINDERS = tuple(ReminderRule.parse(s) for s in ("75%", "1h before", "breach"))

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

    def __post_init__(self) -> None:
        if self.sla and self.first_response is None:
            raise PolicyError(f"plan {self.name!r} has an SLA but no first-response target")
        if not self.channels:
            raise PolicyError(f"plan {self.name!r} includes no channel")
        if abs(self.queue_priority) >= QUEUE_TIER // 2:
            raise PolicyError(f"plan {self.name!r}: queue_priority {self.queue_priority} must lie between "
                              f"{-(QUEUE_TIER // 2 - 1)} and {QUEUE_TIER // 2 - 1}")


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
    _plans: dict[str, Plan] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_plans", {p.name: p for p in self.plans})
        if len(self._plans) != len(self.plans):
            raise PolicyError(f"preset {self.name!r} names a plan twice")
        for plan in self.plans:
            for target in (plan.first_response, plan.resolution):
                if target is not None and target.calendar not in self.calendars:
                    raise PolicyError(
                        f"plan {plan.name!r} uses calendar {target.calendar!r}; "
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

    def terms(self, plan: str | Plan, on: date) -> SlaTerms:
        """The snapshot of the terms a request under ``plan`` gets on day ``on`` (R22)."""
        chosen = plan if isinstance(plan, Plan) else self.plan(plan)
        used = {t.calendar for t in (chosen.first_response, chosen.resolution) if t is not None}
        rate = self.billing.rate_on(on) if self.billing is not None and chosen.paid_service else None
        return SlaTerms(
            preset=self.name,
            plan=chosen,
            calendars={name: self.calendars[name] for name in sorted(used)},
            rate=rate,
        )


@dataclass(frozen=True)
class SlaTerms:
    """The terms a ticket was opened under: plan, its calendars, the rate of the day."""

    preset: str
    plan: Plan
    calendars: Mapping[str, BusinessCalendar]
    rate: RateCard | None = None
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
        plan = self.plan
        return {
            "preset": self.preset,
            "plan": {
                "name": plan.name,
                "title": plan.title,
                "channels": sorted(c.value for c in plan.channels),
                "sla": plan.sla,
                "first_response": plan.first_response.to_dict() if plan.first_response else None,
                "resolution": plan.resolution.to_dict() if plan.resolution else None,
                "staff_role": plan.staff_role,
                "queue_priority": plan.queue_priority,
                "reminders": [r.spec for r in plan.reminders],
                "monthly_hours": plan.monthly_hours,
                "paid_service": plan.paid_service,
            },
            "calendars": {name: cal.to_dict() for name, cal in self.calendars.items()},
            "rate": self.rate.to_dict() if self.rate else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlaTerms:
        """Inverse of :meth:`to_dict`."""
        p = data["plan"]
        plan = Plan(
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
        )
        return cls(
            preset=data["preset"],
            plan=plan,
            calendars={n: BusinessCalendar.from_dict(c) for n, c in data["calendars"].items()},
            rate=RateCard.from_dict(data["rate"]) if data.get("rate") else None,
        )


def local_date(instant: datetime, calendar: BusinessCalendar) -> date:
    """The calendar-local date of an instant."""
    return instant.astimezone(calendar.zone).date()
