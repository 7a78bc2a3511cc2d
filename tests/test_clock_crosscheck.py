"""The clocks against a second, deliberately naive implementation.

The engine answers from a prefix-summed day index with binary searches. The
implementation below does what a person would do by hand: walk the days one by
one, turn each opening window into two real instants (``datetime`` in the
calendar's zone, then UTC), and spend the duration window by window. Closed
days come straight from the ``holidays`` package (with the calendar's dropped
names and closures); only the weekly opening table is read from the calendar.
It shares no code with ``sla_engine.calendar.DayIndex`` or ``sla_engine.clocks``.

Both are run on the same seeded random instants across 2026-2027 for every plan
of both presets that has targets, through the public ``first_response_due`` and
``resolution_window``; there must be no difference at all, neither in the
instant nor in how it is written (local time and offset).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays
import pytest

from bot.presets import load_preset
from sla_engine.calendar import BusinessCalendar, Closure
from sla_engine.clocks import BusinessClock, ClockKind, WorkingDaysClock
from sla_engine.deadlines import first_response_due, resolution_window
from sla_engine.policy import Preset

UTC = timezone.utc
AMS = ZoneInfo("Europe/Amsterdam")
DAY = timedelta(days=1)
PRESETS = {name: load_preset(name) for name in ("mailcampaigns", "paynl")}
INSTANTS_PER_PLAN = 10_000
FIRST_DAY, LAST_DAY = date(2026, 1, 1), date(2027, 12, 31)


class NaiveCalendar:
    """Opening windows as pairs of UTC instants, one local day at a time."""

    def __init__(self, cal: BusinessCalendar) -> None:
        self.zone = ZoneInfo(cal.timezone)
        self.weekly = [[(w.start_s, w.end_s) for w in day] for day in cal.hours]
        self.country = cal.holiday_country
        self.dropped = {name.casefold() for name in cal.dropped_holidays}
        self.closures = [(c.first, c.last) for c in cal.closures]
        self._holidays: dict[int, set[date]] = {}
        self._windows: dict[date, list[tuple[datetime, datetime]]] = {}

    def holidays_in(self, year: int) -> set[date]:
        if year not in self._holidays:
            found: set[date] = set()
            if self.country is not None:
                english = holidays.country_holidays(self.country, years=year)
                dutch = holidays.country_holidays(self.country, years=year, language="nl")
                for day, name in english.items():
                    if not {name.casefold(), dutch.get(day, name).casefold()} & self.dropped:
                        found.add(day)
            self._holidays[year] = found
        return self._holidays[year]

    def windows(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's opening windows as (start, end) in UTC; empty on a closed day."""
        if day not in self._windows:
            closed = day in self.holidays_in(day.year) or any(a <= day <= b for a, b in self.closures)
            self._windows[day] = [] if closed else [
                (self._instant(day, start), self._instant(day, end)) for start, end in self.weekly[day.weekday()]
            ]
        return self._windows[day]

    def _instant(self, day: date, seconds: int) -> datetime:
        if seconds == 86_400:  # a window that ends at 24:00 ends at the next local midnight
            day, seconds = day + DAY, 0
        wall = datetime.combine(day, time(seconds // 3600, seconds % 3600 // 60), tzinfo=self.zone)
        return wall.astimezone(UTC)

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(UTC).astimezone(self.zone)

    # -- the clocks ---------------------------------------------------------

    def next_open(self, t: datetime) -> datetime:
        now = t.astimezone(UTC)
        day = self.local(t).date()
        while True:
            for start, end in self.windows(day):
                if end > now:
                    return self.local(max(start, now))
            day += DAY

    def business_add(self, t: datetime, duration: timedelta) -> datetime:
        now = t.astimezone(UTC)
        left = duration
        day = self.local(t).date()
        while True:
            for start, end in self.windows(day):
                if end <= now:
                    continue
                begin = max(start, now)
                if left <= end - begin:  # runs out in this window (at its end, if exactly)
                    return self.local(begin + left)
                left -= end - begin
            day += DAY

    def business_elapsed(self, t1: datetime, t2: datetime) -> timedelta:
        lo, hi = sorted((t1.astimezone(UTC), t2.astimezone(UTC)))
        total = timedelta(0)
        day = self.local(lo).date()
        while day <= self.local(hi).date():
            for start, end in self.windows(day):
                total += max(timedelta(0), min(end, hi) - max(start, lo))
            day += DAY
        return total if t1.astimezone(UTC) <= t2.astimezone(UTC) else -total

    def working_days_add(self, t: datetime, duration: timedelta) -> datetime:
        begin = self.next_open(t)
        wall = timedelta(hours=begin.hour, minutes=begin.minute, seconds=begin.second, microseconds=begin.microsecond)
        more, wall = divmod(wall + duration, DAY)  # a working day is 24 hours of this clock
        day = begin.date()
        while more:
            day += DAY
            if self.windows(day):
                more -= 1
        naive_wall = datetime.combine(day, time()) + wall
        return self.local(naive_wall.replace(tzinfo=self.zone))

    def calendar_add(self, t: datetime, duration: timedelta) -> datetime:
        return self.local(t.astimezone(UTC) + duration)

    def add(self, kind: ClockKind, t: datetime, duration: timedelta) -> datetime:
        adders: dict[ClockKind, Callable[[datetime, timedelta], datetime]] = {
            ClockKind.BUSINESS: self.business_add,
            ClockKind.WORKING_DAYS: self.working_days_add,
            ClockKind.CALENDAR: self.calendar_add,
        }
        return adders[kind](t, duration)


NAIVE = {(p, name): NaiveCalendar(cal) for p, preset in PRESETS.items() for name, cal in preset.calendars.items()}


def _special_days() -> list[date]:
    days = [date(2026, 3, 29), date(2026, 10, 25), date(2027, 3, 28), date(2027, 10, 31)]
    days += sorted(holidays.country_holidays("NL", years=[2026, 2027]))
    days += [date(2026, 12, 31), date(2027, 12, 31)]
    return days


def random_instants(seed: int, count: int) -> list[datetime]:
    """Instants across 2026-2027: uniform, at opening/closing edges, and near DST changes and holidays."""
    rng = random.Random(seed)
    lo = datetime(2026, 1, 1, tzinfo=AMS).astimezone(UTC)
    span_us = int((datetime(2028, 1, 1, tzinfo=AMS) - datetime(2026, 1, 1, tzinfo=AMS)) / timedelta(microseconds=1))
    edges = [timedelta(hours=h, minutes=m) + timedelta(microseconds=us)
             for h, m in [(0, 0), (9, 0), (12, 0), (16, 0), (16, 30), (17, 0), (17, 30)] for us in (0, 0, 1, -1)]
    special = _special_days()
    found: list[datetime] = []
    for _ in range(count):
        pick = rng.random()
        if pick < 0.6:
            utc = lo + timedelta(microseconds=rng.randrange(span_us))
        else:
            if pick < 0.85:
                day = date(2026, 1, 1) + timedelta(days=rng.randrange(730))
                offset = rng.choice(edges)
            else:
                day = min(max(rng.choice(special) + timedelta(days=rng.randint(-3, 3)), FIRST_DAY), LAST_DAY)
                offset = timedelta(seconds=rng.randrange(86_400))
            wall = datetime.combine(day, time()) + offset
            utc = wall.replace(tzinfo=AMS, fold=rng.randint(0, 1)).astimezone(UTC)
        found.append(utc.astimezone(AMS))
    return found


INSTANTS = random_instants(20260329, INSTANTS_PER_PLAN)


def written(instant: datetime | None) -> str | None:
    """An answer as the bot would print it: ISO 8601 with the offset (and the UTC instant)."""
    if instant is None:
        return None
    return f"{instant.isoformat()} = {instant.astimezone(UTC).isoformat()}"


PLANS = [(p, plan.name) for p, preset in PRESETS.items() for plan in preset.plans]


def test_every_sla_plan_is_covered() -> None:
    with_targets = [(p, name) for p, name in PLANS if PRESETS[p].plan(name).first_response is not None]
    assert with_targets == [
        ("mailcampaigns", "licentie"),
        ("mailcampaigns", "ondersteuning"),
        ("mailcampaigns", "project"),
        ("paynl", "business"),
        ("paynl", "premium"),
    ]
    assert len(INSTANTS) >= 10_000
    assert date(2025, 12, 31) <= min(t.date() for t in INSTANTS) < date(2026, 1, 8)
    assert date(2027, 12, 24) < max(t.date() for t in INSTANTS) <= date(2027, 12, 31)


def test_naive_holidays_match_the_calendar() -> None:
    for (p, name), naive in NAIVE.items():
        cal = PRESETS[p].calendars[name]
        for year in (2026, 2027, 2028):
            assert naive.holidays_in(year) == set(cal.holidays_in(year))


@pytest.mark.parametrize(("preset_name", "plan_name"), PLANS)
def test_plan_deadlines_match_the_naive_clocks(preset_name: str, plan_name: str) -> None:
    preset: Preset = PRESETS[preset_name]
    plan = preset.plan(plan_name)
    memo: dict[tuple[object, ...], str | None] = {}

    def naive(calendar: str, kind: ClockKind, t: datetime, duration: timedelta) -> str | None:
        key = (calendar, kind, duration, t)
        if key not in memo:
            memo[key] = written(NAIVE[preset_name, calendar].add(kind, t, duration))
        return memo[key]

    differences: list[str] = []
    for t in INSTANTS:
        terms = preset.terms(plan, t.date())
        due = first_response_due(t, terms)
        window = resolution_window(t, terms)
        fr, res = plan.first_response, plan.resolution
        expected_due = naive(fr.calendar, fr.clock, t, fr.duration) if fr is not None and plan.sla else None
        expected_min = naive(res.calendar, res.clock, t, res.minimum) if res is not None else None
        expected_max = naive(res.calendar, res.clock, t, res.maximum) if res is not None else None
        got = (written(due), written(window.earliest), written(window.latest))
        if got != (expected_due, expected_min, expected_max):
            differences.append(f"received {t.isoformat()}: engine {got}, naive {(expected_due, expected_min, expected_max)}")
    assert differences == [], f"{len(differences)} differences, first ones:\n" + "\n".join(differences[:10])
    if plan.first_response is None:
        assert not plan.sla and plan.resolution is None


SPLIT = BusinessCalendar.build(
    "split-shift",
    {
        **{d: ["08:30-12:00", "12:45-17:15"] for d in ("mon", "tue", "wed", "thu")},
        "fri": ["08:30-12:00", "12:45-15:00", "19:00-24:00"],
        "sat": ["00:00-02:30", "10:00-13:00"],
    },
    closures=[Closure(date(2026, 12, 28), date(2026, 12, 31), "kerstsluiting")],
    dropped_holidays=["Goede vrijdag"],
)
CALENDARS = {
    "mc-office": PRESETS["mailcampaigns"].calendars["office"],
    "pn-office": PRESETS["paynl"].calendars["office"],
    "outage-24/7": PRESETS["paynl"].calendars["outage"],
    "split-shift": SPLIT,
}


@pytest.mark.parametrize("name", sorted(CALENDARS))
def test_clocks_with_random_durations_match_the_naive_clocks(name: str) -> None:
    """Business and working-day clocks on random durations (1 s .. 6 weeks), and business elapsed()."""
    cal = CALENDARS[name]
    naive = NaiveCalendar(cal)
    business, working_days = BusinessClock(cal), WorkingDaysClock(cal)
    rng = random.Random(f"durations {name}")
    differences: list[str] = []
    for t in random_instants(sorted(CALENDARS).index(name), 2_500):
        d = timedelta(seconds=rng.randint(1, 6 * 7 * 86_400), microseconds=rng.choice([0, 0, rng.randrange(10**6)]))
        whole = timedelta(days=rng.randint(1, 10))
        for kind, clock, duration in (("business", business, d), ("working_days", working_days, whole)):
            got, expected = written(clock.add(t, duration)), written(naive.add(ClockKind(kind), t, duration))
            if got != expected:
                differences.append(f"{kind} {t.isoformat()} + {duration}: engine {got}, naive {expected}")
        end = (t.astimezone(UTC) + timedelta(seconds=rng.randint(-30 * 86_400, 30 * 86_400))).astimezone(AMS)
        if business.elapsed(t, end) != naive.business_elapsed(t, end):
            differences.append(f"elapsed {t.isoformat()} .. {end.isoformat()}: "
                               f"engine {business.elapsed(t, end)}, naive {naive.business_elapsed(t, end)}")
    assert differences == [], f"{len(differences)} differences, first ones:\n" + "\n".join(differences[:10])
