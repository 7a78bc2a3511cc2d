"""Business calendars: opening hours, public holidays and closures in one time zone.

How it works
------------
A :class:`BusinessCalendar` is a frozen description: a time zone, the opening
windows of each weekday (several per day for split shifts or a lunch break),
the public holidays of a country from the ``holidays`` package (minus any
dropped by name), and extra closures.

The clocks in :mod:`sla_engine.clocks` need fast answers to "how much open time
lies before this instant" and its inverse. A calendar therefore owns a lazily
built :class:`DayIndex` over a span of whole years: for every local day its
midnight, its open windows as offsets from that midnight, and the cumulative
open time before it (a prefix sum). Positions are integer microseconds, so
every answer is exact; adding four weeks costs the same two binary searches as
adding one hour.

On an ordinary day the real time since local midnight equals the wall-clock
time of day, so a position is read straight off the wall clock. The two days a
year with a DST change are marked irregular: there the windows are stored in
real microseconds since midnight and instants go through the UTC timestamp.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

from sla_engine.errors import CalendarError

US = 1_000_000
DAY_US = 86_400 * US
ONE_US = timedelta(microseconds=1)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIN_YEAR = 1971
MAX_YEAR = 2199


def to_us(duration: timedelta) -> int:
    """A ``timedelta`` as an exact number of microseconds."""
    return (duration.days * 86_400 + duration.seconds) * US + duration.microseconds


def from_us(us: int) -> timedelta:
    """Microseconds back to a ``timedelta``."""
    return timedelta(microseconds=us)


def require_aware(instant: datetime, what: str = "instant") -> None:
    """Raise ``ValueError`` for a naive datetime: every instant carries its offset."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {instant.isoformat()}")


@dataclass(frozen=True, slots=True)
class Window:
    """One opening window on a day, ``start`` to ``end`` (``end`` may be 24:00)."""

    start_s: int
    end_s: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_s < self.end_s <= 86_400:
            raise CalendarError(f"opening window {self} must satisfy 00:00 <= start < end <= 24:00")

    @classmethod
    def parse(cls, text: str) -> Window:
        """Parse ``"09:00-17:30"`` (``24:00`` allowed as an end)."""
        try:
            left, right = (part.strip() for part in text.split("-"))
            return cls(_parse_clock(left), _parse_clock(right))
        except (ValueError, CalendarError) as exc:
            raise CalendarError(f"opening window {text!r}: expected HH:MM-HH:MM ({exc})") from None

    def __str__(self) -> str:
        return f"{_fmt_clock(self.start_s)}-{_fmt_clock(self.end_s)}"


def _parse_clock(text: str) -> int:
    hh, mm = text.split(":")
    hours, minutes = int(hh), int(mm)
    if not (0 <= minutes < 60 and (0 <= hours < 24 or (hours == 24 and minutes == 0))):
        raise ValueError(f"{text!r} is not a time of day")
    return hours * 3600 + minutes * 60


def _fmt_clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


@dataclass(frozen=True, slots=True)
class Closure:
    """Extra closed days, ``first`` to ``last`` inclusive, with a reason."""

    first: date
    last: date
    reason: str = "closed"

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise CalendarError(f"closure {self.first}..{self.last} ends before it starts")


@dataclass(frozen=True)
class BusinessCalendar:
    """Opening hours per weekday, public holidays and closures in one time zone."""

    name: str
    timezone: str = "Europe/Amsterdam"
    hours: tuple[tuple[Window, ...], ...] = ((),) * 7
    holiday_country: str | None = "NL"
    dropped_holidays: frozenset[str] = frozenset()
    closures: tuple[Closure, ...] = ()
    _index: DayIndex = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(self.hours) != 7:
            raise CalendarError(f"calendar {self.name!r}: hours must list 7 weekdays, got {len(self.hours)}")
        for day, windows in zip(WEEKDAYS, self.hours):
            ordered = sorted(windows, key=lambda w: w.start_s)
            for before, after in zip(ordered, ordered[1:]):
                if after.start_s < before.end_s:
                    raise CalendarError(f"calendar {self.name!r}: {day} windows {before} and {after} overlap")
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CalendarError(f"calendar {self.name!r}: unknown time zone {self.timezone!r}") from exc
        if self.holiday_country is not None:
            try:
                holidays_lib.country_holidays(self.holiday_country, years=2026)
            except NotImplementedError as exc:
                raise CalendarError(
                    f"calendar {self.name!r}: the holidays package has no country {self.holiday_country!r}"
                ) from exc
        object.__setattr__(self, "_index", DayIndex(self, zone))

    @classmethod
    def build(
        cls,
        name: str,
        hours: Mapping[str, Sequence[str]],
        *,
        timezone: str = "Europe/Amsterdam",
        holiday_country: str | None = "NL",
        dropped_holidays: Iterable[str] = (),
        closures: Iterable[Closure] = (),
    ) -> BusinessCalendar:
        """Build from ``{"mon": ["09:00-17:00"], ...}``; days left out are closed."""
        unknown = set(hours) - set(WEEKDAYS)
        if unknown:
            raise CalendarError(f"calendar {name!r}: unknown weekday(s) {sorted(unknown)}; use {list(WEEKDAYS)}")
        table = tuple(
            tuple(sorted((Window.parse(w) for w in hours.get(day, ())), key=lambda w: w.start_s))
            for day in WEEKDAYS
        )
        return cls(
            name=name,
            timezone=timezone,
            hours=table,
            holiday_country=holiday_country,
            dropped_holidays=frozenset(dropped_holidays),
            closures=tuple(closures),
        )

    @classmethod
    def always_open(cls, name: str, timezone: str = "Europe/Amsterdam") -> BusinessCalendar:
        """A 24/7 calendar (an outage line): no holidays, no closures."""
        return cls.build(name, {d: ["00:00-24:00"] for d in WEEKDAYS}, timezone=timezone, holiday_country=None)

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return self._index.zone

    @property
    def index(self) -> DayIndex:
        """The precomputed day index the clocks read."""
        return self._index

    def holidays_in(self, year: int) -> dict[date, str]:
        """The public holidays of ``year`` that close this calendar, with their names."""
        if self.holiday_country is None:
            return {}
        found: dict[date, str] = {}
        english = holidays_lib.country_holidays(self.holiday_country, years=year)
        try:
            local = holidays_lib.country_holidays(self.holiday_country, years=year, language="nl")
        except (NotImplementedError, KeyError):
            local = english
        dropped = {name.casefold() for name in self.dropped_holidays}
        for day, name in english.items():
            names = {name.casefold(), str(local.get(day, name)).casefold()}
            if not names & dropped:
                found[day] = str(name)
        return found

    def closed_reason(self, day: date) -> str | None:
        """Why ``day`` is closed ("King's Day", a closure's reason, "no opening hours"), or None."""
        name = self.holidays_in(day.year).get(day)
        if name is not None:
            return name
        for closure in self.closures:
            if closure.first <= day <= closure.last:
                return closure.reason
        if not self.hours[day.weekday()]:
            return "no opening hours"
        return None

    def windows_on(self, day: date) -> tuple[Window, ...]:
        """The opening windows of ``day`` (empty when it is closed)."""
        if self.closed_reason(day) is not None:
            return ()
        return self.hours[day.weekday()]

    def is_working_day(self, day: date) -> bool:
        """True when ``day`` has any opening window."""
        return bool(self.windows_on(day))

    def is_open(self, instant: datetime) -> bool:
        """True when ``instant`` lies inside an opening window."""
        require_aware(instant)
        return self._index.is_open(instant)

    def describe_hours(self) -> dict[str, list[str]]:
        """Weekday -> list of ``"HH:MM-HH:MM"`` windows, for display."""
        return {day: [str(w) for w in windows] for day, windows in zip(WEEKDAYS, self.hours) if windows}

    def to_dict(self) -> dict[str, object]:
        """A plain, JSON-able description (for a ticket's SLA snapshot)."""
        return {
            "name": self.name,
            "timezone": self.timezone,
            "hours": self.describe_hours(),
            "holidays": self.holiday_country,
            "drop_holidays": sorted(self.dropped_holidays),
            "closures": [
                {"from": c.first.isoformat(), "to": c.last.isoformat(), "reason": c.reason} for c in self.closures
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> BusinessCalendar:
        """Inverse of :meth:`to_dict`."""
        closures_raw = data.get("closures", [])
        assert isinstance(closures_raw, list)
        hours = data.get("hours", {})
        assert isinstance(hours, dict)
        dropped = data.get("drop_holidays", [])
        assert isinstance(dropped, list)
        country = data.get("holidays")
        return cls.build(
            str(data["name"]),
            hours,
            timezone=str(data.get("timezone", "Europe/Amsterdam")),
            holiday_country=None if country is None else str(country),
            dropped_holidays=[str(n) for n in dropped],
            closures=[
                Closure(date.fromisoformat(c["from"]), date.fromisoformat(c["to"]), c.get("reason", "closed"))
                for c in closures_raw
            ],
        )


class DayIndex:
    """Per-day open windows and prefix sums over a span of years, grown on demand.

    Positions are microseconds of open time counted from a fixed anchor (the
    first day ever indexed), so they stay valid when the span grows in either
    direction; ``cum[k]`` is the position of the local midnight of day ``k``
    (``cum`` has one extra entry at the end). ``work_before[k]`` numbers the
    working days the same way, and ``work_days[i + work_base]`` is working day
    ``i``.
    """

    __slots__ = (
        "calendar", "zone", "first_year", "last_year", "base", "lo_us", "hi_us",
        "midnight", "midnight_us", "windows", "irregular", "cum", "work_before", "work_days",
        "anchor", "work_base", "simple",
    )

    def __init__(self, calendar: BusinessCalendar, zone: ZoneInfo) -> None:
        self.calendar = calendar
        self.zone = zone
        self.first_year = 0
        self.last_year = -1
        self.base = 0
        self.lo_us = 0
        self.hi_us = 0
        self.midnight: list[datetime] = []
        self.midnight_us: list[int] = []
        self.windows: list[tuple[tuple[int, int], ...]] = []
        self.irregular: list[bool] = []
        self.cum: list[int] = [0]
        self.work_before: list[int] = [0]
        self.work_days: list[int] = []
        self.anchor: int | None = None
        self.work_base = 0
        # per day: (position of midnight, window start, window end, midnight epoch us) for
        # ordinary days with one window or none (start == end == 0); None for the rest
        self.simple: list[tuple[int, int, int, int] | None] = []

    # -- building ---------------------------------------------------------

    def cover_years(self, first: int, last: int) -> None:
        """Make sure the index spans the years ``first``..``last`` (and rebuild it if not)."""
        if self.first_year <= first and last <= self.last_year:
            return
        if self.last_year >= self.first_year:
            first, last = min(first, self.first_year), max(last, self.last_year)
        if first < MIN_YEAR or last > MAX_YEAR:
            raise CalendarError(f"calendar {self.calendar.name!r} covers the years {MIN_YEAR}..{MAX_YEAR} only")
        self._build(first, last)

    def _build(self, first: int, last: int) -> None:
        zone, cal = self.zone, self.calendar
        closed: set[date] = set()
        for year in range(first, last + 1):
            closed.update(cal.holidays_in(year))
        for closure in cal.closures:
            day = closure.first
            while day <= closure.last:
                closed.add(day)
                day += timedelta(days=1)
        start, end = date(first, 1, 1), date(last + 1, 1, 1)
        midnight: list[datetime] = []
        midnight_us: list[int] = []
        windows: list[tuple[tuple[int, int], ...]] = []
        irregular: list[bool] = []
        cum, work_before, work_days = [0], [0], []
        day = start
        k = 0
        next_midnight = datetime(start.year, start.month, start.day, tzinfo=zone)
        next_us = round(next_midnight.timestamp()) * US
        while day < end:
            this, this_us = next_midnight, next_us
            following = day + timedelta(days=1)
            next_midnight = datetime(following.year, following.month, following.day, tzinfo=zone)
            next_us = round(next_midnight.timestamp()) * US
            odd = next_us - this_us != DAY_US or this.utcoffset() != next_midnight.utcoffset()
            spans: tuple[tuple[int, int], ...] = ()
            if day not in closed and cal.hours[day.weekday()]:
                if odd:
                    spans = tuple(
                        (self._real_offset(day, w.start_s, this_us), self._real_offset(day, w.end_s, this_us))
                        for w in cal.hours[day.weekday()]
                    )
                else:
                    spans = tuple((w.start_s * US, w.end_s * US) for w in cal.hours[day.weekday()])
            midnight.append(this)
            midnight_us.append(this_us)
            windows.append(spans)
            irregular.append(odd)
            cum.append(cum[-1] + sum(b - a for a, b in spans))
            if spans:
                work_days.append(k)
            work_before.append(len(work_days))
            day = following
            k += 1
        self.first_year, self.last_year = first, last
        self.base = start.toordinal()
        if self.anchor is None:
            self.anchor = self.base
        at = self.anchor - self.base
        cum_shift, work_shift = cum[at], work_before[at]
        cum = [c - cum_shift for c in cum]
        work_before = [w - work_shift for w in work_before]
        self.work_base = work_shift
        self.lo_us, self.hi_us = midnight_us[0], next_us
        self.midnight, self.midnight_us, self.windows, self.irregular = midnight, midnight_us, windows, irregular
        self.cum, self.work_before, self.work_days = cum, work_before, work_days
        self.simple = [
            None if odd or len(spans) > 1 else (c, *(spans[0] if spans else (0, 0)), mid)
            for odd, spans, c, mid in zip(irregular, windows, cum, midnight_us)
        ]

    def _real_offset(self, day: date, seconds: int, midnight_us: int) -> int:
        """Real microseconds from local midnight to the wall time ``seconds`` on ``day``."""
        wall = datetime.combine(day, time(), tzinfo=self.zone) + timedelta(seconds=seconds)
        if seconds == 86_400:
            nxt = day + timedelta(days=1)
            wall = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self.zone)
        return round(wall.timestamp() * US) - midnight_us

    # -- instants <-> (day, offset) --------------------------------------

    def locate(self, instant: datetime) -> tuple[int, int]:
        """The day number and real microseconds since that day's local midnight."""
        local = instant.astimezone(self.zone)
        k = local.toordinal() - self.base
        if k < 0 or k >= len(self.windows):
            self.cover_years(local.year - 1, local.year + 2)
            k = local.toordinal() - self.base
        if self.irregular[k]:
            return k, round(instant.timestamp() * US) - self.midnight_us[k]
        return k, ((local.hour * 60 + local.minute) * 60 + local.second) * US + local.microsecond

    def locate_wall(self, instant: datetime) -> tuple[int, int, datetime]:
        """The day number, wall-clock microseconds since midnight, and the local time."""
        local = instant.astimezone(self.zone)
        k = local.toordinal() - self.base
        if k < 0 or k >= len(self.windows):
            self.cover_years(local.year - 1, local.year + 2)
            k = local.toordinal() - self.base
        return k, ((local.hour * 60 + local.minute) * 60 + local.second) * US + local.microsecond, local

    def working_day(self, number: int) -> int:
        """The day number of working day ``number`` (as counted by ``work_before``)."""
        while number + self.work_base >= len(self.work_days):
            self._grow_forward()
        while number + self.work_base < 0:
            self.cover_years(self.first_year - 5, self.last_year)
        return self.work_days[number + self.work_base]

    def instant(self, k: int, offset: int) -> datetime:
        """The instant ``offset`` real microseconds after the local midnight of day ``k``."""
        if k >= len(self.windows):
            return datetime.fromtimestamp((self.hi_us + offset) / US, self.zone)
        if self.irregular[k]:
            return datetime.fromtimestamp((self.midnight_us[k] + offset) / US, self.zone)
        return self.midnight[k] + timedelta(microseconds=offset)

    # -- open-time positions ---------------------------------------------

    def position(self, instant: datetime) -> int:
        """Open time (microseconds) from the start of the span up to ``instant``."""
        k, off = self.locate(instant)
        pos = self.cum[k]
        for a, b in self.windows[k]:
            if off <= a:
                break
            pos += (b if off > b else off) - a
        return pos

    def at_position(self, pos: int) -> datetime:
        """The earliest instant whose position is ``pos`` (a closing time when it ends a window)."""
        cum = self.cum
        while pos > cum[-1]:
            self._grow_forward()
            cum = self.cum
        while pos <= cum[0]:
            self.cover_years(self.first_year - 5, self.last_year)
            cum = self.cum
        k = bisect.bisect_left(cum, pos) - 1
        rest = pos - cum[k]
        for a, b in self.windows[k]:
            if rest <= b - a:
                return self.instant(k, a + rest)
            rest -= b - a
        raise AssertionError("position beyond its day")  # pragma: no cover

    def _grow_forward(self) -> None:
        had = self.cum[-1]
        for step in (3, 10, 30):
            self.cover_years(self.first_year, self.last_year + step)
            if self.cum[-1] > had:
                return
        raise CalendarError(f"calendar {self.calendar.name!r} has no opening hours in the coming 40 years")

    def is_open(self, instant: datetime) -> bool:
        """True when ``instant`` lies inside an opening window."""
        k, off = self.locate(instant)
        return any(a <= off < b for a, b in self.windows[k])

    def next_open(self, instant: datetime) -> datetime:
        """``instant`` when open, else the next opening time."""
        k, off = self.locate(instant)
        for a, b in self.windows[k]:
            if off < b:
                return instant.astimezone(self.zone) if off >= a else self.instant(k, a)
        while True:
            k += 1
            while k >= len(self.windows):
                self._grow_forward()
            if self.windows[k]:
                return self.instant(k, self.windows[k][0][0])
