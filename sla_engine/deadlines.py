"""Deadlines from terms: first response, the resolution window, pauses, reminders.

All functions take the instant and the :class:`~sla_engine.policy.SlaTerms`
explicitly; none reads a clock. ``None`` means the plan guarantees nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sla_engine.policy import SlaTerms

UTC = timezone.utc


@dataclass(frozen=True)
class Pause:
    """A stretch of waiting on the customer (R14); ``end`` is None while it lasts."""

    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class ResolutionWindow:
    """The best-effort resolution range, with why it is what it is."""

    earliest: datetime | None
    latest: datetime | None
    paused_for: timedelta
    reason: str

    @property
    def on_clock(self) -> bool:
        return self.latest is not None


@dataclass(frozen=True)
class PlannedReminder:
    """A ping to staff about the first-response deadline (R16)."""

    spec: str
    at: datetime
    escalate: bool


def first_response_due(received_at: datetime, terms: SlaTerms) -> datetime | None:
    """When a staff member must have answered (R11, R12); None without a guarantee."""
    target = terms.plan.first_response
    if target is None or not terms.plan.sla:
        return None
    return terms.clock(target).add(received_at, target.duration)


def paused_time(received_at: datetime, pauses: Iterable[Pause], terms: SlaTerms, as_of: datetime) -> timedelta:
    """Resolution-clock time spent waiting on the customer (an open pause counts up to ``as_of``)."""
    target = terms.plan.resolution
    if target is None:
        return timedelta(0)
    clock = terms.clock(target)
    total = timedelta(0)
    for pause in pauses:
        # compare in UTC: two datetimes in one zone compare by wall time (wrong in October's repeated hour)
        start = max(pause.start.astimezone(UTC), received_at.astimezone(UTC))
        end = (pause.end if pause.end is not None else as_of).astimezone(UTC)
        if end > start:
            total += clock.elapsed(start, end)
    return total


def resolution_window(
    received_at: datetime,
    terms: SlaTerms,
    *,
    pauses: Iterable[Pause] = (),
    needs_release: bool = False,
    as_of: datetime | None = None,
) -> ResolutionWindow:
    """The resolution range (R13); paused time pushes it out (R14); a release takes it off (R13)."""
    target = terms.plan.resolution
    if target is None:
        return ResolutionWindow(None, None, timedelta(0), "the plan has no resolution target")
    if needs_release and target.excludes_release:
        return ResolutionWindow(None, None, timedelta(0), "needs an IT release: off the resolution clock")
    pause_list = list(pauses)
    paused = paused_time(received_at, pause_list, terms, as_of or received_at)
    clock = terms.clock(target)
    reason = "best-effort range"
    if paused:
        reason += f", pushed out by {paused} waiting on the customer"
    return ResolutionWindow(
        clock.add(received_at, target.minimum + paused),
        clock.add(received_at, target.maximum + paused),
        paused,
        reason,
    )


def reminder_schedule(received_at: datetime, terms: SlaTerms, *,
                      due: datetime | None = None) -> tuple[PlannedReminder, ...]:
    """When to ping staff before (and at) the first-response deadline, on the ticket's clock.

    ``due`` is that deadline (:func:`first_response_due`) where the caller has it already.
    """
    target = terms.plan.first_response
    if due is None:
        due = first_response_due(received_at, terms)
    if target is None or due is None:
        return ()
    clock = terms.clock(target)
    start = clock.next_run(received_at)
    planned: list[PlannedReminder] = []
    for rule in terms.plan.reminders:
        if rule.at_breach:
            at = due
        elif rule.fraction is not None:
            share = target.duration * float(rule.fraction)
            at = clock.add(start, timedelta(seconds=round(share.total_seconds())))
        else:
            lead = rule.lead(target.duration)
            assert lead is not None
            if lead >= target.duration or lead <= timedelta(0):
                continue
            at = clock.add(due, -lead)
        if not rule.at_breach:
            # a reminder that falls exactly on a closing time goes out at the next opening
            at = clock.next_run(at)
        planned.append(PlannedReminder(rule.spec, at, rule.escalate))
    return tuple(sorted(planned, key=lambda p: p.at))
