"""``sla_engine.performance``: a ticket against its targets on the plan's own clock, as of an instant (pure)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import at, preset

from sla_engine.deadlines import Pause, first_response_due
from sla_engine.performance import Verdict, measure_first_response, measure_resolution

H = timedelta(hours=1)
LICENTIE = preset("mailcampaigns").terms("licentie", at(2026, 11, 23).date())
BUSINESS = preset("paynl").terms("business", at(2026, 11, 23).date())
PIONEER = preset("paynl").terms("pioneer", at(2026, 11, 23).date())


def test_a_response_at_the_next_opening_is_the_closing_time_of_the_deadline() -> None:
    received = at(2026, 11, 23, 9)  # Monday 09:00 + 24 business hours = Wednesday 17:00 (R10)
    assert first_response_due(received, LICENTIE) == at(2026, 11, 25, 17)
    for answered in (at(2026, 11, 25, 17), at(2026, 11, 26, 9)):  # the same point of business time
        measured = measure_first_response(received, answered, LICENTIE, at(2026, 12, 1))
        assert (measured.verdict, measured.elapsed, measured.done) == (Verdict.MET, 24 * H, True)
    late = measure_first_response(received, at(2026, 11, 26, 9, 1), LICENTIE, at(2026, 12, 1))
    assert (late.verdict, late.elapsed) == (Verdict.BREACHED, 24 * H + timedelta(minutes=1))


def test_open_tickets_are_pending_until_due_then_breached() -> None:
    received = at(2026, 11, 27, 16)  # Friday 16:00: 1 h on Friday, the weekend does not count
    pending = measure_first_response(received, None, LICENTIE, at(2026, 11, 30, 10))
    assert (pending.verdict, pending.elapsed, pending.done) == (Verdict.PENDING, 2 * H, False)
    breached = measure_first_response(received, None, LICENTIE, at(2026, 12, 2, 17, 30))
    assert (breached.verdict, breached.elapsed) == (Verdict.BREACHED, 25 * H)
    # an answer after the as-of instant has not happened yet
    later = measure_first_response(received, at(2026, 12, 1, 9), LICENTIE, at(2026, 11, 30, 10))
    assert later.verdict is Verdict.PENDING and not later.done


def test_closed_unanswered() -> None:
    received = at(2026, 11, 23, 10)
    closed = measure_first_response(received, None, LICENTIE, at(2026, 12, 1), closed_at=at(2026, 11, 23, 11))
    assert (closed.verdict, closed.elapsed, closed.counted) == (Verdict.CLOSED, H, False)
    late = measure_first_response(received, None, LICENTIE, at(2026, 12, 1), closed_at=at(2026, 11, 27, 11))
    assert late.verdict is Verdict.BREACHED


def test_no_target() -> None:
    assert measure_first_response(at(2026, 11, 23, 10), None, PIONEER, at(2026, 12, 1)).verdict is Verdict.NO_TARGET
    assert measure_resolution(at(2026, 11, 23, 10), None, PIONEER, at(2026, 12, 1)).verdict is Verdict.NO_TARGET
    released = measure_resolution(at(2026, 11, 23, 10), None, BUSINESS, at(2027, 1, 1), needs_release=True)
    assert released.verdict is Verdict.NO_TARGET and "release" in released.reason


def test_resolution_leaves_out_waiting_on_the_customer() -> None:
    received = at(2026, 11, 23, 10)  # Pay.nl business: at most 7 working days
    pauses = [Pause(at(2026, 11, 24, 10), at(2026, 11, 26, 10))]  # two working days waiting
    done = measure_resolution(received, at(2026, 12, 4, 10), BUSINESS, at(2026, 12, 31), pauses=pauses)
    assert (done.verdict, done.elapsed) == (Verdict.MET, timedelta(days=7))
    waiting = measure_resolution(received, None, BUSINESS, at(2026, 12, 31),
                                 pauses=[Pause(at(2026, 11, 24, 10))])  # still waiting: the clock stands
    assert (waiting.verdict, waiting.elapsed) == (Verdict.PENDING, timedelta(days=1))
    # a pause that ends after the as-of instant counts up to it
    paused = measure_resolution(received, None, BUSINESS, at(2026, 11, 25, 10), pauses=pauses)
    assert paused.elapsed == timedelta(days=1)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError):
        measure_first_response(at(2026, 11, 23, 10).replace(tzinfo=None), None, LICENTIE, at(2026, 12, 1))
