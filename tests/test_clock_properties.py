"""Properties of the three clocks (R10), checked with Hypothesis.

Instants are drawn as UTC microseconds (so both sides of every DST change, the
repeated hour in October included, come up), mostly across 2026-2027, with
extra weight on opening and closing times and on the days around the DST
changes, and some from the 1990s and 2040s. All comparisons are made in UTC:
Python compares two datetimes that share a ``tzinfo`` by their wall fields.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot.presets import load_preset
from sla_engine.calendar import BusinessCalendar, Closure
from sla_engine.clocks import BusinessClock, CalendarClock, WorkingDaysClock

AMS = ZoneInfo("Europe/Amsterdam")
UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
ONE_HOUR = timedelta(hours=1)
SIX_WEEKS = timedelta(weeks=6)

MC = load_preset("mailcampaigns")
PN = load_preset("paynl")
SPLIT = BusinessCalendar.build(
    "split-shift",
    {
        **{d: ["08:30-12:00", "12:45-17:15"] for d in ("mon", "tue", "wed", "thu")},
        "fri": ["08:30-12:00", "12:45-15:00", "19:00-24:00"],
        "sat": ["00:00-02:30", "10:00-13:00"],
    },
    closures=[Closure(date(2026, 12, 28), date(2026, 12, 31), "kerstsluiting"), Closure(date(2027, 7, 19), date(2027, 8, 6), "zomer")],
    dropped_holidays=["Goede vrijdag"],
)
CALENDARS = {
    "mc-office": MC.calendars["office"],
    "pn-office": PN.calendars["office"],
    "split-shift": SPLIT,
    "outage-24/7": PN.calendars["outage"],
}
OFFICE_CALENDARS = {k: v for k, v in CALENDARS.items() if k != "outage-24/7"}

SETTINGS = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def _utc(y: int, m: int = 1, d: int = 1) -> int:
    return int((datetime(y, m, d, tzinfo=UTC) - EPOCH) / ONE_US)


def _from_us(us: int) -> datetime:
    return (EPOCH + timedelta(microseconds=us)).astimezone(AMS)


def _between(lo: int, hi: int) -> st.SearchStrategy[datetime]:
    return st.integers(lo, hi).map(_from_us)


def _local(day: date, seconds: int, micro: int) -> datetime:
    """A local wall time, normalised (a time in the spring-forward gap moves to the real instant)."""
    wall = datetime.combine(day, time(), tzinfo=AMS) + timedelta(seconds=seconds, microseconds=micro)
    return wall.astimezone(UTC).astimezone(AMS)


# wall times where the calendars above open or close, and their neighbours
EDGES = sorted(
    {h * 3600 + m * 60 for h, m in [(0, 0), (2, 30), (8, 30), (9, 0), (10, 0), (12, 0), (12, 45), (13, 0),
                                   (15, 0), (17, 0), (17, 15), (17, 30), (19, 0), (23, 0)]}
)
DST_DAYS = [date(2026, 3, 29), date(2026, 10, 25), date(2027, 3, 28), date(2027, 10, 31), date(1995, 3, 26),
            date(1995, 9, 24), date(2045, 3, 26), date(2045, 10, 29)]

edge_instants = st.builds(
    _local,
    st.dates(date(2026, 1, 1), date(2027, 12, 31)),
    st.sampled_from(EDGES),
    st.sampled_from([0, 0, 0, 1, 999_999]),
).map(lambda t: t if t.microsecond != 999_999 else t - timedelta(seconds=1))
dst_instants = st.builds(
    lambda day, shift, us: _from_us(int((datetime.combine(day, time(), tzinfo=AMS) - EPOCH) / ONE_US) + shift + us),
    st.sampled_from(DST_DAYS),
    st.integers(-2 * 86_400, 2 * 86_400).map(lambda s: s * 1_000_000),
    st.sampled_from([0, 0, 1, 123_456]),
)
instants = st.one_of(
    _between(_utc(2026), _utc(2028)),
    _between(_utc(2026), _utc(2028)),
    edge_instants,
    dst_instants,
    _between(_utc(1990), _utc(2000)),
    _between(_utc(2040), _utc(2050)),
)
durations = st.one_of(
    st.integers(1, int(SIX_WEEKS.total_seconds())).map(lambda s: timedelta(seconds=s)),
    st.integers(1, 6 * 7 * 24 * 4).map(lambda q: timedelta(minutes=15 * q)),
    st.integers(1, int(SIX_WEEKS / ONE_US)).map(lambda us: timedelta(microseconds=us)),
    st.sampled_from([timedelta(hours=h) for h in (1, 2, 7.5, 8, 8.5, 16, 24, 40)]),
)
whole_days = st.integers(1, 30).map(lambda n: timedelta(days=n))


def utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


def in_amsterdam(instant: datetime) -> None:
    """The engine answers in Amsterdam time, with the real offset of that instant."""
    assert instant.tzinfo is AMS
    real = utc(instant).astimezone(AMS)
    assert (instant.replace(tzinfo=None), instant.utcoffset()) == (real.replace(tzinfo=None), real.utcoffset()), (
        f"{instant.isoformat()} is not a real Amsterdam wall time (that instant is {real.isoformat()})"
    )


def at_closing_time(cal: BusinessCalendar, instant: datetime) -> bool:
    """True when ``instant`` is exactly the end of an opening window."""
    before = (utc(instant) - ONE_US).astimezone(AMS)
    if cal.is_open(instant) or not cal.is_open(before):
        return False
    local = utc(instant).astimezone(AMS)
    wall = local.hour * 3600 + local.minute * 60 + local.second if local.date() == before.date() else 86_400
    # ``before`` is open, so its day is a working day with its weekday's windows
    return local.microsecond == 0 and wall in {w.end_s for w in cal.hours[before.weekday()]}


calendar_names = pytest.mark.parametrize("name", sorted(CALENDARS))
office_names = pytest.mark.parametrize("name", sorted(OFFICE_CALENDARS))


# -- (a) a business deadline lies inside the opening hours or exactly at a closing time


@calendar_names
@SETTINGS
@given(t=instants, d=durations)
def test_business_deadline_is_open_time_or_a_closing_time(name: str, t: datetime, d: timedelta) -> None:
    cal = CALENDARS[name]
    due = BusinessClock(cal).add(t, d)
    in_amsterdam(due)
    assert utc(due) > utc(t)
    assert cal.is_open(due) or at_closing_time(cal, due), f"{t.isoformat()} + {d} = {due.isoformat()}"


@calendar_names
@SETTINGS
@given(t=instants)
def test_next_run_is_the_next_open_instant(name: str, t: datetime) -> None:
    cal = CALENDARS[name]
    for clock in (BusinessClock(cal), WorkingDaysClock(cal)):
        start = clock.next_run(t)
        in_amsterdam(start)
        assert utc(start) >= utc(t)
        assert cal.is_open(start)
        assert (utc(start) == utc(t)) is cal.is_open(t)
        # no open time between the request and the start of the clock
        assert BusinessClock(cal).elapsed(t, start) == timedelta(0)
    assert utc(CalendarClock(cal).next_run(t)) == utc(t)


# -- (b) adding in two steps is adding once


@calendar_names
@SETTINGS
@given(t=instants, a=durations, b=durations)
def test_business_add_is_additive(name: str, t: datetime, a: timedelta, b: timedelta) -> None:
    clock = BusinessClock(CALENDARS[name])
    assert utc(clock.add(clock.add(t, a), b)) == utc(clock.add(t, a + b))


@calendar_names
@SETTINGS
@given(t=instants, a=durations, b=durations)
def test_calendar_add_is_additive(name: str, t: datetime, a: timedelta, b: timedelta) -> None:
    clock = CalendarClock(CALENDARS[name])
    once = clock.add(t, a + b)
    in_amsterdam(once)
    assert utc(clock.add(clock.add(t, a), b)) == utc(once) == utc(t) + a + b


@pytest.mark.parametrize("name", ["mc-office", "pn-office"])
@SETTINGS
@given(
    day=st.dates(date(2026, 1, 1), date(2027, 12, 31)) | st.dates(date(1990, 1, 1), date(2049, 12, 31)),
    seconds=st.integers(9 * 3600, 17 * 3600 - 1),
    micro=st.sampled_from([0, 0, 1, 500_000, 999_999]),
    a=whole_days,
    b=whole_days,
)
def test_working_days_add_is_additive_from_open_time(
    name: str, day: date, seconds: int, micro: int, a: timedelta, b: timedelta
) -> None:
    cal = CALENDARS[name]
    t = _local(day, seconds, micro)
    assume(cal.is_open(t))
    clock = WorkingDaysClock(cal)
    first = clock.add(t, a)
    in_amsterdam(first)
    assert (first.hour, first.minute, first.second, first.microsecond) == (t.hour, t.minute, t.second, t.microsecond)
    assert cal.is_open(first)
    assert utc(clock.add(first, b)) == utc(clock.add(t, a + b))


# -- (c) a later request never gets an earlier deadline


pairs = st.tuples(instants, st.one_of(st.integers(0, 3 * 86_400 * 1_000_000), st.integers(0, 10**14))).map(
    lambda p: (p[0], _from_us(int((p[0] - EPOCH) / ONE_US) + p[1]))
)


@calendar_names
@SETTINGS
@given(pair=pairs, d=durations)
def test_business_and_calendar_deadlines_are_monotone(name: str, pair: tuple[datetime, datetime], d: timedelta) -> None:
    t1, t2 = pair
    assert utc(t1) <= utc(t2)
    for clock in (BusinessClock(CALENDARS[name]), CalendarClock(CALENDARS[name])):
        assert utc(clock.add(t1, d)) <= utc(clock.add(t2, d)), f"{clock.kind}: {t1.isoformat()} / {t2.isoformat()}"


# Not on the 24/7 calendar: "the same local time" cannot be monotone inside the repeated hour of
# 25 October, a working day there (02:50+02:00 + 1 working day = 26 Oct 02:50, but 02:10+01:00,
# forty minutes later, gives 26 Oct 02:10). The office calendars are closed on Sunday nights.
@office_names
@SETTINGS
@given(pair=pairs, d=durations)
def test_working_days_deadlines_are_monotone(name: str, pair: tuple[datetime, datetime], d: timedelta) -> None:
    t1, t2 = pair
    clock = WorkingDaysClock(CALENDARS[name])
    assert utc(clock.add(t1, d)) <= utc(clock.add(t2, d))


# -- (d) elapsed() is the inverse of add()


@calendar_names
@SETTINGS
@given(t=instants, d=durations)
def test_business_elapsed_inverts_add(name: str, t: datetime, d: timedelta) -> None:
    clock = BusinessClock(CALENDARS[name])
    due = clock.add(t, d)
    assert clock.elapsed(t, due) == d
    # and the deadline is the first instant with that much business time behind it
    assert clock.elapsed(t, (utc(due) - ONE_US).astimezone(AMS)) == d - ONE_US


@calendar_names
@SETTINGS
@given(t=instants, d=durations)
def test_working_days_elapsed_inverts_add(name: str, t: datetime, d: timedelta) -> None:
    clock = WorkingDaysClock(CALENDARS[name])
    due = clock.add(t, d)
    in_amsterdam(due)
    spent = clock.elapsed(t, due)
    if spent != d:
        # The one exception: the local time ``d`` after the start falls in the hour that the
        # spring-forward change skips (only a calendar open on Sunday night gets there). That
        # wall time does not exist; the deadline is the instant it names with the winter
        # offset, one wall-clock hour later (as java.time does), so elapsed() reads an hour more.
        assert (due.month, due.weekday(), due.hour) == (3, 6, 3), (  # 03:xx on the last Sunday of March
            f"{t.isoformat()} + {d} = {due.isoformat()}, elapsed {spent}"
        )
        assert utc(due).astimezone(AMS).utcoffset() - (utc(due) - ONE_HOUR).astimezone(AMS).utcoffset() == ONE_HOUR
        assert spent == d + ONE_HOUR


@calendar_names
@SETTINGS
@given(t=instants, d=durations)
def test_calendar_elapsed_inverts_add(name: str, t: datetime, d: timedelta) -> None:
    clock = CalendarClock(CALENDARS[name])
    assert clock.elapsed(t, clock.add(t, d)) == d


# -- elapsed() adds up over consecutive stretches


@calendar_names
@SETTINGS
@given(a=instants, b=instants, c=instants)
def test_business_elapsed_is_additive(name: str, a: datetime, b: datetime, c: datetime) -> None:
    clock = BusinessClock(CALENDARS[name])
    assert clock.elapsed(a, b) + clock.elapsed(b, c) == clock.elapsed(a, c)
    assert clock.elapsed(a, b) == -clock.elapsed(b, a)
    if utc(a) <= utc(b):
        assert timedelta(0) <= clock.elapsed(a, b) <= utc(b) - utc(a)
