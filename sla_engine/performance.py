"""How a ticket did against its SLA targets, measured on the plan's own clock.

How it works
------------
A target is met when the clock time between receipt and the staff member's
first response (or the resolution) is at most the target's duration, on the
clock the ticket's terms snapshot names (business hours, working days or
calendar time). Comparing clock time rather than instants makes a response at
the next opening count the same as one at the closing time before it (R10).
Resolution time leaves out the time spent waiting on the customer (R14), and a
ticket that needs an IT release is off the resolution clock (R13).

Everything is measured *as of* an instant that is passed in: something that
happened after it has not happened yet. A ticket still open past its target
is breached; one still open within it is pending (neither met nor breached).
A ticket closed without a first response is breached when it was closed after
the target ran out, and ``closed`` (left out of the share) when before.

Statistics are exact on integer microseconds: the median of an even count is
the mean of the middle two (rounded down to the microsecond), and a percentile
is the nearest rank (the smallest measured time that at least that share of
tickets did not exceed), so it is always a time some ticket really took.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from sla_engine.calendar import from_us, to_us
from sla_engine.clocks import ClockKind
from sla_engine.deadlines import Pause, paused_time
from sla_engine.policy import SlaTerms

UTC = timezone.utc


class Verdict(StrEnum):
    """Where a ticket stands against one target."""

    MET = "met"
    BREACHED = "breached"
    PENDING = "pending"  # still open and not yet due
    CLOSED = "closed"  # closed without a first response before the target ran out
    NO_TARGET = "no_target"  # the plan guarantees nothing here (or the ticket is off the clock)


@dataclass(frozen=True)
class Measurement:
    """One ticket against one target: the verdict, the clock time it took (or has taken so far) and why."""

    verdict: Verdict
    elapsed: timedelta | None  # clock time to the response/resolution, or so far when still open
    target: timedelta | None
    clock: ClockKind | None
    done: bool  # the response or resolution happened (by ``as_of``)
    reason: str

    @property
    def counted(self) -> bool:
        """Whether it counts towards the share met (met or breached)."""
        return self.verdict in (Verdict.MET, Verdict.BREACHED)


def _happened(instant: datetime | None, as_of: datetime) -> datetime | None:
    return instant if instant is not None and instant.astimezone(UTC) <= as_of.astimezone(UTC) else None


def _judge(elapsed: timedelta, target: timedelta, clock: ClockKind, done: bool, what: str) -> Measurement:
    if done:
        verdict = Verdict.MET if elapsed <= target else Verdict.BREACHED
        reason = f"{what} after {elapsed} of {clock.value} time, target {target}"
    else:
        verdict = Verdict.BREACHED if elapsed > target else Verdict.PENDING
        reason = f"no {what} yet after {elapsed} of {clock.value} time, target {target}"
    return Measurement(verdict, elapsed, target, clock, done, reason)


def measure_first_response(received_at: datetime, responded_at: datetime | None, terms: SlaTerms,
                           as_of: datetime, *, closed_at: datetime | None = None) -> Measurement:
    """The first response (R8, R11, R12) against the plan's target, as of ``as_of``.

    ``closed_at``: when the ticket was resolved, which stops the clock of a ticket never answered.
    """
    target = terms.plan.first_response
    if target is None or not terms.plan.sla:
        return Measurement(Verdict.NO_TARGET, None, None, None, False, "the plan guarantees no first response")
    clock = terms.clock(target)
    responded = _happened(responded_at, as_of)
    if responded is not None:
        return _judge(clock.elapsed(received_at, responded), target.duration, target.clock, True, "first response")
    closed = _happened(closed_at, as_of)
    end = closed if closed is not None else as_of
    elapsed = max(clock.elapsed(received_at, end), timedelta(0))
    measured = _judge(elapsed, target.duration, target.clock, False, "first response")
    if closed is not None and measured.verdict is Verdict.PENDING:
        return Measurement(Verdict.CLOSED, elapsed, target.duration, target.clock, False,
                           f"closed without a first response after {elapsed}, within the target {target.duration}")
    return measured


def measure_resolution(received_at: datetime, resolved_at: datetime | None, terms: SlaTerms, as_of: datetime, *,
                       pauses: Iterable[Pause] = (), needs_release: bool = False) -> Measurement:
    """The resolution (R13) against the latest end of the plan's range, paused time left out (R14)."""
    target = terms.plan.resolution
    if target is None:
        return Measurement(Verdict.NO_TARGET, None, None, None, False, "the plan has no resolution target")
    if needs_release and target.excludes_release:
        return Measurement(Verdict.NO_TARGET, None, None, None, False,
                           "needs an IT release: off the resolution clock")
    clock = terms.clock(target)
    resolved = _happened(resolved_at, as_of)
    end = resolved if resolved is not None else as_of
    pause_list = [p for p in pauses if p.start.astimezone(UTC) <= end.astimezone(UTC)]
    waited = paused_time(received_at, [Pause(p.start, _happened(p.end, end)) for p in pause_list], terms, end)
    elapsed = max(clock.elapsed(received_at, end) - waited, timedelta(0))
    return _judge(elapsed, target.maximum, target.clock, resolved is not None, "resolution")


def median(values: Sequence[timedelta]) -> timedelta | None:
    """The median (mean of the middle two for an even count, to the microsecond); None when empty."""
    if not values:
        return None
    ordered = sorted(to_us(v) for v in values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return from_us(ordered[middle])
    return from_us((ordered[middle - 1] + ordered[middle]) // 2)


def percentile(values: Sequence[timedelta], share: float) -> timedelta | None:
    """The nearest-rank percentile (``share`` in (0, 1], e.g. 0.9 for p90); None when empty."""
    if not 0 < share <= 1:
        raise ValueError(f"share must lie in (0, 1], got {share}")
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(round(share * len(ordered), 9))  # round: 0.9 * 10 is 9.000000000000002
    return ordered[max(rank, 1) - 1]


__all__ = ["Measurement", "Verdict", "measure_first_response", "measure_resolution", "median", "percentile"]
