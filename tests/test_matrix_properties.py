"""Every target of every priority matrix is exact on its clock (R10, R25), checked with Hypothesis as the clocks
themselves are (tests/test_clock_properties.py).

For each preset (the example hosting desk with its P1-P4 matrix and two calendars, and both shipped presets), each
plan and each priority it serves: the first-response deadline lies exactly the target's clock time after receipt,
to the microsecond; so do both ends of the resolution window; the 75% reminder lies exactly at 75% of the window
and the "before" reminder exactly its lead before the deadline; and a more urgent priority is never due later.
Instants are drawn as UTC microseconds across 2026-2027, with weight on the DST change days and on the
opening and closing times of the calendars.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.presets import load_preset
from sla_engine.clocks import ClockKind
from sla_engine.deadlines import first_response_due, reminder_schedule, resolution_window
from sla_engine.policy import Preset, SlaTerms

AMS = ZoneInfo("Europe/Amsterdam")
UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EXAMPLE = load_preset(str(Path(__file__).resolve().parent.parent / "docs" / "examples" / "hostingdesk.toml"))
PRESETS = {"hostingdesk": EXAMPLE, "mailcampaigns": load_preset("mailcampaigns"), "paynl": load_preset("paynl")}
SETTINGS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])


def _cells(preset: Preset) -> list[tuple[str, str, str | None]]:
    """(preset, plan, priority) for every plan's own targets and every cell of its matrix row."""
    found: list[tuple[str, str, str | None]] = []
    for plan in preset.plans:
        if plan.sla and (plan.base.first_response is not None or not plan.targets):
            found.append((preset.name, plan.name, None))
        found += [(preset.name, plan.name, name) for name in plan.priorities]
    return found


CELLS = [cell for preset in PRESETS.values() for cell in _cells(preset)]


def _us(y: int, m: int = 1, d: int = 1) -> int:
    return int((datetime(y, m, d, tzinfo=UTC) - EPOCH) / timedelta(microseconds=1))


def _local(day: date, seconds: int, micro: int) -> datetime:
    wall = datetime.combine(day, time(), tzinfo=AMS) + timedelta(seconds=seconds, microseconds=micro)
    return wall.astimezone(UTC).astimezone(AMS)


EDGES = sorted({h * 3600 + m * 60 for h, m in [(0, 0), (2, 30), (6, 0), (8, 30), (9, 0), (17, 0), (17, 30),
                                               (23, 45), (23, 59)]})
DST_DAYS = [date(2026, 3, 29), date(2026, 10, 25), date(2027, 3, 28), date(2027, 10, 31)]
instants = st.one_of(
    st.integers(_us(2026), _us(2028)).map(lambda us: (EPOCH + timedelta(microseconds=us)).astimezone(AMS)),
    st.builds(_local, st.dates(date(2026, 1, 1), date(2027, 12, 31)), st.sampled_from(EDGES),
              st.sampled_from([0, 1, 999_999])),
    st.builds(_local, st.sampled_from(DST_DAYS), st.integers(0, 86_399), st.integers(0, 999_999)),
)


def terms_of(preset_name: str, plan: str, priority: str | None, received: datetime) -> SlaTerms:
    preset = PRESETS[preset_name]
    return preset.terms(plan, received.astimezone(AMS).date(), priority)


@pytest.mark.parametrize(("preset_name", "plan", "priority"), CELLS)
@SETTINGS
@given(received=instants)
def test_every_target_is_exact_on_its_clock(preset_name: str, plan: str, priority: str | None,
                                            received: datetime) -> None:
    terms = terms_of(preset_name, plan, priority, received)
    target, resolution = terms.plan.first_response, terms.plan.resolution
    assert target is not None
    clock = terms.clock(target)
    due = first_response_due(received, terms)
    assert due is not None
    assert clock.elapsed(received, due) == target.duration
    if target.clock is ClockKind.BUSINESS:
        assert clock.calendar.is_open(due - timedelta(microseconds=1))  # the deadline ends open time
    if resolution is not None:
        window = resolution_window(received, terms)
        assert window.earliest is not None and window.latest is not None
        rclock = terms.clock(resolution)
        assert rclock.elapsed(received, window.earliest) == resolution.minimum
        assert rclock.elapsed(received, window.latest) == resolution.maximum


@pytest.mark.parametrize(("preset_name", "plan", "priority"), CELLS)
@SETTINGS
@given(received=instants)
def test_reminders_scale_with_the_window(preset_name: str, plan: str, priority: str | None,
                                         received: datetime) -> None:
    terms = terms_of(preset_name, plan, priority, received)
    target = terms.plan.first_response
    assert target is not None
    due = first_response_due(received, terms)
    assert due is not None
    clock = terms.clock(target)
    planned = reminder_schedule(received, terms, due=due)
    assert [p.at for p in planned] == sorted(p.at for p in planned)
    for reminder, rule in zip(planned, [r for r in terms.plan.reminders if r.lead(target.duration) is None
                                        or r.lead(target.duration) < target.duration]):
        assert received.astimezone(UTC) <= reminder.at.astimezone(UTC) <= due.astimezone(UTC)
        if target.clock is ClockKind.WORKING_DAYS:
            continue  # a working-days clock counts whole days: checked in test_clock_properties
        if rule.fraction is not None:
            share = timedelta(seconds=round(target.duration.total_seconds() * float(rule.fraction)))
            assert clock.elapsed(received, reminder.at) == share
        elif not rule.at_breach:
            lead = rule.lead(target.duration)
            assert lead is not None and lead <= timedelta(hours=1)
            assert clock.elapsed(reminder.at, due) == lead
        else:
            assert reminder.at == due and reminder.escalate


@pytest.mark.parametrize("plan", [p.name for p in EXAMPLE.plans])
@SETTINGS
@given(received=instants)
def test_a_more_urgent_priority_is_never_due_later(plan: str, received: datetime) -> None:
    served = [EXAMPLE.served(EXAMPLE.plan(plan), name)[0] for name in EXAMPLE.priority_names]
    dues = [first_response_due(received, EXAMPLE.terms(plan, received.date(), name)) for name in served]
    ends = [resolution_window(received, EXAMPLE.terms(plan, received.date(), name)).latest for name in served]
    assert all(d is not None for d in dues) and all(e is not None for e in ends)
    assert [d.astimezone(UTC) for d in dues if d] == sorted(d.astimezone(UTC) for d in dues if d)
    assert [e.astimezone(UTC) for e in ends if e] == sorted(e.astimezone(UTC) for e in ends if e)
